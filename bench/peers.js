// bench/peers.js: the other MTAs bench/run.js measures beside postern — Exim 4.96 and
// Postfix 3.7 unpacked from Debian's packages by bench/fetch-peers.sh — each with a
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
import { spawn, execFileSync } from 'node:child_process';
import { chownSync, chmodSync, closeSync, copyFileSync, cpSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'node:net';

const CLK_TCK = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// /proc: CPU and resident memory of a process and all its descendants

function readProcs() {
  const procs = new Map();
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

function treePids(root, procs = readProcs()) {
  const kids = new Map();
  for (const [pid, p] of procs) {
    if (!kids.has(p.ppid)) kids.set(p.ppid, []);
    kids.get(p.ppid).push(pid);
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
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
export function treeCpuSeconds(root) {
  const { pids, procs } = treePids(root);
  return pids.reduce((s, pid) => s + procs.get(pid).cpu, 0) / CLK_TCK;
}

/**
 * Memory of the tree in MB: the sum of each process's PSS (its private pages plus its
 * share of pages it shares), so Postfix's and Exim's many processes sharing one binary
 * and its libraries are not counted many times over.
 */
export function treePssMB(root) {
  const { pids } = treePids(root);
  let kb = 0;
  for (const pid of pids) {
    try { kb += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0); } catch { /* gone */ }
  }
  return kb / 1024;
}

/** Samples treePssMB every `ms` until stopped; stop() returns the peak in MB. */
export function memSampler(root, ms = 250) {
  let peak = treePssMB(root);
  const t = setInterval(() => { peak = Math.max(peak, treePssMB(root)); }, ms);
  return () => { clearInterval(t); peak = Math.max(peak, treePssMB(root)); return Math.round(peak); };
}

// ---------------------------------------------------------------------------
// where the unpacked packages are

/** bench/peers/ (or $BENCH_PEERS) as left by bench/fetch-peers.sh; undefined parts are missing. */
export function findPeers(dir) {
  const has = (p) => (existsSync(join(dir, p)) ? join(dir, p) : undefined);
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
  };
}

const unshare = () => {
  try { return execFileSync('sh', ['-c', 'command -v unshare'], { encoding: 'utf8' }).trim() || undefined; } catch { return undefined; }
};

/** Whether this machine can run the peers at all (root, unshare with mount and PID namespaces). */
export function peersUsable() {
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
function writeLdCache(dir, etc, dirs) {
  const sys = existsSync('/etc/ld.so.conf') ? readFileSync('/etc/ld.so.conf', 'utf8') : '';
  writeFileSync(join(dir, 'ld.so.conf'), `${sys}\n${dirs.join('\n')}\n`);
  execFileSync('ldconfig', ['-X', '-C', join(etc, 'ld.so.cache'), '-f', join(dir, 'ld.so.conf')], { stdio: 'ignore' });
}

/** A uid/gid free in /etc/passwd and /etc/group, from 64100 up. */
function freeIds(count) {
  const used = new Set();
  for (const f of ['/etc/passwd', '/etc/group']) {
    for (const l of readFileSync(f, 'utf8').split('\n')) used.add(Number(l.split(':')[2]));
  }
  const ids = [];
  for (let i = 64100; ids.length < count; i++) if (!used.has(i)) ids.push(i);
  return ids;
}

/** Copies of /etc/passwd and /etc/group with extra users (each with its own group) and extra groups. */
function writeUserFiles(dir, users, groups = []) {
  const ids = freeIds(users.length + groups.length);
  const map = {};
  let passwd = readFileSync('/etc/passwd', 'utf8').replace(/\n?$/, '\n');
  let group = readFileSync('/etc/group', 'utf8').replace(/\n?$/, '\n');
  for (const u of users) {
    const id = ids.shift();
    map[u] = id;
    passwd += `${u}:x:${id}:${id}:bench:/nonexistent:/usr/sbin/nologin\n`;
    group += `${u}:x:${id}:\n`;
  }
  for (const g of groups) {
    const id = ids.shift();
    map[g] = id;
    group += `${g}:x:${id}:\n`;
  }
  writeFileSync(join(dir, 'passwd'), passwd);
  writeFileSync(join(dir, 'group'), group);
  return map;
}

/** Counts lines matching re in a growing file (reads only what was appended). */
class LogCounter {
  constructor(file, re) { this.file = file; this.re = re; this.offset = 0; this.rest = ''; this.count = 0; }
  poll() {
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

function countFiles(dir, re) {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name), re);
    else if (re.test(e.name)) n++;
  }
  return n;
}

/** Waits until 127.0.0.1:port accepts a connection; gives up when gone() says the server exited. */
export async function waitForPort(port, ms = 10_000, gone = () => undefined) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (gone()) throw new Error(`it exited (${JSON.stringify(gone())})`);
    const ok = await new Promise((res) => {
      const s = createConnection({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
}

/** Spawns `unshare ... sh -c script` and waits until the port accepts connections. */
async function startNs({ name, nsArgs, script, env, port, log, wrapper = [] }) {
  const argv = [...wrapper, unshare(), ...nsArgs, '--kill-child', 'sh', '-c', script];
  const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { if (out.length < 1e5) out += d; });
  child.stderr.on('data', (d) => { if (out.length < 1e5) out += d; });
  const exited = new Promise((r) => child.once('close', (code, signal) => r({ code, signal })));
  let early;
  void exited.then((r) => { early = r; });
  try {
    await waitForPort(port, 30_000, () => early);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${name} did not start: ${e.message}; output: ${out.slice(-1500)}${log && existsSync(log) ? `; log: ${readFileSync(log, 'utf8').slice(-1500)}` : ''}`);
  }
  return { child, exited, output: () => out };
}

async function stopNs(h, comm) {
  // The namespace's init is unshare's child (under a wrapper such as strace, its
  // grandchild); killing it ends everything in the namespace.
  const { pids, procs } = treePids(h.child.pid);
  const unsh = h.unsharePid ?? pids.find((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'unshare'; } catch { return false; } });
  const init = pids.find((p) => procs.get(p).ppid === unsh);
  // The MTA's own top process (Postfix's master under a shell), else the namespace's init.
  const top = comm ? pids.find((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm; } catch { return false; } }) : undefined;
  try { process.kill(top ?? init ?? h.child.pid, 'SIGTERM'); } catch { /* gone */ }
  const r = await Promise.race([h.exited, sleep(15_000).then(() => undefined)]);
  if (r) return r;
  try { if (init) process.kill(init, 'SIGKILL'); } catch { /* gone */ }
  try { h.child.kill('SIGKILL'); } catch { /* gone */ }
  return h.exited;
}

// ---------------------------------------------------------------------------
// Exim

function eximConfig(dir, { smtpPort, smarthostPort }) {
  return `# bench/peers.js: a private Exim for the benchmark; everything else at Exim's defaults
primary_hostname = exim.bench.invalid
spool_directory = ${dir}/spool
log_file_path = ${dir}/log/%slog
pid_file_path = ${dir}/exim.pid
daemon_smtp_ports = ${smtpPort}
local_interfaces = 127.0.0.1
keep_environment = LD_LIBRARY_PATH
acl_smtp_rcpt = acl_check_rcpt
# The default 20 would refuse some of 20 sessions that reconnect while the previous
# session's process is still exiting.
smtp_accept_max = 100
# Exim's default (10) stops immediate delivery after 10 messages on one connection
# and leaves the rest for a queue run: with reused connections the relay would wait
# for -q. Off, so every message is delivered as it arrives, as postern does.
smtp_accept_queue_per_connection = 0

begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny

begin routers
smarthost:
  driver = manualroute
  domains = *
  route_list = * 127.0.0.1::${smarthostPort}
  self = send
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp
  allow_localhost

begin retry
*   *   F,2h,15m; G,16h,1h,1.5; F,4d,6h
`;
}

/**
 * A prepared Exim tree in dir: config, spool, log, /usr/sbin copy, user files, and the
 * shell line that enters its mount namespace (used for the daemon and for sendmail).
 */
export function prepareExim(peers, dir, ports) {
  chmodSync(dir, 0o755);
  // A copy of /etc for the namespace: Debian-exim in passwd/group, Exim's config at
  // its compiled-in /etc/exim4/exim4.conf (a -C config would make Exim drop root for
  // every re-execution, which is not how it runs), and, because Exim is set-uid root
  // and re-executes itself, so the dynamic linker ignores LD_LIBRARY_PATH, an
  // ld.so.cache that also names the unpacked libraries (libidn12).
  const etc = join(dir, 'etc');
  cpSync('/etc', etc, { recursive: true, verbatimSymlinks: true });
  const ids = writeUserFiles(etc, ['Debian-exim']);
  const uid = ids['Debian-exim'];
  for (const d of ['spool', 'log']) {
    mkdirSync(join(dir, d), { recursive: true });
    chownSync(join(dir, d), uid, uid);
  }
  mkdirSync(join(etc, 'exim4'), { recursive: true });
  writeFileSync(join(etc, 'exim4', 'exim4.conf'), eximConfig(dir, ports));
  if (peers.libs) writeLdCache(dir, etc, [peers.libs]);
  const sbin = join(dir, 'sbin');
  cpSync('/usr/sbin', sbin, { recursive: true, verbatimSymlinks: true });
  copyFileSync(peers.exim, join(sbin, 'exim4'));
  chmodSync(join(sbin, 'exim4'), 0o4755);
  const enter = `mount --bind ${sbin} /usr/sbin && mount --bind ${etc} /etc`;
  return { dir, enter, mainlog: join(dir, 'log', 'mainlog'), env: { ...process.env, LD_LIBRARY_PATH: peers.libPath }, ...ports };
}

export async function startExim(peers, dir, ports, wrapper = []) {
  const x = prepareExim(peers, dir, ports);
  const h = await startNs({
    name: 'exim', nsArgs: ['-m', '-p', '-f'], env: x.env, port: ports.smtpPort, log: x.mainlog, wrapper,
    script: `${x.enter} && exec /usr/sbin/exim4 -bdf -q1m`,
  });
  return {
    name: 'Exim',
    rootPid: h.child.pid,
    smtpPort: ports.smtpPort,
    x,
    queued: () => countFiles(join(dir, 'spool', 'input'), /-H$/),
    arrivals: () => new LogCounter(x.mainlog, / <= /).poll(),
    done: new LogCounter(x.mainlog, / Completed$/),
    deferrals: () => new LogCounter(x.mainlog, / == /).poll(),
    stop: () => stopNs(h),
    output: h.output,
  };
}

// ---------------------------------------------------------------------------
// Postfix

function postfixMain(root, dir, { smarthostPort }, libPath) {
  return `# bench/peers.js: a private Postfix for the benchmark; everything else at Postfix's defaults
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
relayhost = [127.0.0.1]:${smarthostPort}
alias_maps =
alias_database =
biff = no
maillog_file = ${dir}/maillog
maillog_file_prefixes = ${dir}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH=${libPath}
`;
}

export async function startPostfix(peers, dir, ports, wrapper = []) {
  const root = peers.postfixRoot;
  chmodSync(dir, 0o755);
  // A copy of /etc with the postfix user and postdrop group, bind-mounted over /etc in
  // the namespace (not over /etc/passwd itself: a useradd elsewhere on the machine
  // renames a new file over that, which drops a mount on it in every namespace).
  const etc = join(dir, 'etc');
  cpSync('/etc', etc, { recursive: true, verbatimSymlinks: true });
  const ids = writeUserFiles(etc, ['postfix'], ['postdrop']);
  // Its sendmail runs postdrop with a cleaned environment: the libraries must be found without LD_LIBRARY_PATH.
  writeLdCache(dir, etc, [join(root, 'usr/lib/postfix'), peers.libs].filter(Boolean));
  const conf = join(dir, 'conf');
  mkdirSync(conf, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'queue'), { recursive: true });
  chownSync(join(dir, 'data'), ids.postfix, ids.postfix);
  cpSync(join(root, 'etc/postfix/postfix-files'), join(conf, 'postfix-files'));
  cpSync(join(root, 'etc/postfix/postfix-files.d'), join(conf, 'postfix-files.d'), { recursive: true });
  writeFileSync(join(conf, 'dynamicmaps.cf'), '');
  writeFileSync(join(conf, 'main.cf'), postfixMain(root, dir, ports, peers.libPath));
  // Debian's master.cf with chroot off everywhere and smtpd on the private port.
  const master = readFileSync(join(root, 'usr/share/postfix/master.cf.dist'), 'utf8').split('\n').map((l) => {
    const f = l.split(/\s+/);
    if (l.startsWith('#') || /^\s/.test(l) || f.length < 8) return l;
    if (f[0] === 'smtp' && f[1] === 'inet') f[0] = `127.0.0.1:${ports.smtpPort}`;
    f[4] = 'n';
    return f.join(' ');
  });
  writeFileSync(join(conf, 'master.cf'), master.join('\n'));
  const env = { ...process.env, LD_LIBRARY_PATH: peers.libPath };
  const maillog = join(dir, 'maillog');
  const enter = `mount --bind ${etc} /etc`;
  const h = await startNs({
    name: 'postfix', nsArgs: ['-m', '-p', '-f'], env, port: ports.smtpPort, log: maillog, wrapper,
    // As PID 1 of its namespace, postfix-script runs `master -i` (init mode, reaping all).
    script: `${enter} && exec ${root}/usr/sbin/postfix -c ${conf} start-fg`,
  });
  const q = join(dir, 'queue');
  return {
    name: 'Postfix',
    rootPid: h.child.pid,
    smtpPort: ports.smtpPort,
    // For its sendmail: enter a namespace with the same /etc, then run this with -C conf.
    x: { enter, env, sendmail: join(root, 'usr/sbin/sendmail'), conf },
    queued: () => ['maildrop', 'incoming', 'active', 'deferred', 'hold'].reduce((s, d) => s + countFiles(join(q, d), /./), 0),
    arrivals: () => new LogCounter(maillog, /postfix\/cleanup.*: message-id=/).poll(),
    done: new LogCounter(maillog, /: removed$/),
    deferrals: () => new LogCounter(maillog, /status=deferred/).poll(),
    stop: () => stopNs(h, 'master'),
    output: h.output,
  };
}
