// bench/run.ts: postern's benchmark beside Debian's Exim and Postfix (the versions
// bench/fetch-peers.sh unpacked, named in the results: 4.96 and 3.7 on Debian 12) and
// the sink alone, one after the other on the same loads in one run (see bench/README.md).
// Plain Node ESM, no dependencies beyond the project's own (smtp-server for the
// fallback sink, nodemailer's SMTP client for the fallback load generator); the peers
// are Debian's packages unpacked by bench/fetch-peers.sh (bench/peers.ts runs them).
//
//   npm run bench                       all three measurements, every MTA found
//   node dist/bench/run.js --only rates --mtas sink,postern -m 1000
//
// Everything binds 127.0.0.1; every load is bounded in message count and in time;
// the whole run stops starting new steps after --deadline seconds (default 2,400).
// Results: bench/out/results.md (also printed) and bench/out/results.json.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync, fdatasyncSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { HERE, ROOT, UNIT_NODE_FLAGS } from './root.js';
import { LogCounter, SINK_HOST, fatalLines, findPeers, memSampler, peersUsable, prepareExim, startExim, startPostfix, treeCpuSeconds, treeMemory, upstreamVersion, waitForPort, type EximTree, type PeerHandle, type Ports } from './peers.js';

/** One measured row: an MTA on a load in one round. A row with errors is void. */
interface Row {
  mta: string; load: string; round: number; errors: string[];
  messages?: number; size?: number; sessions?: number; warmup?: number;
  rate?: number; ms?: number; submitMs?: number; submitRate?: number; done?: number;
  cpuPer1000?: number; peakPssMB?: number; vmHwmMB?: number; peakMB?: number;
  queued?: number; arrivals?: number; deferrals?: number; sinkCount?: number; othersCpu?: number;
  eximQueuePerConnection?: number | string;
}
interface Load { id: string; label: string; relay: boolean; reuse: boolean; big: boolean; sessions?: number; messages?: number }
interface LoadOpts { host?: string; port: number; sessions: number; messages: number; size: number; reuse: boolean; timeoutMs: number }
interface LoadResult { ms: number; ok: boolean; sent?: number; failed?: number; errors: string[]; command: string }
/** postern's configuration for one run. */
interface Cfg extends Ports { file: string; dir: string; mainlog: string; spool: string }
/** Any MTA under test, behind one face. */
interface Mta {
  rootPid: number; cfg?: Cfg; smtpPort?: number; x?: PeerHandle['x'];
  queued: () => number | Promise<number>; arrivals: () => number; done: { poll(): number }; deferrals: () => number;
  problems?: () => string[]; stop: () => Promise<unknown>;
}
interface Daemon { child: ChildProcess; pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; stderr: () => string }
type Series = { round: number; v: number | undefined }[];
interface Figure { what: string; ref?: Series; postern?: Series; postfix?: Series; exim?: Series; digits?: number; better?: string; refOnly?: boolean }
interface Idle { mta: string; round: number; pssMB?: number; rssMB?: number; value?: number; procs?: string; errors: string[] }
interface Gauge { round: number; cpuJobMs: number; fdatasyncMs: number; othersCpu: number | undefined; load: string }
interface Stats { mean: number; median: number; stddev: number; min: number; max: number }
interface SendmailRow extends Stats { key: string; label: string; roundMedians: number[]; void?: string }
interface FsyncRow { mta: string; label: string; messages: number; reuse: boolean; calls: Record<string, number>; total: number; rate?: number; errors: string[]; net?: number; perMessage?: number }
interface Target { what: string; value?: number; text: string; goal: string; met: string }
interface Results {
  started: string;
  machine: { node: string; os?: string; cpus: number; cpuModel?: string; memGB: number; spoolFs?: string; fdatasyncMs?: number };
  tools: Record<string, string | null>;
  parameters: Record<string, unknown>;
  mtas: string[];
  rates: Record<string, Record<string, Row[]>>;
  sendmail: { tool: string; runs: number; rounds: number; warmup: number; messageBytes: number; rows: SendmailRow[]; checks: string[] } | null;
  fsync: { seccomp: boolean; rows: FsyncRow[] } | null;
  targets: Target[]; notes: string[]; othersCpu: Record<string, number | undefined>;
  rounds?: number; gauge?: Gauge[]; idle?: Record<string, Idle[]>; loadavg?: { start: string; end?: string };
  dist?: string; queuedCfg?: Cfg;
}

const OUT = join(ROOT, 'bench', 'out');
const POSTERN = join(ROOT, 'bin', 'postern');
const SENDMAIL = join(ROOT, 'bin', 'sendmail');
/** sendmail as installed (/usr/sbin/sendmail): the C front end, which hands what it does not do to bin/sendmail. */
const FRONT = join(ROOT, 'dist', 'sendmail');
const NODE = process.execPath;

// ---------------------------------------------------------------------------
// options

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string', default: 'rates,sendmail,fsync' },
    mtas: { type: 'string', default: 'sink,postern,postfix,exim' },
    loads: { type: 'string', default: 'accept-new,accept-reuse,relay-new,relay-reuse,big-new,big-reuse,one-session,hub-down' },
    rounds: { type: 'string', default: '3' },
    'one-messages': { type: 'string', default: '500' },
    'queue-messages': { type: 'string', default: '5000' },
    messages: { type: 'string', short: 'm', default: '2000' },
    'big-messages': { type: 'string', default: '1000' },
    'big-size': { type: 'string', default: '102400' },
    'exim-messages': { type: 'string', default: '500' },
    warmup: { type: 'string', default: '1000' },
    'fsync-messages': { type: 'string', default: '1000' },
    sessions: { type: 'string', short: 's', default: '20' },
    size: { type: 'string', short: 'l', default: '2048' },
    runs: { type: 'string', default: '20' },
    loadgen: { type: 'string', default: process.env.BENCH_LOADGEN ?? 'auto' },
    'step-timeout': { type: 'string', default: '180' },
    deadline: { type: 'string', default: '2400' },
    keep: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    set: { type: 'string', multiple: true, default: [] },
    'wait-quiet': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(readFileSync(join(ROOT, 'bench', 'README.md'), 'utf8'));
  process.exit(0);
}
const int = (name: string, v: string, min = 1): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
/** --set SECTION.KEY=VALUE (TOML value): postern settings other than the defaults, for experiments. */
const SETS = opt.set.map((x) => {
  const m = /^([a-z_]+)\.([a-z_]+)=(.+)$/.exec(x);
  if (!m) throw new Error(`--set ${x}: expected SECTION.KEY=VALUE, e.g. smarthost.connections=16`);
  return { section: m[1]!, key: m[2]!, value: m[3]! };
});
const STEPS = new Set(opt.only.split(',').map((s) => s.trim()).filter(Boolean));
for (const s of STEPS) if (!['rates', 'sendmail', 'fsync'].includes(s)) throw new Error(`unknown step ${s} (rates, sendmail, fsync)`);
const MTAS_ASKED = opt.mtas.split(',').map((s) => s.trim()).filter(Boolean);
for (const m of MTAS_ASKED) if (!['sink', 'postern', 'postfix', 'exim'].includes(m)) throw new Error(`unknown MTA ${m} (sink, postern, postfix, exim)`);
const N = int('messages', opt.messages);
const N_BIG = int('big-messages', opt['big-messages']);
const BIG_SIZE = int('big-size', opt['big-size']);
const N_EXIM = int('exim-messages', opt['exim-messages']);
const WARMUP = int('warmup', opt.warmup, 0);
const N_FSYNC = int('fsync-messages', opt['fsync-messages']);
const ROUNDS = int('rounds', opt.rounds);
const N_ONE = int('one-messages', opt['one-messages']);
const N_QUEUE = int('queue-messages', opt['queue-messages']);
const SESSIONS = int('sessions', opt.sessions);
const SIZE = int('size', opt.size, 0);
const RUNS = int('runs', opt.runs, 2);
const STEP_TIMEOUT = int('step-timeout', opt['step-timeout']) * 1000;
const WAIT_QUIET = int('wait-quiet', opt['wait-quiet'], 0);
const START = Date.now();
const DEADLINE = START + int('deadline', opt.deadline) * 1000;
// Hard caps, whatever the options say.
if (N > 100_000 || N_BIG > 100_000 || N_FSYNC > 100_000 || N_ONE > 100_000 || N_QUEUE > 100_000 || ROUNDS > 9) throw new Error('at most 100000 messages per load');
if (BIG_SIZE > 10 * 2 ** 20) throw new Error('--big-size: at most 10 MB');
if (SESSIONS > 200) throw new Error('at most 200 sessions');

// ---------------------------------------------------------------------------
// tools found on this machine

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A Postfix tool from an unpacked tree needs its private libraries. */
function postfixEnv(tool: string): NodeJS.ProcessEnv {
  const lib = join(dirname(dirname(tool)), 'lib', 'postfix');
  if (!existsSync(lib)) return process.env;
  return { ...process.env, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

/** Exim and Postfix unpacked by bench/fetch-peers.sh (bench/peers/, or $BENCH_PEERS). */
const PEERS = findPeers(resolve(process.env.BENCH_PEERS ?? join(ROOT, 'bench', 'peers')));
const fromEnv = (v: string | undefined) => (v && existsSync(v) ? resolve(v) : undefined);
const SMTP_SOURCE = fromEnv(process.env.SMTP_SOURCE) ?? PEERS.smtpSource;
const SMTP_SINK = fromEnv(process.env.SMTP_SINK) ?? PEERS.smtpSink;
const PEERS_PROBLEM = MTAS_ASKED.some((m) => m === 'exim' || m === 'postfix') ? peersUsable() : undefined;
/** The MTAs this run measures: those asked for that are there (the others are named in the notes). */
const MTAS = MTAS_ASKED.filter((m) => {
  if (m === 'exim') return PEERS.exim && !PEERS_PROBLEM;
  if (m === 'postfix') return PEERS.postfix && !PEERS_PROBLEM;
  return true;
});
const STRACE = process.env.STRACE ?? which('strace');
if (!['auto', 'smtp-source', 'node'].includes(opt.loadgen)) throw new Error('--loadgen is auto, smtp-source or node');
if (opt.loadgen === 'smtp-source' && !SMTP_SOURCE) throw new Error('--loadgen smtp-source needs SMTP_SOURCE=/path/to/smtp-source');
const LOADGEN = opt.loadgen === 'node' || !SMTP_SOURCE ? 'node' : 'smtp-source';

// ---------------------------------------------------------------------------
// small helpers

const log = (s: string) => process.stderr.write(`bench: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => (ms / 1000).toFixed(2);
const rate = (n: number, ms: number) => (ms > 0 ? Math.round((n * 1000) / ms) : 0);
const timeLeft = () => DEADLINE - Date.now();

/** A port on 127.0.0.1 that was free a moment ago (nothing listens on it afterwards). */
function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, host, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => res(port));
    });
  });
}

/** Runs a command to completion (bounded); resolves { code, signal, stdout, stderr, ms }. */
interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number; timedOut: boolean }
function run(cmd: string, args: string[], { env = process.env, timeoutMs = STEP_TIMEOUT, input, cwd = ROOT }: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => { if (stdout.length < 1e6) stdout += d; });
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 1e6) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); rej(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const countLines = (file: string, re: RegExp) => new LogCounter(file, re).poll();

/**
 * User-mode CPU used by processes that are not ours while a measurement runs, as a
 * percentage of the whole machine: user time from /proc/stat minus our own and our
 * reaped children's user time from /proc/self/stat (the daemons, the load generator,
 * the sink, hyperfine and strace are all our children and have exited by the end of
 * each measurement). Other work on the machine (a test suite, another daemon) makes
 * the numbers lower and noisier.
 */
function cpuSnapshot() {
  try {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const st = readFileSync('/proc/self/stat', 'utf8');
    const r = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number);
    // utime and cutime are fields 14 and 16, i.e. r[11] and r[13]. User mode only: the
    // kernel's own threads (ext4's journal, softirq for loopback TCP) also work for us.
    return { busy: f[0]! + f[1]!, total, ours: r[11]! + r[13]! };
  } catch {
    return undefined;
  }
}

function cpuWatch() {
  const a = cpuSnapshot();
  return () => {
    const b = cpuSnapshot();
    if (!a || !b || b.total === a.total) return undefined;
    return Math.max(0, Math.round((100 * (b.busy - a.busy - (b.ours - a.ours))) / (b.total - a.total)));
  };
}

function noteOthers(label: string, pct: number | undefined): number | undefined {
  if (pct !== undefined && pct >= 10) {
    const msg = `other processes used about ${pct}% of the machine's CPU during "${label}": its numbers are low and noisy`;
    log(`warning: ${msg}`);
    results.notes.push(msg);
  }
  return pct;
}

/** With --wait-quiet S: waits (at most S seconds) for a second in which others use under 10% of the CPUs. */
async function waitQuiet(label: string): Promise<void> {
  if (WAIT_QUIET <= 0) return;
  const until = Math.min(Date.now() + WAIT_QUIET * 1000, DEADLINE - 60_000);
  let busy;
  do {
    const stop = cpuWatch();
    await sleep(1000);
    busy = stop();
    if (busy !== undefined && busy < 10) return;
  } while (Date.now() < until);
  log(`"${label}": the machine did not get quiet within ${WAIT_QUIET} s (others at ${busy}%): measuring anyway`);
}

async function watched<T>(label: string, fn: () => Promise<T>, row?: () => Row | undefined): Promise<T> {
  await waitQuiet(label);
  const stop = cpuWatch();
  const r = await fn();
  const pct = noteOthers(label, stop());
  if (row) {
    const r0 = row();
    if (r0) r0.othersCpu = pct;
  } else results.othersCpu[label] = pct;
  return r;
}

// ---------------------------------------------------------------------------
// postern under test

const workDirs: string[] = [];
/** Every long-running child we started (daemons, sinks), so a crash does not leave them behind. */
const live = new Set<number>();
function killLive() {
  for (const pid of live) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}
process.on('uncaughtException', (e: Error) => {
  log(`error: ${(e as Error).stack ?? (e as Error).message}`);
  results.notes.push(`bench stopped: ${(e as Error).message}`);
  try { process.stdout.write(save()); } catch { /* nothing more to do */ }
  killLive();
  process.exit(1);
});
function dropDir(d: string): void {
  if (opt.keep) return;
  rmSync(d, { recursive: true, force: true });
  workDirs.splice(workDirs.indexOf(d), 1);
}
function workDir(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `postern-bench-${name}-`));
  workDirs.push(d);
  return d;
}

/**
 * config/postern.toml with the listener, spool, log and smarthost changed: the bench
 * runs postern's own default settings otherwise.
 */
function writeConfig(dir: string, { smtpPort, smarthostPort }: Ports): Cfg {
  const base = readFileSync(join(ROOT, 'config', 'postern.toml'), 'utf8').split('\n');
  let section = '';
  const done = new Set();
  const out = base.map((line) => {
    const s = /^\s*\[([^\]]+)\]/.exec(line);
    if (s) section = s[1]!.trim();
    const key = /^\s*([A-Za-z_]+)\s*=/.exec(line)?.[1];
    const set = (k: string, v: string) => { done.add(`${section}.${k}`); return `${k} = ${v}`; };
    if (section === 'listen' && key === 'smtp') return set('smtp', `["127.0.0.1:${smtpPort}"]`);
    if (section === 'spool' && key === 'directory') return set('directory', '"spool"');
    if (section === 'log' && key === 'file') return set('file', '"mainlog"');
    if (section === 'smarthost' && key === 'hosts') return set('hosts', `["${SINK_HOST}:${smarthostPort}"]`);
    const o = SETS.find((x) => x.section === section && x.key === key);
    if (o && key) return set(key, o.value);
    return line;
  });
  for (const k of ['listen.smtp', 'spool.directory', 'log.file', 'smarthost.hosts', ...SETS.map((x) => `${x.section}.${x.key}`)]) {
    if (!done.has(k)) throw new Error(`config/postern.toml has no ${k} line to change; update bench/run.ts`);
  }
  // One client and one user send the whole load: [limits] would hold most of it (Exim
  // and Postfix, measured beside it, have no rate limit set up either).
  if (!base.some((l) => /^\s*\[limits\]/.test(l))) out.push('', '[limits]', 'per_user = "off"', 'per_client = "off"', '');
  const file = join(dir, 'postern.toml');
  writeFileSync(file, out.join('\n'));
  return { file, dir, mainlog: join(dir, 'mainlog'), spool: join(dir, 'spool'), smtpPort, smarthostPort };
}

/**
 * The daemon's own pid: it differs from child.pid under a wrapper such as strace. Read
 * from its `daemon started: pid=N` log line, which the log stream may write a moment
 * after "ready".
 */
async function daemonPid(cfg: Cfg, child: ChildProcess): Promise<number> {
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const text = existsSync(cfg.mainlog) ? readFileSync(cfg.mainlog, 'utf8') : '';
    const started = text.match(/daemon started: pid=(\d+)/g);
    if (started) return Number(/pid=(\d+)/.exec(started.at(-1) ?? '')?.[1]);
    await sleep(20);
  }
  throw new Error(`no "daemon started: pid=" line in ${cfg.mainlog} 5 s after ready (child pid ${child.pid})`);
}

/** Starts `postern -bd -q1m` (optionally under a wrapper such as strace) and waits for "ready". */
function startDaemon(cfg: Cfg, wrapper: string[] = []): Promise<Daemon> {
  return new Promise((res, rej) => {
    // --profile: every daemon writes a V8 CPU profile into bench/out/profiles/ when it stops.
    const prof = opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(OUT, 'profiles')}`, `--cpu-prof-name=${basename(cfg.dir)}.cpuprofile`] : [];
    // V8's flags as the systemd unit gives them (config/postern.service's NODE_OPTIONS).
    const args = [...wrapper, NODE, ...UNIT_NODE_FLAGS, ...prof, POSTERN, '-C', cfg.file, '-bd', '-q1m'];
    const child = spawn(args[0]!, args.slice(1), { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child.pid!);
    child.once('close', () => live.delete(child.pid!));
    let stderr = '';
    let ready = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`daemon not ready after 20 s: ${stderr}`)); }, 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      if (!ready && /postern: ready, listening for SMTP on/.test(stderr)) {
        ready = true;
        clearTimeout(timer);
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
        void daemonPid(cfg, child).then((pid) => {
          live.add(pid);
          void exited.then(() => live.delete(pid));
          res({ child, pid, exited, stderr: () => stderr });
        }, (e) => {
          child.kill('SIGKILL');
          rej(e);
        });
      }
    });
    child.once('close', (code) => {
      if (!ready) { clearTimeout(timer); rej(new Error(`daemon exited (${code}) before ready: ${stderr}`)); }
    });
  });
}

/** Peak and current resident memory of a process, in MB (Linux). */
function memory(pid: number): { peakMB: number; rssMB: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
    return { peakMB: Math.round(kb('VmHWM') / 1024), rssMB: Math.round(kb('VmRSS') / 1024) };
  } catch {
    return { peakMB: NaN, rssMB: NaN };
  }
}

/** SIGTERM to the daemon itself, then wait (bounded) for it and any wrapper to exit. */
async function stopDaemon(d: Daemon): Promise<unknown> {
  try { process.kill(d.pid, 'SIGTERM'); } catch { /* already gone */ }
  const r = await Promise.race([d.exited, sleep(40_000).then(() => undefined)]);
  if (r) return r;
  log(`daemon ${d.pid} did not stop in 40 s: killing it`);
  try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ }
  try { d.child.kill('SIGKILL'); } catch { /* gone */ }
  return d.exited;
}

async function queueCount(cfg: Cfg): Promise<number> {
  const r = await run(NODE, [POSTERN, '-C', cfg.file, '-bpc'], { timeoutMs: 60_000 });
  const n = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isInteger(n)) throw new Error(`postern -bpc failed (${r.code}): ${r.stderr}`);
  return n;
}

// ---------------------------------------------------------------------------
// load generators

function smtpSourceArgs({ host = '127.0.0.1', port, sessions, messages, size, reuse }: LoadOpts): string[] {
  return ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', 'a@example.org', '-t', 'b@example.org',
    ...(reuse ? ['-d'] : []), `${host}:${port}`];
}

async function loadSmtpSource(o: LoadOpts): Promise<LoadResult> {
  const r = await run(SMTP_SOURCE!, smtpSourceArgs(o), { env: postfixEnv(SMTP_SOURCE!), timeoutMs: o.timeoutMs });
  const problems = r.stderr.split('\n').filter(Boolean);
  return { ms: r.ms, ok: r.code === 0 && !r.timedOut, sent: undefined, failed: undefined,
    errors: [...(r.timedOut ? ['timed out'] : []), ...(r.code !== 0 && !r.timedOut ? [`smtp-source exited ${r.code ?? r.signal}`] : []), ...problems.slice(0, 5)], command: `smtp-source ${smtpSourceArgs(o).join(' ')}` };
}

function message(i: number, size: number): string {
  const headers = `From: a@example.org\r\nTo: b@example.org\r\nSubject: bench ${i}\r\nMessage-ID: <bench.${process.pid}.${i}@example.org>\r\n`;
  const line = 'X'.repeat(78) + '\r\n';
  let body = line.repeat(Math.floor(size / line.length));
  body += 'Y'.repeat(Math.max(0, size - body.length - 2)) + (size - body.length >= 2 ? '\r\n' : '');
  return headers + '\r\n' + body;
}

/** 20 (or `sessions`) concurrent nodemailer SMTP sessions sharing one message counter. */
async function loadNode({ host = '127.0.0.1', port, sessions, messages, size, reuse, timeoutMs }: LoadOpts): Promise<LoadResult> {
  const { default: SMTPConnection } = await import('nodemailer/lib/smtp-connection/index.js');
  const until = Date.now() + timeoutMs;
  let next = 0;
  let sent = 0;
  let failed = 0;
  const errors: string[] = [];
  const note = (e: Error) => { failed++; if (errors.length < 5) errors.push((e as Error).message ?? String(e)); };
  type Conn = InstanceType<typeof SMTPConnection>;
  const connect = () => new Promise<Conn>((res, rej) => {
    const c = new SMTPConnection({ host, port, name: 'loadgen.example.org', ignoreTLS: true, logger: false,
      connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 60_000 });
    c.once('error', rej);
    c.connect(() => { c.off('error', rej); c.on('error', () => {}); res(c); });
  });
  const send = (c: Conn, i: number) => new Promise<void>((res, rej) => {
    c.send({ from: 'a@example.org', to: ['b@example.org'] }, message(i, size), (err, info) => {
      if (err) rej(err);
      else if (info.accepted.length !== 1) rej(new Error(`not accepted: ${info.response}`));
      else res();
    });
  });
  const reset = (c: Conn) => new Promise<void>((res, rej) => c.reset((err) => (err ? rej(err) : res())));
  const quit = (c: Conn) => new Promise<void>((res) => {
    const t = setTimeout(() => { c.close(); res(); }, 5000);
    c.once('end', () => { clearTimeout(t); res(); });
    c.quit();
  });
  const session = async () => {
    let c: Conn | undefined;
    while (next < messages && Date.now() < until) {
      const i = next++;
      try {
        if (!c) c = await connect();
        await send(c, i);
        sent++;
        if (reuse) await reset(c);
        else { await quit(c); c = undefined; }
      } catch (e) {
        note(e as Error);
        try { c?.close(); } catch { /* closed */ }
        c = undefined;
      }
    }
    if (c) await quit(c);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, session));
  const ms = performance.now() - t0;
  if (next < messages) errors.push(`time limit: only ${next} of ${messages} messages started`);
  return { ms, ok: failed === 0 && next >= messages, sent, failed, errors,
    command: `nodemailer SMTPConnection, ${sessions} sessions, ${messages} messages, ${reuse ? 'RSET between messages' : 'QUIT after each'}` };
}

function load(o: LoadOpts): Promise<LoadResult> {
  return LOADGEN === 'smtp-source' ? loadSmtpSource(o) : loadNode(o);
}

// ---------------------------------------------------------------------------
// sink for the end-to-end measurement

interface Sink { counter: { count: number }; pid: number; name: string; stop: () => Promise<string> }
async function startSink(port: number): Promise<Sink> {
  const counter = { count: 0 };
  let child: ChildProcess;
  if (SMTP_SINK) {
    // -c: counters on stdout ("\r"-separated); backlog 1000.
    child = spawn(SMTP_SINK, ['-c', '-u', 'root', `${SINK_HOST}:${port}`, '1000'], { env: postfixEnv(SMTP_SINK), stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    child = spawn(NODE, [join(HERE, 'sink.js'), String(port), String(Math.ceil(STEP_TIMEOUT / 1000) + 60), SINK_HOST], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  }
  live.add(child.pid!);
  child.once('close', () => live.delete(child.pid!));
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf = (buf + d).slice(-4096);
    // smtp-sink -c: "<sessions> <quits> <messages>"-style counters; bench/sink.ts: "count N".
    const parts = buf.split(/[\r\n]+/).filter(Boolean);
    const last = parts.at(-1) ?? '';
    const m = SMTP_SINK ? /(\d+)\s*$/.exec(last) : /^count (\d+)/.exec(last);
    if (m) counter.count = Number(m[1]);
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d; });
  const exited = new Promise((r) => child.once('close', r));
  await waitForPort(port, 10_000, () => undefined, SINK_HOST);
  return {
    counter,
    pid: child.pid!,
    name: SMTP_SINK ? `smtp-sink -c -u root ${SINK_HOST}:${port} 1000` : `node dist/bench/sink.js ${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      const r = await Promise.race([exited, sleep(5000).then(() => 'late')]);
      if (r === 'late') { child.kill('SIGKILL'); await exited; }
      return stderr;
    },
  };
}

// ---------------------------------------------------------------------------
// results

/** The machine's system as /etc/os-release names it (e.g. "Debian GNU/Linux 12 (bookworm)"). */
function osRelease(): string | undefined {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

const results: Results = {
  started: new Date(START).toISOString(),
  machine: { node: process.version, os: osRelease(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memGB: Math.round(totalmem() / 2 ** 30) },
  tools: { loadgen: LOADGEN, smtpSource: SMTP_SOURCE ?? null, smtpSink: SMTP_SINK ?? null, strace: STRACE ?? null, peers: PEERS.dir,
    postfix: PEERS.postfixVersion ?? null, exim: PEERS.eximVersion ?? null },
  parameters: { posternSettings: opt.set, messages: N, bigMessages: N_BIG, bigSize: BIG_SIZE, eximMessages: N_EXIM, warmup: WARMUP, fsyncMessages: N_FSYNC, sessions: SESSIONS, size: SIZE, runs: RUNS },
  mtas: MTAS, rates: {}, sendmail: null, fsync: null, targets: [], notes: [], othersCpu: {},
};

/** A short hash of the .js files under dist/: which build was measured (others may rebuild it during a run). */
function distFingerprint() {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) { if (p !== join(ROOT, 'dist', 'bench')) walk(p); } else if (p.endsWith('.js')) h.update(p).update(readFileSync(p));
    }
  };
  walk(join(ROOT, 'dist'));
  return h.digest('hex').slice(0, 12);
}

function distFreshness() {
  const newest = (dir: string, ext: string): number => {
    let t = 0;
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) { if (p !== join(ROOT, 'dist', 'bench')) walk(p); } else if (p.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
      }
    };
    if (existsSync(dir)) walk(dir);
    return t;
  };
  const src = newest(join(ROOT, 'src'), '.ts');
  const dist = newest(join(ROOT, 'dist'), '.js');
  if (!dist) throw new Error('dist/ is empty: build first (npm run build)');
  if (src > dist) {
    const msg = 'src/ has changes newer than dist/: numbers are for the last build (run npm run build first)';
    log(`warning: ${msg}`);
    results.notes.push(msg);
  }
  // bin/ runs sendmail's submission bundle only when it is not older than tsc's last build.
  const at = (f: string) => (existsSync(join(ROOT, 'dist', f)) ? statSync(join(ROOT, 'dist', f)).mtimeMs : 0);
  if (at('cli/submit.cjs') < at('.tsbuildinfo')) {
    const msg = 'dist/cli/submit.cjs is missing or older than tsc\'s last build: `sendmail` runs main.js, its slow start (run npm run build first)';
    log(`warning: ${msg}`);
    results.notes.push(msg);
  }
  if (!existsSync(FRONT)) throw new Error('dist/sendmail (the C front end) is missing: build first (npm run build)');
}

const pct = (v: number | undefined) => (v === undefined ? '?' : `${v}%`);

/** A Markdown table; a cell's line breaks (a peer's output in an error) become " ⏎ " and its bars are escaped, so each row stays one line. */
function table(headers: string[], rows: (string | number | undefined)[][]): string {
  const c = (v: string | number | undefined) => String(v ?? '').replace(/\s*\n\s*/g, ' ⏎ ').replace(/\|/g, '\\|');
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(c).join(' | ')} |`)].join('\n');
}

/** The MTAs' names in the results: the peers with the upstream version of the package unpacked (Debian 12: Postfix 3.7.11, Exim 4.96). */
const NAMES: Record<string, string> = {
  sink: 'sink alone', postern: 'postern',
  postfix: PEERS.postfixVersion ? `Postfix ${upstreamVersion(PEERS.postfixVersion)}` : 'Postfix',
  exim: PEERS.eximVersion ? `Exim ${upstreamVersion(PEERS.eximVersion)}` : 'Exim',
};
/** The peers' Debian packages, for the header of the results. */
const peerPackages = (mtas: string[]): string => [['postfix', 'postfix', PEERS.postfixVersion], ['exim', 'exim4', PEERS.eximVersion]]
  .filter(([m]) => mtas.includes(m!)).map(([, pkg, v]) => `${pkg} ${v ?? '(version unknown)'}`).join(', ');
const fmt = (v: number | undefined | null, digits = 0): string => (v === undefined || v === null || Number.isNaN(v) ? 'n/a' : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/**
 * The loads: the same for every MTA (Exim, at its speed, gets at most --exim-messages of
 * them). `sessions` and `messages` default to --sessions and -m.
 */
const LOADS: Load[] = [
  { id: 'accept-new', label: 'accept, smarthost down, one message per connection', relay: false, reuse: false, big: false },
  { id: 'accept-reuse', label: 'accept, smarthost down, connections reused', relay: false, reuse: true, big: false },
  { id: 'relay-new', label: 'relay end to end, one message per connection', relay: true, reuse: false, big: false },
  { id: 'relay-reuse', label: 'relay end to end, connections reused', relay: true, reuse: true, big: false },
  { id: 'big-new', label: `relay ${Math.round(BIG_SIZE / 1024)} KB messages, one per connection`, relay: true, reuse: false, big: true },
  { id: 'big-reuse', label: `relay ${Math.round(BIG_SIZE / 1024)} KB messages, connections reused`, relay: true, reuse: true, big: true },
  // A VM's real traffic: one client at a time, so group commit has nothing to group.
  { id: 'one-session', label: 'relay end to end, one session (one message at a time)', relay: true, reuse: true, big: false, sessions: 1, messages: N_ONE },
  // The hub down while the queue grows (a satellite's worst day).
  { id: 'hub-down', label: `accept, smarthost down, queue growing to ${N_QUEUE.toLocaleString('en-US')}`, relay: false, reuse: false, big: false, messages: N_QUEUE },
];
/** The sink alone takes the same loads straight from the load generator (the accept rows share the relay rows' figure). */
const SINK_LOAD: Record<string, string> = { 'accept-new': 'relay-new', 'accept-reuse': 'relay-reuse', 'relay-new': 'relay-new', 'relay-reuse': 'relay-reuse', 'big-new': 'big-new', 'big-reuse': 'big-reuse', 'one-session': 'one-session', 'hub-down': 'relay-new' };
const loadSessions = (ld: Load): number => ld.sessions ?? SESSIONS;
const loadMessages = (mta: string, ld: Load): number => Math.min(ld.messages ?? (ld.big ? N_BIG : N), mta === 'exim' ? N_EXIM : Infinity);
/** Messages of the same load sent first and not timed (--warmup): a daemon in service is warm (JIT, caches, pools); Exim gets a fifth; one session a fifth too. */
const warmupMessages = (mta: string, ld?: Load): number => (mta === 'sink' ? 0 : Math.ceil(WARMUP / (mta === 'exim' ? 5 : 1) / (ld?.sessions === 1 ? 5 : 1)));

function stats(times: number[]): Stats {
  const a = [...times].sort((x, y) => x - y);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const median = a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
  const stddev = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, a.length - 1));
  return { mean, median, stddev, min: a[0]!, max: a.at(-1)! };
}

// ---------------------------------------------------------------------------
// the MTAs, behind one face

/**
 * Starts one MTA on a private spool in dir, SMTP on ports.smtpPort, relaying to
 * SINK_HOST:ports.smarthostPort. rootPid is the top of its process tree (for CPU and
 * memory); queued() counts its queue; done counts its "message finished" log lines;
 * problems() lists the MTA's own fatal or panic lines.
 */
async function startMta(mta: string, dir: string, ports: Ports, wrapper: string[] = [], opts: { queuePerConnection0?: boolean } = {}): Promise<Mta> {
  if (mta === 'postern') {
    const cfg = writeConfig(dir, ports);
    const d = await startDaemon(cfg, wrapper);
    return {
      rootPid: d.pid, cfg,
      queued: () => queueCount(cfg),
      arrivals: () => countLines(cfg.mainlog, / <= /),
      done: new LogCounter(cfg.mainlog, / Completed$/),
      deferrals: () => countLines(cfg.mainlog, / == /),
      problems: () => (existsSync(cfg.mainlog) ? readFileSync(cfg.mainlog, 'utf8').slice(-50_000) : '').split('\n').filter((l) => /panic|fatal|uncaught/i.test(l)).slice(-3),
      stop: () => stopDaemon(d),
    };
  }
  const h: PeerHandle = await (mta === 'exim' ? startExim(PEERS, dir, ports, wrapper, opts) : startPostfix(PEERS, dir, ports, wrapper));
  live.add(h.rootPid);
  const stop = h.stop;
  h.stop = async () => { const r = await stop(); live.delete(h.rootPid); return r; };
  return h;
}

/** The rows of one load and MTA, one per round. */
const rowsOf = (id: string, mta: string): Row[] => ((results.rates[id] ??= {})[mta] ??= []);

// ---------------------------------------------------------------------------
// 1. rates, CPU and memory: every load, every MTA, in every round

async function measureRate(mta: string, ld: Load, round: number): Promise<Row> {
  const n = loadMessages(mta, ld);
  const size = ld.big ? BIG_SIZE : SIZE;
  const sessions = loadSessions(ld);
  const row: Row = { mta, load: ld.id, round, messages: n, size, sessions, errors: [] };
  const until = Date.now() + Math.min(STEP_TIMEOUT, timeLeft());
  const sinkPort = await freePort(SINK_HOST);
  const sink = ld.relay || mta === 'sink' ? await startSink(sinkPort) : undefined;
  let h: Mta | undefined;
  let dir: string | undefined;
  try {
    if (mta === 'sink' && sink) {
      const cpu0 = treeCpuSeconds(sink.pid);
      const l = await load({ host: SINK_HOST, port: sinkPort, sessions, messages: n, size, reuse: ld.reuse, timeoutMs: until - Date.now() });
      row.errors.push(...l.errors);
      row.rate = rate(n, l.ms);
      row.ms = l.ms;
      while (sink.counter.count < n && Date.now() < until) await sleep(20);
      row.cpuPer1000 = ((treeCpuSeconds(sink.pid) - cpu0) * 1000) / n;
      row.sinkCount = sink.counter.count;
      if (row.sinkCount < n) row.errors.push(`the sink counted ${row.sinkCount} of ${n}`);
      return row;
    }
    dir = workDir(`${mta}-${ld.id}`);
    // Exim's default smtp_accept_queue_per_connection (10) would leave the 11th message
    // of a reused connection for the queue run 30 minutes later: 0 for those relay loads only.
    h = await startMta(mta, dir, { smtpPort: await freePort(), smarthostPort: sinkPort }, [], { queuePerConnection0: ld.relay && ld.reuse });
    if (mta === 'exim') row.eximQueuePerConnection = ld.relay && ld.reuse ? 0 : 'default (10)';
    const port = h.smtpPort ?? h.cfg!.smtpPort;
    const stopMem = memSampler(h.rootPid);
    // Warm-up: the same load, untimed, until every message is finished (relay) or
    // arrived and tried (accept); the timed load then counts on top of it.
    const w = warmupMessages(mta, ld);
    row.warmup = w;
    if (w > 0) {
      const lw = await load({ port, sessions, messages: w, size, reuse: ld.reuse, timeoutMs: until - Date.now() });
      row.errors.push(...lw.errors.map((e) => `warm-up: ${e}`));
      if (ld.relay) while (h.done.poll() < w && Date.now() < until) await sleep(20);
      else {
        while (h.arrivals() < w && Date.now() < until) await sleep(50);
        await sleep(1000);
      }
    }
    const cpu0 = treeCpuSeconds(h.rootPid);
    const t0 = performance.now();
    const l = await load({ port, sessions, messages: n, size, reuse: ld.reuse, timeoutMs: until - Date.now() });
    row.errors.push(...l.errors);
    row.submitMs = l.ms;
    row.submitRate = rate(n, l.ms);
    if (ld.relay) {
      while (h.done.poll() < n + w && Date.now() < until) await sleep(20);
      row.done = h.done.poll() - w;
      if (row.done >= n) {
        row.ms = performance.now() - t0;
        row.rate = rate(n, row.ms);
      } else row.errors.push(`only ${row.done} of ${n} delivered before the time limit`);
    } else {
      row.ms = l.ms;
      row.rate = row.submitRate;
      await sleep(1000); // the first delivery attempts to the closed port, in every MTA
    }
    row.cpuPer1000 = ((treeCpuSeconds(h.rootPid) - cpu0) * 1000) / n;
    row.peakPssMB = stopMem();
    // postern is one process: its own peak RSS (VmHWM). Its PSS is understated when the
    // bench's node shares its pages; the peers' many processes are summed as PSS.
    if (mta === 'postern') row.vmHwmMB = memory(h.rootPid).peakMB;
    row.peakMB = mta === 'postern' ? row.vmHwmMB : row.peakPssMB;
    row.queued = await h.queued();
    row.arrivals = h.arrivals() - w;
    if (row.arrivals !== n) row.errors.push(`${row.arrivals} arrivals logged after the warm-up, expected ${n}`);
    if (ld.relay) {
      await sleep(200);
      row.sinkCount = (sink?.counter.count ?? 0) - w;
      row.deferrals = h.deferrals();
      if (row.queued !== 0) row.errors.push(`${row.queued} still queued`);
      if (row.deferrals) row.errors.push(`${row.deferrals} deferrals logged`);
      if (row.sinkCount < n) row.errors.push(`the sink counted ${row.sinkCount} of ${n}`);
    } else if (row.queued !== n + w) row.errors.push(`queue holds ${row.queued}, expected ${n + w} (${w} of them from the warm-up)`);
    const own = h.problems?.() ?? [];
    if (own.length) row.errors.push(`${NAMES[mta]} logged: ${own.join(' | ')}`);
    if (mta === 'postern' && ld.id === 'accept-reuse' && !row.errors.length) {
      if (results.queuedCfg && results.queuedCfg.dir !== dir) dropDir(results.queuedCfg.dir);
      results.queuedCfg = h.cfg;
    }
    return row;
  } finally {
    if (h) await h.stop();
    if (sink) await sink.stop();
    // Spools go at once (the peers' folders hold copies of /etc and /usr/sbin); postern's
    // accept-reuse spool stays for the -bp timing.
    if (dir && results.queuedCfg?.dir !== dir) dropDir(dir);
  }
}

/**
 * Idle memory of each MTA a few seconds after its start, smarthost down, empty queue:
 * Σ PSS and Σ RSS of its processes (Exim's daemon; Postfix's master, qmgr, pickup and
 * whatever else it keeps; postern's one process).
 */
async function measureIdle(mta: string, round: number): Promise<Idle> {
  const dir = workDir(`idle-${mta}`);
  const h = await startMta(mta, dir, { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) });
  try {
    await sleep(5000);
    const m = treeMemory(h.rootPid);
    const own = mta === 'postern' ? memory(h.rootPid) : undefined;
    // Postfix's resident set is master, qmgr and pickup; the smtpd and proxymap the
    // bench's port probe started and postlogd (the bench's maillog_file instead of
    // syslog) are in the details, not in the figure.
    const postfix = m.procs.filter((p) => ['master', 'qmgr', 'pickup'].includes(p.comm)).reduce((t, p) => t + p.pssMB, 0);
    return { mta, round, pssMB: Math.round(m.pssMB * 10) / 10, rssMB: Math.round(m.rssMB * 10) / 10,
      value: own ? own.rssMB : mta === 'postfix' ? Math.round(postfix * 10) / 10 : Math.round(m.pssMB * 10) / 10,
      procs: m.procs.map((p) => `${p.comm} ${p.rssMB}/${p.pssMB}`).join(', '), errors: [] };
  } finally {
    await h.stop();
    dropDir(dir);
  }
}

/**
 * The noise gauge: a fixed CPU job (SHA-256 over 64 MB in a fresh node, 3 times; the
 * fastest) and the disk's 4 KB write + fdatasync, at the start of each round. On a quiet
 * machine both stay within a few per cent from round to round; their spread is the
 * noise the round's figures carry.
 */
async function noiseGauge(round: number): Promise<Gauge> {
  const job = "const c=require('crypto');const b=Buffer.alloc(1<<20,7);const t=performance.now();const h=c.createHash('sha256');for(let i=0;i<64;i++)h.update(b);h.digest();process.stdout.write(String(performance.now()-t))";
  const times = [];
  for (let i = 0; i < 3; i++) {
    const r = await run(NODE, ['-e', job], { timeoutMs: 60_000 });
    times.push(Number(r.stdout));
  }
  const snap = cpuWatch();
  await sleep(1000);
  const others = snap();
  return { round, cpuJobMs: Math.round(Math.min(...times) * 10) / 10, fdatasyncMs: fdatasyncProbe(), othersCpu: others, load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') };
}

async function measureRates() {
  const chosen = opt.loads.split(',').map((x) => x.trim());
  for (const id of chosen) if (!LOADS.some((l) => l.id === id)) throw new Error(`unknown load ${id} (${LOADS.map((l) => l.id).join(', ')})`);
  results.rounds = ROUNDS;
  results.gauge = [];
  results.idle = {};
  for (let round = 1; round <= ROUNDS; round++) {
    if (timeLeft() < 60_000) { results.notes.push(`rates: round ${round} and later skipped, out of time`); break; }
    const g = await noiseGauge(round);
    results.gauge.push(g);
    log(`round ${round} of ${ROUNDS}: noise gauge ${g.cpuJobMs} ms CPU job, ${g.fdatasyncMs} ms fdatasync, others' CPU ${pct(g.othersCpu)}, load ${g.load}`);
    for (const mta of MTAS.filter((m) => m !== 'sink')) {
      try {
        const r = await measureIdle(mta, round);
        (results.idle[mta] ??= []).push(r);
        log(`  idle ${NAMES[mta]}: ${r.value} MB (Σ PSS ${r.pssMB}, Σ RSS ${r.rssMB}: ${r.procs})`);
      } catch (e) {
        (results.idle[mta] ??= []).push({ mta, round, errors: [`failed: ${(e as Error).message.slice(0, 600)}`] });
        log(`  idle ${NAMES[mta]} failed: ${(e as Error).message.slice(0, 600)}`);
      }
    }
    save();
    for (const ld of LOADS.filter((l) => chosen.includes(l.id))) {
      for (const mta of MTAS) {
        if (mta === 'sink' && SINK_LOAD[ld.id] !== ld.id) continue;
        if (timeLeft() < 30_000) { results.notes.push(`rates: ${NAMES[mta]} on "${ld.label}" round ${round} skipped, out of time`); continue; }
        log(`round ${round}, ${ld.label}: ${NAMES[mta]}, ${loadMessages(mta, ld)} messages`);
        let measured: Row | undefined;
        await watched(`${ld.id} ${mta} round ${round}`, async () => {
          try {
            measured = await measureRate(mta, ld, round);
          } catch (e) {
            measured = { mta, load: ld.id, round, errors: [`failed: ${(e as Error).message.slice(0, 900)}`] };
          }
        }, () => measured);
        const row: Row = measured ?? { mta, load: ld.id, round, errors: ['not measured'] };
        rowsOf(ld.id, mta).push(row);
        log(`  ${row.rate ?? '?'} msg/s, CPU ${fmt(row.cpuPer1000, 2)} s per 1,000, memory ${row.peakMB ?? '?'} MB${row.errors.length ? `; VOID: ${row.errors.join('; ')}` : ''}`);
        save();
      }
    }
  }
}

// ---------------------------------------------------------------------------
// 2. whole-process time of one submission

/** Times runs of one command (after warm-up runs) with bench/timecmd.ts, inside wrap's mount namespace if given. */
async function timeCommand(argv: string[], stdin: string | undefined, wrap: { enter: string; env: NodeJS.ProcessEnv } | undefined, runs: number, warmup: number): Promise<number[]> {
  const spec = JSON.stringify({ argv, runs, warmup, stdin });
  const inner = [NODE, join(HERE, 'timecmd.js'), spec];
  const r = wrap
    ? await run('unshare', ['-m', 'sh', '-c', `${wrap.enter} && exec "$@"`, 'sh', ...inner], { env: wrap.env, timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) })
    : await run(inner[0]!, inner.slice(1), { timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) });
  if (r.code !== 0) {
    // The command's own fatal line first (postdrop's, Exim's), then the rest of what it said.
    const own = fatalLines(r.stderr);
    throw new Error(`${basename(argv[0]!)} failed${own.length ? `: ${own.join(' | ')}` : ''} (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}); output: ${r.stderr.slice(-800)}`);
  }
  return JSON.parse(r.stdout).times;
}

/**
 * Every command is timed in ROUNDS rounds, the commands taking turns within each, so a
 * busy spell on the shared machine hits them all alike rather than one of them.
 */
async function measureSendmail() {
  const up = writeConfig(workDir('sendmail-up'), { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) });
  const down = writeConfig(workDir('sendmail-down'), { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) });
  const msgFile = join(up.dir, 'message.eml');
  const body = 'This is a bench message.\n'.repeat(Math.max(1, Math.floor(SIZE / 25)));
  writeFileSync(msgFile, `From: bench <a@example.org>\nTo: b@example.org\nSubject: sendmail bench\n\n${body}`);
  // bin/sendmail is an ES module: what Node's ESM loader alone costs on top of -e 0.
  const emptyMjs = join(up.dir, 'empty.mjs');
  writeFileSync(emptyMjs, '');
  const rounds = Math.min(4, RUNS);
  const perRound = Math.ceil(RUNS / rounds);
  const warmup = 1;
  const expect = rounds * (perRound + warmup);
  const checks: string[] = [];
  const commands: { key: string; label: string; argv: string[]; stdin?: string; wrap?: { enter: string; env: NodeJS.ProcessEnv } }[] = [
    { key: 'node', label: '`node -e 0`', argv: [NODE, '-e', '0'] },
    { key: 'mjs', label: '`node empty.mjs` (an empty ES module)', argv: [NODE, emptyMjs] },
    { key: 'up', label: '`sendmail -t -i`, daemon running', argv: [FRONT, '-C', up.file, '-t', '-i'], stdin: msgFile },
    // The first goes to node, which makes the maildrop and writes the front end's settings; the rest are the front end's.
    { key: 'down', label: '`sendmail -t -i`, daemon down', argv: [FRONT, '-C', down.file, '-t', '-i'], stdin: msgFile },
    // A flag the front end leaves to node (-N never: accepted, not acted on): the path that needs node.
    { key: 'handed', label: '`sendmail -N never -t -i` (the front end hands it to node), daemon running', argv: [FRONT, '-C', up.file, '-N', 'never', '-t', '-i'], stdin: msgFile },
    { key: 'node-up', label: 'node\'s `bin/sendmail -t -i` alone, daemon running', argv: [SENDMAIL, '-C', up.file, '-t', '-i'], stdin: msgFile },
  ];
  // A peer that cannot be set up, or a command that fails, is left out with its own
  // words in the notes; the other commands are still timed (nothing measured is lost).
  const leftOut = (what: string, e: unknown) => {
    const msg = `sendmail: ${what} not timed: ${(e as Error).message.slice(0, 900)}`;
    results.notes.push(msg);
    log(msg);
  };
  let eximDir: string | undefined;
  let eximX: EximTree | undefined;
  if (MTAS.includes('exim')) {
    try {
      eximDir = workDir('sendmail-exim');
      const x = prepareExim(PEERS, eximDir, { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) });
      // Debian's /usr/sbin/sendmail is Exim: stock `sendmail -t -i` receives, forks a
      // delivery process into the background (here the smarthost is down) and returns;
      // `-odq` only queues.
      commands.push({ key: 'exim-stock', label: "Exim's stock `sendmail -t -i` (delivery forked into the background)", argv: ['/usr/sbin/sendmail', '-t', '-i'], stdin: msgFile, wrap: x });
      commands.push({ key: 'exim', label: "Exim's `exim4 -odq -oi -t` (queue only)", argv: ['/usr/sbin/exim4', '-odq', '-oi', '-t'], stdin: msgFile, wrap: x });
      eximX = x;
    } catch (e) {
      leftOut(NAMES.exim!, e);
    }
  }
  if (results.queuedCfg) {
    const q = await queueCount(results.queuedCfg);
    commands.push({ key: 'bpc', label: `\`postern -bpc\`, ${q} queued`, argv: [POSTERN, '-C', results.queuedCfg.file, '-bpc'] });
    commands.push({ key: 'bp', label: `\`postern -bp\` (mailq), ${q} queued`, argv: [POSTERN, '-C', results.queuedCfg.file, '-bp'] });
  }
  const d = await startDaemon(up);
  let pf: Mta | undefined;
  /** Commands that failed a run: void, and not run again. */
  const failed = new Map<string, string>();
  /**
   * The arrival check over `keys` (whose submissions share a spool or log): a failed
   * command's count of submissions is unknown, so with one the others are not voided by it.
   */
  const arrivalCheck = (keys: string[], got: number | string, expected: number, why: string) => {
    const gone = keys.filter((k) => failed.has(k));
    if (gone.length) return void checks.push(`${why}: not checked, ${gone.join(', ')} failed`);
    if (got !== expected) voidSendmail(keys, `${why}: ${got}, expected ${expected}`);
  };
  try {
    if (MTAS.includes('postfix')) {
      // As root, Postfix's sendmail hands the message to postdrop, which writes it to the
      // maildrop for the running daemon's pickup.
      try {
        pf = await startMta('postfix', workDir('sendmail-postfix'), { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) });
        commands.splice(4, 0, { key: 'postfix', label: "Postfix's `sendmail -t -i`, daemon running", argv: [pf.x!.sendmail!, '-C', pf.x!.conf, '-t', '-i'], stdin: msgFile, wrap: pf.x });
      } catch (e) {
        leftOut(NAMES.postfix!, e);
      }
    }
    log(`sendmail: ${commands.length} commands, ${rounds} rounds of ${perRound} runs each after ${warmup} warm-up, taking turns`);
    const times = new Map<string, number[]>(commands.map((c) => [c.key, []]));
    const roundMedians = new Map<string, number[]>(commands.map((c) => [c.key, []]));
    for (let i = 0; i < rounds; i++) {
      for (const c of commands) {
        if (failed.has(c.key)) continue;
        try {
          const t = await timeCommand(c.argv, c.stdin, c.wrap, perRound, warmup);
          times.get(c.key)!.push(...t);
          roundMedians.get(c.key)!.push(stats(t).median);
        } catch (e) {
          failed.set(c.key, `it failed in round ${i + 1}: ${(e as Error).message.slice(0, 900)}`);
          log(`  ${c.label} failed in round ${i + 1}: ${(e as Error).message.slice(0, 900)}`);
        }
      }
    }
    const none: Stats = { mean: NaN, median: NaN, stddev: NaN, min: NaN, max: NaN };
    results.sendmail = { tool: 'bench/timecmd.ts', runs: rounds * perRound, rounds, warmup, messageBytes: statSync(msgFile).size,
      rows: commands.map((c) => ({ key: c.key, label: c.label, ...(times.get(c.key)!.length ? stats(times.get(c.key)!) : none), roundMedians: roundMedians.get(c.key)! })), checks };
    for (const [key, why] of failed) voidSendmail([key], why);
    for (const x of results.sendmail.rows) log(`  ${x.label}: ${failed.has(x.key) ? 'VOID, it failed' : `mean ${x.mean.toFixed(1)} ms, median ${x.median.toFixed(1)} ms`}`);
    const upCount = await queueCount(up).catch((e) => (e as Error).message);
    checks.push(`daemon-running spool holds ${upCount} after ${3 * expect} submissions (${expect} by the front end, ${expect} handed to node, ${expect} by node's alone)`);
    arrivalCheck(['up', 'handed', 'node-up'], upCount, 3 * expect, 'postern\'s daemon-running spool holds');
    if (pf) {
      const until = Date.now() + 10_000;
      while (pf.arrivals() < expect && Date.now() < until) await sleep(100);
      checks.push(`Postfix's cleanup logged ${pf.arrivals()} messages after ${expect} submissions`);
      arrivalCheck(['postfix'], pf.arrivals(), expect, 'Postfix\'s cleanup logged');
    }
  } finally {
    await stopDaemon(d);
    if (pf) await pf.stop();
  }
  const downCount = await queueCount(down).catch((e) => (e as Error).message);
  checks.push(`daemon-down spool holds ${downCount} after ${expect} submissions`);
  arrivalCheck(['down'], downCount, expect, 'postern\'s daemon-down spool holds');
  if (eximDir && eximX) {
    const input = join(eximX.spool, 'input');
    const n = existsSync(input) ? readdirSync(input, { recursive: true }).filter((f) => String(f).endsWith('-H')).length : 0;
    const arrived = countLines(eximX.mainlog, / <= /);
    checks.push(`Exim's log shows ${arrived} arrivals after ${2 * expect} submissions (${expect} stock, ${expect} -odq); its spool holds ${n}`);
    arrivalCheck(['exim-stock', 'exim'], arrived, 2 * expect, 'Exim\'s arrivals logged');
  }
  save();
}

// ---------------------------------------------------------------------------
// 3. sync system calls per message

const SYNCS = ['fsync', 'fdatasync', 'msync', 'sync_file_range'];

function parseStraceSummary(text: string): Record<string, number> {
  const calls: Record<string, number> = Object.fromEntries(SYNCS.map((s) => [s, 0]));
  for (const line of text.split('\n')) {
    // % time     seconds  usecs/call     calls    errors syscall
    const f = line.trim().split(/\s+/);
    const name = f.at(-1) ?? '';
    if (SYNCS.includes(name) && f.length >= 5) {
      const n = Number(f[3]);
      if (Number.isFinite(n)) calls[name] = n;
    }
  }
  return calls;
}

async function straceRun(mta: string, label: string, messages: number, reuse: boolean, seccomp: boolean): Promise<FsyncRow> {
  const dir = workDir(`fsync-${mta}-${label.replace(/\W+/g, '-')}`);
  const out = join(dir, 'strace.txt');
  const wrapper = [STRACE!, '-f', '-c', ...(seccomp ? ['--seccomp-bpf'] : []), '-e', `trace=${SYNCS.join(',')}`, '-o', out];
  const h = await startMta(mta, dir, { smtpPort: await freePort(), smarthostPort: await freePort(SINK_HOST) }, wrapper);
  let l;
  try {
    if (messages > 0) l = await load({ port: h.smtpPort ?? h.cfg!.smtpPort, sessions: SESSIONS, messages, size: SIZE, reuse, timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) });
    else await sleep(1500);
    await sleep(1000);
  } finally {
    await h.stop();
  }
  const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `strace-${mta}-${label.replace(/\W+/g, '-')}.txt`), text);
  dropDir(dir);
  const calls = parseStraceSummary(text);
  const total = SYNCS.reduce((s, k) => s + (calls[k] ?? 0), 0);
  log(`  ${NAMES[mta]}, ${label}: ${JSON.stringify(calls)}`);
  return { mta, label, messages, reuse, calls, total, rate: l ? rate(messages, l.ms) : undefined, errors: l?.errors ?? [] };
}

async function measureFsync() {
  let seccomp = true;
  const probe = await run(STRACE!, ['-f', '-c', '--seccomp-bpf', '-e', 'trace=fsync', '-o', '/dev/null', 'true'], { timeoutMs: 10_000 });
  if (probe.code !== 0) seccomp = false;
  results.fsync = { seccomp, rows: [] };
  for (const mta of MTAS.filter((m) => m !== 'sink')) {
    const n = mta === 'exim' ? Math.min(N_FSYNC, N_EXIM) : N_FSYNC;
    log(`fsync: ${NAMES[mta]} under strace${seccomp ? ' --seccomp-bpf' : ''}, ${n} messages each way`);
    if (timeLeft() < 40_000) { results.notes.push(`fsync: ${NAMES[mta]} skipped, out of time`); continue; }
    try {
      const base = await straceRun(mta, 'baseline (no mail)', 0, false, seccomp);
      results.fsync.rows.push(base);
      for (const reuse of [false, true]) {
        const r = await straceRun(mta, reuse ? 'connections reused' : 'one message per connection', n, reuse, seccomp);
        r.net = r.total - base.total;
        r.perMessage = r.net / r.messages;
        results.fsync.rows.push(r);
      }
    } catch (e) {
      results.notes.push(`fsync: ${NAMES[mta]} failed: ${(e as Error).message.slice(0, 400)}`);
    }
    save();
  }
}

// ---------------------------------------------------------------------------
// results: the one table, the targets of issue 22, the details

// ---------------------------------------------------------------------------
// results: the one table (median and spread of the rounds), the targets of issue 22, the details

/** Per-round values of a field of one MTA's rows on a load (voided rows give undefined). */
function series(mta: string, id: string, key: 'rate' | 'cpuPer1000'): Series {
  const rows = results.rates[mta === 'sink' ? SINK_LOAD[id] ?? id : id]?.[mta] ?? [];
  return rows.map((r) => ({ round: r.round, v: r.errors?.length ? undefined : r[key] }));
}
/** Median, min, max of the valid values; n valid of `of` measured. */
function agg(list: Series | undefined): { median?: number; min?: number; max?: number; n: number; of: number } {
  const xs = (list ?? []).map((x) => x.v).filter((v): v is number => v !== undefined && v !== null && !Number.isNaN(v));
  if (!xs.length) return { n: 0, of: list?.length ?? 0 };
  const st = stats(xs);
  return { median: st.median, min: st.min, max: st.max, n: xs.length, of: list?.length ?? 0 };
}
function cell(list: Series | undefined, digits = 0): string {
  const a = agg(list);
  if (!a.of) return 'n/a';
  if (!a.n) return 'void';
  return `${fmt(a.median, digits)}${a.n > 1 ? ` (${fmt(a.min, digits)}–${fmt(a.max, digits)})` : ''}${a.n < a.of ? ` [${a.n} of ${a.of} valid]` : ''}`;
}
/** postern ÷ other: the ratio of the medians, and the range of the rounds' own ratios. */
function ratioOf(p: Series | undefined, o: Series | undefined): { value?: number; text: string } {
  const a = agg(p).median;
  const b = agg(o).median;
  if (a === undefined || !b) return { text: 'n/a' };
  const per = (p ?? []).map((x) => ({ x: x.v, y: (o ?? []).find((q) => q.round === x.round)?.v })).filter((z): z is { x: number; y: number } => z.x !== undefined && z.y !== undefined && z.y !== 0).map((z) => z.x / z.y);
  const r = a / b;
  const f = (v: number) => v.toFixed(v >= 10 ? 0 : 2);
  return { value: r, text: `${f(r)}×${per.length > 1 ? ` (${f(Math.min(...per))}–${f(Math.max(...per))})` : ''}` };
}
const smRow = (key: string) => results.sendmail?.rows.find((x) => x.key === key);
const smSeries = (key: string): Series | undefined => smRow(key)?.roundMedians.map((v, i) => ({ round: i + 1, v: smRow(key)?.void ? undefined : v }));
/** A submission row whose check failed (not every submission arrived) is void. */
function voidSendmail(keys: string[], why: string): void {
  for (const k of keys) { const r = smRow(k); if (r) r.void ??= why; }
  results.notes.push(`sendmail: VOID ${keys.join(', ')}: ${why}`);
}
const syncsOf = (mta: string, reuse: boolean) => results.fsync?.rows.find((r) => r.mta === mta && r.perMessage !== undefined && r.reuse === reuse && !r.errors.length)?.perMessage;
const one = (v: number | undefined): Series | undefined => (v === undefined ? undefined : [{ round: 1, v }]);
/** Per round, the largest peak memory over the loads (postern: VmHWM; the others: Σ PSS). */
function peakSeries(mta: string): Series {
  const by = new Map<number, number>();
  for (const ld of LOADS) {
    for (const r of results.rates[ld.id]?.[mta] ?? []) {
      if (r.peakMB === undefined) continue;
      by.set(r.round, Math.max(by.get(r.round) ?? 0, r.peakMB));
    }
  }
  return [...by].map(([round, v]) => ({ round, v }));
}
const idleSeries = (mta: string): Series => (results.idle?.[mta] ?? []).map((r) => ({ round: r.round, v: r.errors?.length ? undefined : r.value }));

/** The summary: one line per figure, a column per MTA, a ratio column per peer; each cell the median of the rounds (min–max). */
function summaryRows(): Figure[] {
  const rows: Figure[] = [];
  const mk = (what: string, per: Omit<Figure, 'what'>, extra: Omit<Figure, 'what'> = {}) => rows.push({ what, ...per, ...extra });
  for (const ld of LOADS) {
    if (!results.rates[ld.id]) continue;
    const v = (m: string) => series(m, ld.id, 'rate');
    mk(`${ld.label}, msg/s`, { ref: v('sink'), postern: v('postern'), postfix: v('postfix'), exim: v('exim') }, { better: 'higher' });
  }
  for (const ld of LOADS) {
    if (!results.rates[ld.id] || ld.id === 'accept-reuse') continue;
    const v = (m: string) => series(m, ld.id, 'cpuPer1000');
    mk(`CPU s per 1,000 ${ld.relay ? 'relayed' : 'accepted'} (${ld.label.replace(/^(relay|accept)( end to end)?, /, '')})`, { ref: ld.relay ? v('sink') : undefined, postern: v('postern'), postfix: v('postfix'), exim: v('exim') }, { digits: 2, better: 'lower' });
  }
  mk('peak memory over all loads, MB (postern: its VmHWM; the others: Σ PSS of their processes)', { postern: peakSeries('postern'), postfix: peakSeries('postfix'), exim: peakSeries('exim') }, { better: 'lower' });
  mk('idle memory 5 s after start, MB (postern: RSS; Exim: its daemon\'s PSS; Postfix: Σ PSS of master, qmgr, pickup)', { postern: idleSeries('postern'), postfix: idleSeries('postfix'), exim: idleSeries('exim') }, { digits: 1, better: 'lower' });
  if (results.sendmail) {
    mk('submission by `sendmail -t -i`, daemon running, ms (median of the 4 rounds\' medians; Exim: stock `sendmail -t -i`); reference: `node -e 0`', { ref: smSeries('node'), postern: smSeries('up'), postfix: smSeries('postfix'), exim: smSeries('exim-stock') }, { digits: 1, better: 'lower' });
    mk('… Exim: `exim4 -odq -oi -t` (queue only)', { ref: smSeries('node'), postern: smSeries('up'), exim: smSeries('exim') }, { digits: 1, better: 'lower' });
    mk('… postern with the daemon down, ms', { ref: smSeries('node'), postern: smSeries('down') }, { digits: 1, better: 'lower' });
    mk('… postern: `sendmail -N never -t -i`, handed by the front end to node, ms', { ref: smSeries('node'), postern: smSeries('handed') }, { digits: 1, better: 'lower' });
    mk('… postern: node\'s `bin/sendmail` alone, daemon running, ms', { ref: smSeries('node'), postern: smSeries('node-up') }, { digits: 1, better: 'lower' });
    mk('`node empty.mjs` (an empty ES module), ms', { ref: smSeries('node'), postern: smSeries('mjs') }, { digits: 1, better: 'lower' });
  }
  for (const reuse of [false, true]) {
    if (!results.fsync) continue;
    mk(`sync calls per accepted message (${reuse ? 'connections reused' : 'one per connection'}, net of start/stop)`, { postern: one(syncsOf('postern', reuse)), postfix: one(syncsOf('postfix', reuse)), exim: one(syncsOf('exim', reuse)) }, { digits: 2, better: 'lower' });
  }
  if (results.gauge?.length) {
    mk('noise gauge: fixed CPU job (SHA-256 of 64 MB in a fresh node), ms, per round', { ref: results.gauge.map((g) => ({ round: g.round, v: g.cpuJobMs })) }, { digits: 1, refOnly: true });
    mk('noise gauge: 4 KB write + fdatasync, ms, per round', { ref: results.gauge.map((g) => ({ round: g.round, v: g.fdatasyncMs })) }, { digits: 3, refOnly: true });
  }
  return rows;
}

/** Issue 22's targets, each met or not, from the medians of this run. */
function targets(): Target[] {
  const t: Target[] = [];
  const check = (what: string, r: { value?: number; text: string } | undefined, goal: string, cmp: (v: number) => boolean) => t.push({ what, value: r?.value, text: r?.text ?? 'n/a', goal, met: r?.value === undefined ? 'not measured' : cmp(r.value) ? 'met' : 'not met' });
  check('`sendmail -t -i`, daemon up ÷ Postfix\'s `sendmail -t -i`', ratioOf(smSeries('up'), smSeries('postfix')), '≤ 2', (v) => v <= 2);
  check('`sendmail` handed to node by the front end (the path that needs node) ÷ `node -e 0`', ratioOf(smSeries('handed'), smSeries('node')), '≤ 1.2', (v) => v <= 1.2);
  check('peak memory over the loads ÷ Postfix\'s', ratioOf(peakSeries('postern'), peakSeries('postfix')), '≤ 1', (v) => v <= 1);
  const idle = agg(idleSeries('postern')).median;
  check('idle RSS while up, MB', idle === undefined ? undefined : { value: idle, text: `${fmt(idle, 1)} MB` }, '≤ 40', (v) => v <= 40);
  for (const ld of LOADS) {
    if (!results.rates[ld.id]) continue;
    check(`${ld.label}: msg/s ÷ Postfix`, ratioOf(series('postern', ld.id, 'rate'), series('postfix', ld.id, 'rate')), '≥ 3', (v) => v >= 3);
  }
  for (const ld of LOADS.filter((l) => l.relay && results.rates[l.id])) {
    check(`${ld.label}: msg/s ÷ the sink alone`, ratioOf(series('postern', ld.id, 'rate'), series('sink', ld.id, 'rate')), '≥ 0.25', (v) => v >= 0.25);
  }
  for (const ld of LOADS.filter((l) => l.relay && results.rates[l.id])) {
    check(`${ld.label}: CPU per message ÷ Postfix's`, ratioOf(series('postern', ld.id, 'cpuPer1000'), series('postfix', ld.id, 'cpuPer1000')), '≤ 0.5', (v) => v <= 0.5);
  }
  t.push({ what: 'queue commands at 100,000 queued: `-bp` ÷ Exim\'s ≥ 5×, `postern-qgrep` ÷ `exiqgrep` ≥ 10×', text: 'not part of this run', goal: 'bench/million.ts + bench/million-exim.ts', met: 'not measured' });
  return t;
}

function renderMarkdown() {
  const r = results;
  const L = [];
  L.push('# postern benchmark: postern, Postfix and Exim in one run', '');
  L.push(`Run ${r.started}, ${r.machine.os ?? 'unknown system'}, Node ${r.machine.node}, ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memGB} GB; load average ${r.loadavg?.start ?? '?'} at the start${r.loadavg?.end ? `, ${r.loadavg.end} at the end` : ''}. ` +
    `Spools on ${r.machine.spoolFs ?? '?'}; one 4 KB write + fdatasync there: median ${r.machine.fdatasyncMs ?? '?'} ms. Build measured: dist/ ${r.dist ?? '?'}.`);
  L.push(`Load: ${r.tools.loadgen === 'smtp-source' ? 'Postfix `smtp-source`' : "built-in (nodemailer's SMTPConnection)"}, ${SESSIONS} concurrent sessions (one for the one-session row), ` +
    `${N.toLocaleString('en-US')} messages of ${SIZE} bytes (${N_BIG.toLocaleString('en-US')} of ${BIG_SIZE} bytes for the big rows, ${N_ONE} in one session, ${N_QUEUE.toLocaleString('en-US')} with the hub down; Exim at most ${N_EXIM} a load); ` +
    (WARMUP > 0 ? `each MTA first takes ${WARMUP.toLocaleString('en-US')} messages of the same load untimed (Exim and one session a fifth), on the same daemon; ` : 'no warm-up (`--warmup 0`); ') +
    `sink: ${r.tools.smtpSink ? 'Postfix `smtp-sink`' : '`bench/sink.ts`'} on ${SINK_HOST}. Each MTA as Debian runs it (see bench/README.md for every change from stock), a fresh private spool per load, on 127.0.0.1. ` +
    `${r.rounds ?? ROUNDS} rounds, each running every load on every MTA one after the other; each cell is the median of the rounds, with the lowest and highest in brackets; a row that failed a check (not all accepted, delivered, or something deferred) is void and left out.`);
  const pkgs = peerPackages(r.mtas);
  L.push(`MTAs measured: ${r.mtas.map((m) => NAMES[m]).join(', ')}${pkgs ? ` (Debian packages ${pkgs}, unpacked in ${PEERS.dir})` : ''}.${SETS.length ? ` **postern NOT at its defaults**: ${SETS.map((x) => `${x.section}.${x.key} = ${x.value}`).join(', ')}.` : ''}`, '');
  const rows = summaryRows();
  const has = (m: string) => r.mtas.includes(m);
  const heads = ['figure', 'reference (sink alone; `node -e 0`)', 'postern', ...(has('postfix') ? ['Postfix'] : []), ...(has('exim') ? ['Exim'] : []),
    'postern ÷ reference', ...(has('postfix') ? ['postern ÷ Postfix'] : []), ...(has('exim') ? ['postern ÷ Exim'] : [])];
  // The noise gauge has a reference column only.
  const c = (x: Figure, s: Series | undefined) => (x.refOnly ? '' : cell(s, x.digits));
  const q = (x: Figure, s: Series | undefined) => (x.refOnly ? '' : ratioOf(x.postern, s).text);
  L.push(table(heads, rows.map((x) => [x.what, cell(x.ref, x.digits), x.refOnly ? '' : `**${cell(x.postern, x.digits)}**`,
    ...(has('postfix') ? [c(x, x.postfix)] : []), ...(has('exim') ? [c(x, x.exim)] : []),
    q(x, x.ref), ...(has('postfix') ? [q(x, x.postfix)] : []), ...(has('exim') ? [q(x, x.exim)] : [])])));
  L.push('', 'Ratios are postern ÷ the other: the ratio of the medians, and in brackets the lowest and highest of the rounds\' own ratios (for msg/s higher is better for postern; for CPU, memory, time and syncs lower is). ' +
    '"void": every round of it failed a check (see the details); "n/a": not measured.', '');
  r.targets = targets();
  L.push('## Targets of issue 22', '');
  L.push(table(['target', 'this run', 'goal', ''], r.targets.map((t) => [t.what, t.text, t.goal, t.met])), '');
  if (r.gauge?.length) {
    L.push('## Noise gauge per round', '');
    L.push(table(['round', 'CPU job ms', 'fdatasync ms', "others' CPU (1 s)", 'load average'], r.gauge.map((g) => [g.round, g.cpuJobMs, g.fdatasyncMs, pct(g.othersCpu), g.load])), '');
  }
  if (r.idle && Object.keys(r.idle).length) {
    L.push('## Idle memory after start (5 s, empty queue, smarthost down)', '');
    L.push(table(['MTA', 'round', 'Σ PSS MB', 'Σ RSS MB', 'processes (RSS/PSS MB)', 'problems'], Object.values(r.idle).flat().map((x) => [NAMES[x.mta], x.round, x.pssMB ?? '', x.rssMB ?? '', x.procs ?? '', x.errors?.length ? x.errors.join('; ') : 'none'])), '');
  }
  L.push('## Details per load and round', '');
  L.push(table(['load', 'MTA', 'round', 'messages', 'seconds', 'msg/s', 'submission msg/s', 'CPU s / 1,000', 'peak Σ PSS MB', 'postern VmHWM MB', "others' CPU", 'problems (void if any)'],
    LOADS.flatMap((ld) => Object.values(r.rates[ld.id] ?? {}).flat().map((x) => [ld.id, NAMES[x.mta], x.round, x.messages ?? '', x.ms ? secs(x.ms) : 'n/a', x.rate ?? 'n/a',
      x.submitRate ?? '', fmt(x.cpuPer1000, 2), x.peakPssMB ?? '', x.vmHwmMB ?? '', pct(x.othersCpu), x.errors?.length ? x.errors.join('; ') : 'none']))));
  L.push('', 'Relay rows: from the first connection until the MTA has logged every message as finished (postern and Exim `Completed`, Postfix `removed`), ' +
    'each after the sink\'s 250; checked: all arrived, all delivered, the sink counted them, the queue empty, nothing deferred. Accept rows: until the load generator has its last 250 (the smarthost port is closed); checked: all arrived and all queued. ' +
    'Every row: the load generator reported no error and the MTA logged no fatal or panic line. CPU: user + system time of all the MTA\'s processes ' +
    '(each runs in its own PID namespace, so even double-forked processes are reaped inside and counted) from /proc, from just before the load until the end (accept: 1 s after). ' +
    'Memory: the sum of PSS over the MTA\'s processes (the bench\'s wrappers left out), sampled 4 times a second; for postern, whose one process shares pages with the bench\'s own node, its VmHWM (peak RSS) instead.', '');
  if (r.sendmail) {
    const s = r.sendmail;
    L.push('## Whole-process time of one submission', '');
    L.push(`${s.runs} runs in ${s.rounds} rounds (${s.warmup} warm-up run each), the commands taking turns, timed by bench/timecmd.ts (spawn to exit); message ${s.messageBytes} bytes on stdin; others' CPU: ${pct(r.othersCpu.sendmail)}.`, '');
    L.push(table(['command', 'median ms', 'rounds\' medians', 'mean ms', '± σ', 'min ms', 'max ms'], s.rows.map((x) => [x.void ? `${x.label} — VOID: ${x.void}` : x.label, fmt(x.median, 1), x.roundMedians.map((v) => v.toFixed(1)).join(' / '), fmt(x.mean, 1), fmt(x.stddev, 1), fmt(x.min, 1), fmt(x.max, 1)])));
    L.push('', ...s.checks.map((c) => `- ${c}`), '');
  }
  if (r.fsync?.rows.length) {
    const f = r.fsync;
    L.push('## Sync system calls', '');
    L.push(`\`strace -f -c ${f.seccomp ? '--seccomp-bpf ' : ''}-e trace=${SYNCS.join(',')}\` around each MTA (all its processes), smarthost down; ` +
      `"net" subtracts a baseline run (start, 1.5 s idle, stop). Others' CPU: ${pct(r.othersCpu.fsync)}.`, '');
    L.push(table(['MTA', 'run', 'messages', ...SYNCS, 'total', 'net', 'net per message', 'msg/s under strace'],
      f.rows.map((x) => [NAMES[x.mta], x.label, x.messages, ...SYNCS.map((k) => x.calls[k]), x.total, x.net ?? '', x.perMessage === undefined ? '' : x.perMessage.toFixed(3), x.rate ?? ''])));
    L.push('');
  }
  if (r.notes.length) L.push('## Notes', '', ...r.notes.map((n) => `- ${n.replace(/\s*\n\s*/g, ' ⏎ ')}`), '');
  L.push(`Total bench time: ${secs(Date.now() - START)} s.`, '');
  return L.join('\n');
}

function save() {
  mkdirSync(OUT, { recursive: true });
  const md = renderMarkdown();
  const { queuedCfg: _cfg, ...json } = results;
  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ ...json, summary: summaryRows() }, null, 2) + '\n');
  writeFileSync(join(OUT, 'results.md'), md);
  return md;
}

// ---------------------------------------------------------------------------

/** What one 4 KB write + fdatasync costs in the spools' file system (median of 50), ms. */
function fdatasyncProbe() {
  const dir = workDir('disk');
  const fd = openSync(join(dir, 'probe'), 'w');
  const buf = Buffer.alloc(4096, 1);
  const times = [];
  try {
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      times.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    dropDir(dir);
  }
  return Number(stats(times).median.toFixed(3));
}

/** The spool's file system and what one 4 KB write + fdatasync costs there. */
function diskProbe() {
  let fs = 'unknown';
  try { fs = execFileSync('df', ['--output=fstype,source', tmpdir()], { encoding: 'utf8' }).split('\n')[1]!.trim().replace(/\s+/g, ' on '); } catch { /* no df */ }
  results.machine.spoolFs = `${fs} (${tmpdir()})`;
  results.machine.fdatasyncMs = fdatasyncProbe();
  log(`spool file system: ${results.machine.spoolFs}; 4 KB write + fdatasync: median ${results.machine.fdatasyncMs} ms`);
}

/** Runs one step; a failure is noted and the run goes on to the next (the rows measured so far stay). */
async function step(name: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    results.notes.push(`${name} stopped: ${(e as Error).message.slice(0, 900)}`);
    log(`error in ${name}: ${(e as Error).stack ?? (e as Error).message}`);
  }
  save();
}

async function main() {
  distFreshness();
  results.dist = distFingerprint();
  diskProbe();
  mkdirSync(OUT, { recursive: true });
  log(`load generator: ${LOADGEN}${LOADGEN === 'smtp-source' ? ` (${SMTP_SOURCE})` : ' (run bench/fetch-peers.sh, or set SMTP_SOURCE=/path/to/smtp-source, to use Postfix\'s)'}`);
  if (peerPackages(MTAS)) log(`peers: Debian packages ${peerPackages(MTAS)} from ${PEERS.dir}, on ${results.machine.os ?? 'an unknown system'}`);
  for (const m of MTAS_ASKED.filter((x) => !MTAS.includes(x))) {
    const why = PEERS_PROBLEM ?? `not found under ${PEERS.dir} (sh bench/fetch-peers.sh fetches it)`;
    results.notes.push(`${NAMES[m]} not measured: ${why}`);
    log(`${NAMES[m]} not measured: ${why}`);
  }
  results.loadavg = { start: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') };
  if (STEPS.has('rates')) await step('rates', () => measureRates());
  if (STEPS.has('sendmail')) {
    if (timeLeft() < 30_000) results.notes.push('sendmail: skipped, out of time');
    else await step('sendmail', () => watched('sendmail', () => measureSendmail()));
  }
  if (STEPS.has('fsync')) {
    if (!STRACE) results.notes.push('fsync: skipped, strace not found (apt-get install -y strace, or STRACE=/path)');
    else if (timeLeft() < 40_000) results.notes.push('fsync: skipped, out of time');
    else await step('fsync', () => watched('fsync', () => measureFsync()));
  }
  results.loadavg.end = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const after = distFingerprint();
  if (after !== results.dist) {
    results.notes.push(`dist/ changed during the run (build ${results.dist} at the start, ${after} at the end): later steps measured another build`);
  }
  process.stdout.write(save());
}

let failed = false;
// Interrupted: what was measured is written and printed before leaving.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    results.notes.push(`bench interrupted by ${sig}: the rows measured so far`);
    try { process.stdout.write(save()); } catch { /* nothing more to do */ }
    killLive();
    if (!opt.keep) for (const d of workDirs) rmSync(d, { recursive: true, force: true });
    process.exit(130);
  });
}
try {
  await main();
} catch (e) {
  failed = true;
  results.notes.push(`bench stopped: ${(e as Error).message}`);
  log(`error: ${(e as Error).stack ?? (e as Error).message}`);
  try { process.stdout.write(save()); } catch { /* nothing more to do */ }
} finally {
  killLive();
  if (!opt.keep) for (const d of workDirs) rmSync(d, { recursive: true, force: true });
  else log(`work folders kept: ${workDirs.join(' ')}`);
}
process.exit(failed ? 1 : 0);
