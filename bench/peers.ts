// bench/peers.ts: the other MTAs bench/run.ts measures beside postern — Debian's Exim
// and Postfix (4.96 and 3.7 on Debian 12) unpacked from the machine's Debian release by
// bench/fetch-peers.sh, their versions read from the unpacked packages — each with a
// private config, spool and log in a work folder, SMTP on a 127.0.0.1 port, and its
// default durability. Also what all MTAs share: CPU and memory of a whole process
// tree from /proc.
//
// Each runs in its own PID namespace (`unshare -p -f`), so every process it forks,
// even a double-forked delivery, is reaped inside it and its CPU time ends up in the
// tree's /proc accounting; Exim also needs a mount namespace, because it re-executes
// itself from its compiled-in /usr/sbin/exim4 and needs its Debian-exim user: a copy
// of /usr/sbin with the unpacked binary and copies of /etc/passwd and /etc/group are
// bind-mounted there (only inside that namespace; nothing is installed). Postfix gets
// a copy of /etc with its postfix/postdrop users too.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, chmodSync, closeSync, copyFileSync, cpSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { gunzipSync } from 'node:zlib';

const CLK_TCK = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// /proc: CPU and resident memory of a process and all its descendants

interface Proc { ppid: number; cpu: number }

function readProcs(): Map<number, Proc> {
  const procs = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      // f[0] = state (field 3), f[1] = ppid (4), f[11..14] = utime stime cutime cstime (14..17)
      procs.set(Number(name), { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
    } catch { /* exited meanwhile */ }
  }
  return procs;
}

function treePids(root: number, procs = readProcs()): { pids: number[]; procs: Map<number, Proc> } {
  const kids = new Map<number, number[]>();
  for (const [pid, p] of procs) {
    if (!kids.has(p.ppid)) kids.set(p.ppid, []);
    kids.get(p.ppid)!.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (!procs.has(pid)) continue;
    out.push(pid);
    stack.push(...(kids.get(pid) ?? []));
  }
  return { pids: out, procs };
}

/**
 * CPU seconds (user + system) used so far by root and every descendant, living or
 * reaped by a living one: each live process's own time plus its reaped children's.
 */
export function treeCpuSeconds(root: number): number {
  const { pids, procs } = treePids(root);
  return pids.reduce((s, pid) => s + (procs.get(pid)?.cpu ?? 0), 0) / CLK_TCK;
}

/** The bench's own wrappers in a peer's tree (not the MTA): unshare, the reaping PID 1, a shell, strace. */
const WRAPPERS = new Set(['unshare', 'perl', 'sh', 'strace']);

/**
 * Memory of the MTA's processes under root, in MB: the sum of PSS (each process's
 * private pages plus its share of pages it shares, so Postfix's and Exim's many
 * processes sharing one binary and its libraries are not counted many times over) and
 * the sum of RSS, with each process's name; the bench's wrappers left out.
 */
export interface TreeMemory { pssMB: number; rssMB: number; procs: { comm: string; pssMB: number; rssMB: number }[] }

export function treeMemory(root: number): TreeMemory {
  const { pids } = treePids(root);
  let pss = 0;
  let rss = 0;
  const procs: TreeMemory['procs'] = [];
  for (const pid of pids) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (WRAPPERS.has(comm)) continue;
      const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const p = Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
      const r = Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
      pss += p;
      rss += r;
      procs.push({ comm, pssMB: Math.round(p / 102.4) / 10, rssMB: Math.round(r / 102.4) / 10 });
    } catch { /* gone */ }
  }
  return { pssMB: pss / 1024, rssMB: rss / 1024, procs };
}

export const treePssMB = (root: number): number => treeMemory(root).pssMB;

/** Samples treePssMB every `ms` until stopped; stop() returns the peak in MB. */
export function memSampler(root: number, ms = 250): () => number {
  let peak = treePssMB(root);
  const t = setInterval(() => { peak = Math.max(peak, treePssMB(root)); }, ms);
  return () => { clearInterval(t); peak = Math.max(peak, treePssMB(root)); return Math.round(peak); };
}

// ---------------------------------------------------------------------------
// where the unpacked packages are

/**
 * bench/peers/ (or $BENCH_PEERS) as left by bench/fetch-peers.sh; undefined parts are
 * missing. eximVersion, postfixVersion: the Debian versions of the unpacked packages
 * (e.g. 4.96-15+deb12u11), whatever release the machine that fetched them runs.
 */
export interface Peers { dir: string; exim?: string; postfix?: string; postfixRoot?: string; smtpSource?: string; smtpSink?: string; libs?: string; libPath: string; eximVersion?: string; postfixVersion?: string }

/** A package's Debian version from the first line of its unpacked changelog.Debian.gz ("exim4 (4.96-15+deb12u11) bookworm; ..."). */
function debianVersion(root: string, pkg: string): string | undefined {
  try {
    const first = gunzipSync(readFileSync(join(root, 'usr/share/doc', pkg, 'changelog.Debian.gz'))).toString('utf8', 0, 300).split('\n')[0] ?? '';
    return /^\S+ \(([^)\s]+)\)/.exec(first)?.[1];
  } catch {
    return undefined;
  }
}

/** The upstream part of a Debian version: 4.96-15+deb12u11 -> 4.96, 1:3.7.11-0 -> 3.7.11. */
export const upstreamVersion = (v: string): string => v.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

export function findPeers(dir: string): Peers {
  const has = (p: string) => (existsSync(join(dir, p)) ? join(dir, p) : undefined);
  const libs = has('libs');
  const pfLib = has('postfix/usr/lib/postfix');
  return {
    dir,
    exim: has('exim/usr/sbin/exim4'),
    postfix: has('postfix/usr/sbin/postfix'),
    postfixRoot: has('postfix'),
    smtpSource: has('postfix/usr/sbin/smtp-source'),
    smtpSink: has('postfix/usr/sbin/smtp-sink'),
    libs,
    libPath: [pfLib, libs].filter(Boolean).join(':'),
    eximVersion: has('exim') ? debianVersion(join(dir, 'exim'), 'exim4-base') : undefined,
    postfixVersion: has('postfix') ? debianVersion(join(dir, 'postfix'), 'postfix') : undefined,
  };
}

const unshare = (): string | undefined => {
  try { return execFileSync('sh', ['-c', 'command -v unshare'], { encoding: 'utf8' }).trim() || undefined; } catch { return undefined; }
};

/** Whether this machine can run the peers at all (root, unshare with mount and PID namespaces). */
export function peersUsable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the peers need root (private namespaces and their own users)';
  const u = unshare();
  if (!u) return 'unshare not found (util-linux)';
  try {
    execFileSync(u, ['-m', '-p', '-f', 'true'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return 'unshare -m -p -f does not work here';
  }
  return undefined;
}

/** etc/ld.so.cache naming the system's libraries and these folders too (for set-uid/gid programs, which ignore LD_LIBRARY_PATH). */
function writeLdCache(dir: string, etc: string, dirs: string[]): void {
  const sys = existsSync('/etc/ld.so.conf') ? readFileSync('/etc/ld.so.conf', 'utf8') : '';
  writeFileSync(join(dir, 'ld.so.conf'), `${sys}\n${dirs.join('\n')}\n`);
  execFileSync('ldconfig', ['-X', '-C', join(etc, 'ld.so.cache'), '-f', join(dir, 'ld.so.conf')], { stdio: 'ignore' });
}

/**
 * The peers' resolv.conf: a name server on 127.0.0.1, where nothing answers, so every
 * DNS query they make (Exim's reverse lookup of each client, Debian's `host_lookup = *`,
 * and the forward check of the name it finds) is refused at once instead of going out
 * to the machine's resolver (here that cost up to 5 s a connection under load, a
 * property of the machine, not of Exim). /etc/hosts still answers `localhost`.
 */
function writeResolvConf(etc: string): void {
  rmSync(join(etc, 'resolv.conf'), { force: true });
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');
}

/**
 * A copy of /etc for a peer's namespace. Other work on the machine may add a user
 * meanwhile (useradd's lock and temporary files come and go): those are skipped, and a
 * file that vanishes mid-copy makes it start again (at most 5 times).
 */
function copyEtc(dest: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(dest, { recursive: true, force: true });
      cpSync('/etc', dest, { recursive: true, verbatimSymlinks: true, filter: (src: string) => !/(\.lock|\+|\/(passwd|group|shadow|gshadow|subuid|subgid)\.\w+)$/.test(src) });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw e;
    }
  }
}

/** A uid/gid free in /etc/passwd and /etc/group, from 64100 up. */
function freeIds(count: number): number[] {
  const used = new Set<number>();
  for (const f of ['/etc/passwd', '/etc/group']) {
    for (const l of readFileSync(f, 'utf8').split('\n')) used.add(Number(l.split(':')[2]));
  }
  const ids: number[] = [];
  for (let i = 64100; ids.length < count; i++) if (!used.has(i)) ids.push(i);
  return ids;
}

/** The uid (passwd) or gid (group) of an existing entry in an /etc file, if any. */
function existingId(file: string, name: string): number | undefined {
  for (const l of readFileSync(file, 'utf8').split('\n')) {
    const f = l.split(':');
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

/**
 * Copies of /etc/passwd and /etc/group with extra users (each with its own group) and
 * extra groups. A user or group the machine already has (any machine where Postfix or
 * Exim was ever installed has `postfix`, `postdrop`, `Debian-exim`) is used as it is:
 * a second entry of the same name would make the peer look itself up under one id
 * and find its files owned by the other ("not owned by postfix").
 */
function writeUserFiles(dir: string, users: string[], groups: string[] = []): Record<string, number> {
  const ids = freeIds(users.length + groups.length);
  const map: Record<string, number> = {};
  let passwd = readFileSync('/etc/passwd', 'utf8').replace(/\n?$/, '\n');
  let group = readFileSync('/etc/group', 'utf8').replace(/\n?$/, '\n');
  for (const u of users) {
    const uid = existingId('/etc/passwd', u);
    if (uid !== undefined) {
      const gid = existingId('/etc/group', u);
      const pgid = Number(readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${u}:`))?.split(':')[3]);
      map[u] = uid;
      map[`${u}:gid`] = gid ?? pgid;
      continue;
    }
    // Its own group: the machine's if it has one of that name (a user removed, its group
    // left behind), else a new one with the user's id.
    const id = ids.shift()!;
    const gid = existingId('/etc/group', u) ?? id;
    map[u] = id;
    map[`${u}:gid`] = gid;
    passwd += `${u}:x:${id}:${gid}:bench:/nonexistent:/usr/sbin/nologin\n`;
    if (gid === id) group += `${u}:x:${id}:\n`;
  }
  for (const g of groups) {
    const gid = existingId('/etc/group', g);
    if (gid !== undefined) { map[g] = gid; continue; }
    const id = ids.shift()!;
    map[g] = id;
    group += `${g}:x:${id}:\n`;
  }
  writeFileSync(join(dir, 'passwd'), passwd);
  writeFileSync(join(dir, 'group'), group);
  return map;
}

/**
 * The lines of a peer's output and logs that say why it stopped (Postfix's `fatal:`,
 * Exim's panic log, "not owned by", "cannot", ...), the last few, for the error message:
 * the peer's own words come first, before the rest is cut.
 */
export function fatalLines(...texts: (string | undefined)[]): string[] {
  const re = /fatal|panic|error|cannot|can't|failed|refus|not owned|denied|permission|no such|unable/i;
  const lines = texts.flatMap((t) => (t ?? '').split('\n')).map((l) => l.trim()).filter((l) => l && re.test(l));
  // One of each (a message ID, a time stamp or a pid does not make a line new), each cut short.
  const seen = new Map<string, string>();
  for (const l of lines) seen.set(l.replace(/^([A-Z][a-z]{2} [\d ]\d |[\d-]+ )[\d:]+ (\S+-\S+-\S+ )?/, '').replace(/\[\d+\]/g, '').replace(/^\/\S*\//, ''), l.slice(0, 300));
  // The peer's own verdict first (Postfix's `fatal:`, Exim's panic), then what else complained.
  const own = [...seen.values()].filter((l) => /\b(fatal|panic)\b/i.test(l));
  return [...own.slice(-3), ...[...seen.values()].filter((l) => !own.includes(l))].slice(0, 3);
}

/** Counts lines matching re in a growing file (reads only what was appended). */
export class LogCounter {
  offset = 0;
  rest = '';
  count = 0;
  constructor(readonly file: string, readonly re: RegExp) {}
  poll(): number {
    if (!existsSync(this.file)) return this.count;
    const fd = openSync(this.file, 'r');
    let buf;
    try {
      const size = fstatSync(fd).size;
      buf = Buffer.alloc(Math.max(0, size - this.offset));
      if (buf.length) readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    if (buf.length) {
      const text = this.rest + buf.toString('utf8');
      this.offset += buf.length;
      const lines = text.split('\n');
      this.rest = lines.pop() ?? '';
      for (const l of lines) if (this.re.test(l)) this.count++;
    }
    return this.count;
  }
}

function countFiles(dir: string, re: RegExp): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name), re);
    else if (re.test(e.name)) n++;
  }
  return n;
}

/** Waits until 127.0.0.1:port accepts a connection; gives up when gone() says the server exited. */
export async function waitForPort(port: number, ms = 10_000, gone: () => unknown = () => undefined, host = '127.0.0.1'): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (gone()) throw new Error(`it exited (${JSON.stringify(gone())})`);
    const ok = await new Promise<boolean>((res) => {
      const s = createConnection({ host, port });
      s.once('connect', () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${host}:${port} after ${ms} ms`);
}

/** Spawns `unshare ... sh -c script` and waits until the port accepts connections. */
export interface Exit { code: number | null; signal: NodeJS.Signals | null }
export interface NsHandle { child: ChildProcess; exited: Promise<Exit>; output: () => string; unsharePid?: number }

async function startNs({ name, nsArgs, script, env, port, log, wrapper = [] }: { name: string; nsArgs: string[]; script: string; env: NodeJS.ProcessEnv; port: number; log: string | string[]; wrapper?: string[] }): Promise<NsHandle> {
  const argv = [...wrapper, unshare() ?? 'unshare', ...nsArgs, '--kill-child', 'sh', '-c', script];
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { if (out.length < 1e5) out += d; });
  child.stderr.on('data', (d) => { if (out.length < 1e5) out += d; });
  const exited = new Promise<Exit>((r) => child.once('close', (code, signal) => r({ code, signal })));
  let early: Exit | undefined;
  void exited.then((r) => { early = r; });
  try {
    await waitForPort(port, 30_000, () => early);
  } catch (e) {
    child.kill('SIGKILL');
    const logs = (Array.isArray(log) ? log : [log]).filter((f) => f && existsSync(f)).map((f) => readFileSync(f, 'utf8').slice(-20_000));
    const own = fatalLines(out, ...logs);
    throw new Error(`${name} did not start${own.length ? `: ${own.join(' | ')}` : ''} (${(e as Error).message}); output: ${out.slice(-800)}${logs.length ? `; log: ${logs.map((l) => l.slice(-800)).join(' … ')}` : ''}`);
  }
  return { child, exited, output: () => out };
}

async function stopNs(h: NsHandle, comm?: string): Promise<Exit> {
  // The namespace's init is unshare's child (under a wrapper such as strace, its
  // grandchild); killing it ends everything in the namespace.
  const { pids, procs } = treePids(h.child.pid!);
  const unsh = h.unsharePid ?? pids.find((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'unshare'; } catch { return false; } });
  const init = pids.find((p) => procs.get(p)?.ppid === unsh);
  // The MTA's own top process (Postfix's master under a shell), else the namespace's init.
  const top = comm ? pids.find((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm; } catch { return false; } }) : undefined;
  try { process.kill(top ?? init ?? h.child.pid!, 'SIGTERM'); } catch { /* gone */ }
  const r = await Promise.race([h.exited, sleep(15_000).then(() => undefined)]);
  if (r) return r;
  try { if (init) process.kill(init, 'SIGKILL'); } catch { /* gone */ }
  try { h.child.kill('SIGKILL'); } catch { /* gone */ }
  return h.exited;
}

// ---------------------------------------------------------------------------
// Exim

/**
 * The smarthost's address for every MTA: 127.0.0.2, another loopback address. Exim
 * takes a smarthost on one of its own listening addresses (127.0.0.1) for itself and
 * freezes the mail (router option `self`); on 127.0.0.2 Debian's configuration runs
 * unchanged. Every MTA relays to the same address, so the loads stay the same.
 */
export const SINK_HOST = '127.0.0.2';

/**
 * The answers Debian's `dpkg-reconfigure exim4-config` writes for "mail sent by
 * smarthost; no local mail" (satellite), with the listener on the bench's port (Debian:
 * 127.0.0.1 ; ::1 on port 25) and the smarthost on the bench's sink.
 */
export interface Ports { smtpPort: number; smarthostPort: number }

function eximDebconf({ smtpPort, smarthostPort }: Ports): string {
  return `# bench/peers.ts: Debian's satellite answers, ports changed for the bench
dc_eximconfig_configtype='satellite'
dc_other_hostnames=''
dc_local_interfaces='127.0.0.1.${smtpPort} ; ::1.${smtpPort}'
dc_readhost='example.org'
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost='${SINK_HOST}::${smarthostPort}'
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname='true'
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
`;
}

/**
 * A prepared Exim tree in dir, as Debian installs and configures it, seen by Exim
 * through bind mounts in a private mount namespace (nothing on the machine changes):
 * - /etc: a copy with Debian-exim (unless the machine has it), /etc/mailname,
 *   exim4-config's /etc/exim4 and its update-exim4.conf.conf (satellite), and an
 *   ld.so.cache naming the unpacked libidn12 (Exim is set-uid root and re-executes
 *   itself, so the dynamic linker ignores LD_LIBRARY_PATH);
 * - /usr/sbin: a copy holding the unpacked exim4, set-uid root as installed, and
 *   `sendmail` linking to it as Debian's alternative does;
 * - /var: spool/exim4, log/exim4, lib/exim4 (config.autogenerated, written by Debian's
 *   own update-exim4.conf run in that namespace), mail, tmp; so Exim runs with its
 *   compiled-in paths and the generated configuration unchanged.
 * queuePerConnection0: `smtp_accept_queue_per_connection = 0` added to the generated
 * file (only for the relay loads over reused connections: Exim's default 10 queues the
 * 11th message of a connection for the next queue run, 30 minutes later).
 */
export interface EximTree extends Ports { dir: string; enter: string; conf: string; mainlog: string; paniclog: string; spool: string; env: NodeJS.ProcessEnv }

export function prepareExim(peers: Peers, dir: string, ports: Ports, { queuePerConnection0 = false } = {}): EximTree {
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  copyEtc(etc);
  const ids = writeUserFiles(etc, ['Debian-exim']);
  writeResolvConf(etc);
  const uid = ids['Debian-exim']!;
  const gid = ids['Debian-exim:gid']!;
  rmSync(join(etc, 'exim4'), { recursive: true, force: true });
  cpSync(join(peers.dir, 'exim/etc/exim4'), join(etc, 'exim4'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(etc, 'exim4', 'update-exim4.conf.conf'), eximDebconf(ports));
  // As exim4-config's postinst leaves it: readable by Exim's delivery processes.
  chownSync(join(etc, 'exim4', 'passwd.client'), 0, gid);
  chmodSync(join(etc, 'exim4', 'passwd.client'), 0o640);
  writeFileSync(join(etc, 'mailname'), 'bench.example.org\n');
  if (peers.libs) writeLdCache(dir, etc, [peers.libs]);
  const sbin = join(dir, 'sbin');
  cpSync('/usr/sbin', sbin, { recursive: true, verbatimSymlinks: true });
  for (const f of ['exim4', 'update-exim4.conf', 'exiqgrep']) {
    rmSync(join(sbin, f), { force: true });
    copyFileSync(join(peers.dir, 'exim/usr/sbin', f), join(sbin, f));
  }
  chmodSync(join(sbin, 'exim4'), 0o4755);
  chmodSync(join(sbin, 'update-exim4.conf'), 0o755);
  chmodSync(join(sbin, 'exiqgrep'), 0o755);
  rmSync(join(sbin, 'sendmail'), { force: true });
  symlinkSync('exim4', join(sbin, 'sendmail'));
  const v = join(dir, 'var');
  const mk = (p: string, mode: number, u = 0, g = 0) => { mkdirSync(join(v, p), { recursive: true }); chownSync(join(v, p), u, g); chmodSync(join(v, p), mode); };
  mk('spool/exim4', 0o750, uid, gid);
  mk('log/exim4', 0o2750, uid, gid);
  mk('lib/exim4', 0o755);
  mk('mail', 0o2775);
  mk('tmp', 0o1777);
  symlinkSync('/run', join(v, 'run'));
  const enter = `mount --bind ${sbin} /usr/sbin && mount --bind ${etc} /etc && mount --bind ${v} /var`;
  const env = { ...process.env, LD_LIBRARY_PATH: peers.libPath };
  // Debian's own generator, in the namespace (it checks the result with exim4 -bV).
  const gen = spawnSync(unshare() ?? 'unshare', ['-m', 'sh', '-c', `${enter} && /usr/sbin/update-exim4.conf`], { env, encoding: 'utf8', timeout: 60_000 });
  const conf = join(v, 'lib/exim4/config.autogenerated');
  if (gen.status !== 0 || !existsSync(conf)) {
    throw new Error(`exim: update-exim4.conf failed (${gen.status}): ${[gen.stderr, gen.stdout].join(' ').trim().slice(-600)}`);
  }
  // smtp_accept_max: the default 20 answers "421 Too many concurrent SMTP connections"
  // to one of 20 sessions that reconnects while the reception process of its previous
  // message has not been reaped yet, and the load generator stops there.
  const extra = ['# bench: the default 20 refuses some of 20 sessions reconnecting', 'smtp_accept_max = 100'];
  if (queuePerConnection0) extra.push('# bench: only for the relay loads over reused connections (default 10)', 'smtp_accept_queue_per_connection = 0');
  writeFileSync(conf, `${extra.join('\n')}\n${readFileSync(conf, 'utf8')}`);
  const log = join(v, 'log/exim4');
  return { dir, enter, conf, mainlog: join(log, 'mainlog'), paniclog: join(log, 'paniclog'), spool: join(v, 'spool/exim4'), env, ...ports };
}

/**
 * PID 1 of Exim's namespace: runs `exim4 -bd -q30m` as Debian's service does and reaps
 * every process orphaned in the namespace (a delivery process outlives the reception
 * process that forked it), so their CPU time is counted in the tree; exits when nothing
 * is left. Exim does not fork into the background when its parent is PID 1 (as under
 * systemd), so the daemon stays this process's child.
 */
const REAPER = `$SIG{TERM} = sub { exit 0 }; my $pid = fork() // die "fork: $!"; if (!$pid) { exec(@ARGV) or die "exec: $!" } while (wait() != -1) {} exit 3;`;

/** A running peer, behind the face bench/run.ts uses for every MTA. */
export interface PeerHandle {
  name: string;
  rootPid: number;
  smtpPort: number;
  x: { enter: string; env: NodeJS.ProcessEnv; sendmail?: string; conf: string; mainlog?: string; spool?: string };
  queued: () => number | Promise<number>;
  arrivals: () => number;
  done: LogCounter;
  deferrals: () => number;
  problems: () => string[];
  stop: () => Promise<Exit>;
  output: () => string;
}

export async function startExim(peers: Peers, dir: string, ports: Ports, wrapper: string[] = [], opts: { queuePerConnection0?: boolean } = {}): Promise<PeerHandle> {
  const x = prepareExim(peers, dir, ports, opts);
  const h = await startNs({
    name: 'exim', nsArgs: ['-m', '-p', '-f'], env: x.env, port: ports.smtpPort, log: [x.paniclog, x.mainlog], wrapper,
    script: `${x.enter} && exec perl -e '${REAPER}' /usr/sbin/exim4 -bd -q30m`,
  });
  return {
    name: 'Exim',
    rootPid: h.child.pid!,
    smtpPort: ports.smtpPort,
    x,
    queued: () => countFiles(join(x.spool, 'input'), /-H$/),
    arrivals: () => new LogCounter(x.mainlog, / <= /).poll(),
    done: new LogCounter(x.mainlog, / Completed$/),
    deferrals: () => new LogCounter(x.mainlog, / == /).poll(),
    problems: () => fatalLines(existsSync(x.paniclog) ? readFileSync(x.paniclog, 'utf8') : ''),
    stop: () => stopNs(h),
    output: h.output,
  };
}

// ---------------------------------------------------------------------------
// Postfix

function postfixMain(root: string, dir: string, { smarthostPort }: Ports, libPath: string): string {
  return `# bench/peers.ts: a private Postfix for the benchmark; everything else at Postfix's defaults
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
daemon_directory = ${root}/usr/lib/postfix/sbin
command_directory = ${root}/usr/sbin
shlib_directory = ${root}/usr/lib/postfix
meta_directory = ${dir}/conf
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.invalid
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [${SINK_HOST}]:${smarthostPort}
alias_maps =
alias_database =
biff = no
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH=${libPath}
`;
}

export async function startPostfix(peers: Peers, dir: string, ports: Ports, wrapper: string[] = []): Promise<PeerHandle> {
  const root = peers.postfixRoot!;
  chmodSync(dir, 0o755);
  // A copy of /etc with the postfix user and postdrop group, bind-mounted over /etc in
  // the namespace (not over /etc/passwd itself: a useradd elsewhere on the machine
  // renames a new file over that, which drops a mount on it in every namespace).
  const etc = join(dir, 'etc');
  copyEtc(etc);
  const ids = writeUserFiles(etc, ['postfix'], ['postdrop']);
  writeResolvConf(etc);
  // Its sendmail runs postdrop with a cleaned environment: the libraries must be found without LD_LIBRARY_PATH.
  writeLdCache(dir, etc, [join(root, 'usr/lib/postfix'), peers.libs].filter((x): x is string => Boolean(x)));
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'queue'), { recursive: true });
  chownSync(join(dir, 'data'), ids.postfix!, ids['postfix:gid']!);
  cpSync(join(root, 'etc/postfix/postfix-files'), join(conf, 'postfix-files'));
  cpSync(join(root, 'etc/postfix/postfix-files.d'), join(conf, 'postfix-files.d'), { recursive: true });
  writeFileSync(join(conf, 'dynamicmaps.cf'), '');
  writeFileSync(join(conf, 'main.cf'), postfixMain(root, dir, ports, peers.libPath));
  // Debian's master.cf as its postinst installs it (chroot on for smtpd, cleanup, smtp,
  // ...), only smtpd's service name changed to the bench's address and port.
  const master = readFileSync(join(root, 'usr/share/postfix/master.cf.dist'), 'utf8').split('\n').map((l) => {
    const f = l.split(/\s+/);
    if (f[0] === 'smtp' && f[1] === 'inet') return l.replace(/^smtp(\s)/, `127.0.0.1:${ports.smtpPort}$1`);
    return l;
  });
  writeFileSync(join(conf, 'master.cf'), master.join('\n'));
  const env = { ...process.env, LD_LIBRARY_PATH: peers.libPath };
  const maillog = join(dir, 'maillog');
  const enter = `mount --bind ${etc} /etc`;
  // Debian's service runs configure-instance.sh first: it fills the chroot (the queue
  // directory) with etc/services, hosts, resolv.conf, ... and the NSS libraries.
  const prep = `MAIL_CONFIG=${conf} PATH=${root}/usr/sbin:$PATH sh ${root}/usr/lib/postfix/configure-instance.sh - >/dev/null`;
  const h = await startNs({
    name: 'postfix', nsArgs: ['-m', '-p', '-f'], env, port: ports.smtpPort, log: maillog, wrapper,
    // As PID 1 of its namespace, postfix-script runs `master -i` (init mode, reaping all).
    script: `${enter} && ${prep} && exec ${root}/usr/sbin/postfix -c ${conf} start-fg`,
  });
  const q = join(dir, 'queue');
  return {
    name: 'Postfix',
    rootPid: h.child.pid!,
    smtpPort: ports.smtpPort,
    // For its sendmail: enter a namespace with the same /etc, then run this with -C conf.
    x: { enter, env, sendmail: join(root, 'usr/sbin/sendmail'), conf },
    queued: () => ['maildrop', 'incoming', 'active', 'deferred', 'hold'].reduce((s, d) => s + countFiles(join(q, d), /./), 0),
    arrivals: () => new LogCounter(maillog, /postfix\/cleanup.*: message-id=/).poll(),
    done: new LogCounter(maillog, /: removed$/),
    deferrals: () => new LogCounter(maillog, /status=deferred/).poll(),
    problems: () => (existsSync(maillog) ? readFileSync(maillog, 'utf8').slice(-50_000) : '').split('\n').filter((l) => /(fatal|panic):/.test(l)).slice(-3),
    stop: () => stopNs(h, 'master'),
    output: h.output,
  };
}
