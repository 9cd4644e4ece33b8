#!/usr/bin/env node
// bench/run.js: postern's benchmark (see bench/README.md). Plain Node ESM, no
// dependencies beyond the project's own (smtp-server for the fallback sink,
// nodemailer's SMTP client for the fallback load generator).
//
//   npm run bench                       all four measurements
//   node bench/run.js --only accept,fsync -m 2000
//
// Everything binds 127.0.0.1; every load is bounded in message count and in time;
// the whole run stops starting new steps after --deadline seconds (default 570).
// Results: bench/out/results.md (also printed) and bench/out/results.json.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, readSync, writeSync, closeSync, fstatSync, fdatasyncSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'bench', 'out');
const POSTERN = join(ROOT, 'bin', 'postern');
const SENDMAIL = join(ROOT, 'bin', 'sendmail');
const NODE = process.execPath;

// ---------------------------------------------------------------------------
// options

const { values: opt } = parseArgs({
  options: {
    only: { type: 'string', default: 'accept,e2e,sendmail,fsync' },
    messages: { type: 'string', short: 'm', default: '5000' },
    'e2e-messages': { type: 'string' },
    'fsync-messages': { type: 'string', default: '1000' },
    sessions: { type: 'string', short: 's', default: '20' },
    size: { type: 'string', short: 'l', default: '2048' },
    runs: { type: 'string', default: '20' },
    loadgen: { type: 'string', default: process.env.BENCH_LOADGEN ?? 'auto' },
    'step-timeout': { type: 'string', default: '180' },
    deadline: { type: 'string', default: '570' },
    keep: { type: 'boolean', default: false },
    'wait-quiet': { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(readFileSync(join(ROOT, 'bench', 'README.md'), 'utf8'));
  process.exit(0);
}
const int = (name, v, min = 1) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const STEPS = new Set(opt.only.split(',').map((s) => s.trim()).filter(Boolean));
for (const s of STEPS) if (!['accept', 'e2e', 'sendmail', 'fsync'].includes(s)) throw new Error(`unknown step ${s}`);
const N = int('messages', opt.messages);
const N_E2E = int('e2e-messages', opt['e2e-messages'] ?? String(N));
const N_FSYNC = int('fsync-messages', opt['fsync-messages']);
const SESSIONS = int('sessions', opt.sessions);
const SIZE = int('size', opt.size, 0);
const RUNS = int('runs', opt.runs, 2);
const STEP_TIMEOUT = int('step-timeout', opt['step-timeout']) * 1000;
const WAIT_QUIET = int('wait-quiet', opt['wait-quiet'], 0);
const START = Date.now();
const DEADLINE = START + int('deadline', opt.deadline) * 1000;
// Hard caps, whatever the options say.
if (N > 100_000 || N_E2E > 100_000 || N_FSYNC > 100_000) throw new Error('at most 100000 messages per load');
if (SESSIONS > 200) throw new Error('at most 200 sessions');

// ---------------------------------------------------------------------------
// tools found on this machine

function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A Postfix tool from an unpacked tree needs its private libraries. */
function postfixEnv(tool) {
  const lib = join(dirname(dirname(tool)), 'lib', 'postfix');
  if (!existsSync(lib)) return process.env;
  return { ...process.env, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

const SMTP_SOURCE = process.env.SMTP_SOURCE && existsSync(process.env.SMTP_SOURCE) ? resolve(process.env.SMTP_SOURCE) : undefined;
const SMTP_SINK = process.env.SMTP_SINK && existsSync(process.env.SMTP_SINK) ? resolve(process.env.SMTP_SINK) : undefined;
const HYPERFINE = process.env.HYPERFINE ?? which('hyperfine');
const STRACE = process.env.STRACE ?? which('strace');
if (!['auto', 'smtp-source', 'node'].includes(opt.loadgen)) throw new Error('--loadgen is auto, smtp-source or node');
if (opt.loadgen === 'smtp-source' && !SMTP_SOURCE) throw new Error('--loadgen smtp-source needs SMTP_SOURCE=/path/to/smtp-source');
const LOADGEN = opt.loadgen === 'node' || !SMTP_SOURCE ? 'node' : 'smtp-source';

// ---------------------------------------------------------------------------
// small helpers

const log = (s) => process.stderr.write(`bench: ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (ms) => (ms / 1000).toFixed(2);
const rate = (n, ms) => (ms > 0 ? Math.round((n * 1000) / ms) : 0);
const timeLeft = () => DEADLINE - Date.now();

/** A port on 127.0.0.1 that was free a moment ago (nothing listens on it afterwards). */
function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(port, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
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

/** Runs a command to completion (bounded); resolves { code, signal, stdout, stderr, ms }. */
function run(cmd, args, { env = process.env, timeoutMs = STEP_TIMEOUT, input, cwd = ROOT } = {}) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { if (stdout.length < 1e6) stdout += d; });
    child.stderr.on('data', (d) => { if (stderr.length < 1e6) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); rej(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

/** Counts the lines of a file that match re, reading only what was appended since last time. */
class LineCounter {
  constructor(file, re) {
    this.file = file;
    this.re = re;
    this.offset = 0;
    this.rest = '';
    this.count = 0;
  }
  poll() {
    if (!existsSync(this.file)) return this.count;
    const fd = openSync(this.file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        readSync(fd, buf, 0, buf.length, this.offset);
        this.offset = size;
        const text = this.rest + buf.toString('utf8');
        const lines = text.split('\n');
        this.rest = lines.pop() ?? '';
        for (const l of lines) if (this.re.test(l)) this.count++;
      }
    } finally {
      closeSync(fd);
    }
    return this.count;
  }
}

const countLines = (file, re) => new LineCounter(file, re).poll();

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
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const st = readFileSync('/proc/self/stat', 'utf8');
    const r = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number);
    // utime and cutime are fields 14 and 16, i.e. r[11] and r[13]. User mode only: the
    // kernel's own threads (ext4's journal, softirq for loopback TCP) also work for us.
    return { busy: f[0] + f[1], total, ours: r[11] + r[13] };
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

function noteOthers(label, pct) {
  if (pct !== undefined && pct >= 10) {
    const msg = `other processes used about ${pct}% of the machine's CPU during "${label}": its numbers are low and noisy`;
    log(`warning: ${msg}`);
    results.notes.push(msg);
  }
  return pct;
}

/** With --wait-quiet S: waits (at most S seconds) for a second in which others use under 10% of the CPUs. */
async function waitQuiet(label) {
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

async function watched(label, fn, row) {
  await waitQuiet(label);
  const stop = cpuWatch();
  const r = await fn();
  const pct = noteOthers(label, stop());
  if (row) row().othersCpu = pct;
  else results.othersCpu[label] = pct;
  return r;
}

// ---------------------------------------------------------------------------
// postern under test

const workDirs = [];
/** Every long-running child we started (daemons, sinks), so a crash does not leave them behind. */
const live = new Set();
function killLive() {
  for (const pid of live) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}
process.on('uncaughtException', (e) => {
  log(`error: ${e.stack ?? e.message}`);
  killLive();
  process.exit(1);
});
function workDir(name) {
  const d = mkdtempSync(join(tmpdir(), `postern-bench-${name}-`));
  workDirs.push(d);
  return d;
}

/**
 * config/postern.toml with the listener, spool, log and smarthost changed: the bench
 * runs postern's own default settings otherwise.
 */
function writeConfig(dir, { smtpPort, smarthostPort }) {
  const base = readFileSync(join(ROOT, 'config', 'postern.toml'), 'utf8').split('\n');
  let section = '';
  const done = new Set();
  const out = base.map((line) => {
    const s = /^\s*\[([^\]]+)\]/.exec(line);
    if (s) section = s[1].trim();
    const key = /^\s*([A-Za-z_]+)\s*=/.exec(line)?.[1];
    const set = (k, v) => { done.add(`${section}.${k}`); return `${k} = ${v}`; };
    if (section === 'listen' && key === 'smtp') return set('smtp', `["127.0.0.1:${smtpPort}"]`);
    if (section === 'spool' && key === 'directory') return set('directory', '"spool"');
    if (section === 'log' && key === 'file') return set('file', '"mainlog"');
    if (section === 'smarthost' && key === 'hosts') return set('hosts', `["127.0.0.1:${smarthostPort}"]`);
    return line;
  });
  for (const k of ['listen.smtp', 'spool.directory', 'log.file', 'smarthost.hosts']) {
    if (!done.has(k)) throw new Error(`config/postern.toml has no ${k} line to change; update bench/run.js`);
  }
  const file = join(dir, 'postern.toml');
  writeFileSync(file, out.join('\n'));
  return { file, dir, mainlog: join(dir, 'mainlog'), spool: join(dir, 'spool'), smtpPort, smarthostPort };
}

/**
 * The daemon's own pid: it differs from child.pid under a wrapper such as strace. Read
 * from its `daemon started: pid=N` log line, which the log stream may write a moment
 * after "ready".
 */
async function daemonPid(cfg, child) {
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const text = existsSync(cfg.mainlog) ? readFileSync(cfg.mainlog, 'utf8') : '';
    const started = text.match(/daemon started: pid=(\d+)/g);
    if (started) return Number(/pid=(\d+)/.exec(started.at(-1))[1]);
    await sleep(20);
  }
  throw new Error(`no "daemon started: pid=" line in ${cfg.mainlog} 5 s after ready (child pid ${child.pid})`);
}

/** Starts `postern -bd -q1m` (optionally under a wrapper such as strace) and waits for "ready". */
function startDaemon(cfg, wrapper = []) {
  return new Promise((res, rej) => {
    const args = [...wrapper, NODE, POSTERN, '-C', cfg.file, '-bd', '-q1m'];
    const child = spawn(args[0], args.slice(1), { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child.pid);
    child.once('close', () => live.delete(child.pid));
    let stderr = '';
    let ready = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`daemon not ready after 20 s: ${stderr}`)); }, 20_000);
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!ready && /postern: ready, listening for SMTP on/.test(stderr)) {
        ready = true;
        clearTimeout(timer);
        const exited = new Promise((r) => child.once('close', (code, signal) => r({ code, signal })));
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
function memory(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
    return { peakMB: Math.round(kb('VmHWM') / 1024), rssMB: Math.round(kb('VmRSS') / 1024) };
  } catch {
    return { peakMB: NaN, rssMB: NaN };
  }
}

/** SIGTERM to the daemon itself, then wait (bounded) for it and any wrapper to exit. */
async function stopDaemon(d) {
  try { process.kill(d.pid, 'SIGTERM'); } catch { /* already gone */ }
  const r = await Promise.race([d.exited, sleep(40_000).then(() => undefined)]);
  if (r) return r;
  log(`daemon ${d.pid} did not stop in 40 s: killing it`);
  try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ }
  try { d.child.kill('SIGKILL'); } catch { /* gone */ }
  return d.exited;
}

async function queueCount(cfg) {
  const r = await run(NODE, [POSTERN, '-C', cfg.file, '-bpc'], { timeoutMs: 60_000 });
  const n = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isInteger(n)) throw new Error(`postern -bpc failed (${r.code}): ${r.stderr}`);
  return n;
}

// ---------------------------------------------------------------------------
// load generators

function smtpSourceArgs({ port, sessions, messages, size, reuse }) {
  return ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', 'a@example.org', '-t', 'b@example.org',
    ...(reuse ? ['-d'] : []), `127.0.0.1:${port}`];
}

async function loadSmtpSource(o) {
  const r = await run(SMTP_SOURCE, smtpSourceArgs(o), { env: postfixEnv(SMTP_SOURCE), timeoutMs: o.timeoutMs });
  const problems = r.stderr.split('\n').filter(Boolean);
  return { ms: r.ms, ok: r.code === 0 && !r.timedOut, sent: undefined, failed: undefined,
    errors: [...(r.timedOut ? ['timed out'] : []), ...problems.slice(0, 5)], command: `smtp-source ${smtpSourceArgs(o).join(' ')}` };
}

function message(i, size) {
  const headers = `From: a@example.org\r\nTo: b@example.org\r\nSubject: bench ${i}\r\nMessage-ID: <bench.${process.pid}.${i}@example.org>\r\n`;
  const line = 'X'.repeat(78) + '\r\n';
  let body = line.repeat(Math.floor(size / line.length));
  body += 'Y'.repeat(Math.max(0, size - body.length - 2)) + (size - body.length >= 2 ? '\r\n' : '');
  return headers + '\r\n' + body;
}

/** 20 (or `sessions`) concurrent nodemailer SMTP sessions sharing one message counter. */
async function loadNode({ port, sessions, messages, size, reuse, timeoutMs }) {
  const { default: SMTPConnection } = await import('nodemailer/lib/smtp-connection/index.js');
  const until = Date.now() + timeoutMs;
  let next = 0;
  let sent = 0;
  let failed = 0;
  const errors = [];
  const note = (e) => { failed++; if (errors.length < 5) errors.push(e.message ?? String(e)); };
  const connect = () => new Promise((res, rej) => {
    const c = new SMTPConnection({ host: '127.0.0.1', port, name: 'loadgen.example.org', ignoreTLS: true, logger: false,
      connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 60_000 });
    c.once('error', rej);
    c.connect(() => { c.off('error', rej); c.on('error', () => {}); res(c); });
  });
  const send = (c, i) => new Promise((res, rej) => {
    c.send({ from: 'a@example.org', to: ['b@example.org'] }, message(i, size), (err, info) => {
      if (err) rej(err);
      else if (info.accepted.length !== 1) rej(new Error(`not accepted: ${info.response}`));
      else res();
    });
  });
  const reset = (c) => new Promise((res, rej) => c.reset((err) => (err ? rej(err) : res())));
  const quit = (c) => new Promise((res) => {
    const t = setTimeout(() => { c.close(); res(); }, 5000);
    c.once('end', () => { clearTimeout(t); res(); });
    c.quit();
  });
  const session = async () => {
    let c;
    while (next < messages && Date.now() < until) {
      const i = next++;
      try {
        if (!c) c = await connect();
        await send(c, i);
        sent++;
        if (reuse) await reset(c);
        else { await quit(c); c = undefined; }
      } catch (e) {
        note(e);
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

function load(o) {
  return LOADGEN === 'smtp-source' ? loadSmtpSource(o) : loadNode(o);
}

// ---------------------------------------------------------------------------
// sink for the end-to-end measurement

async function startSink(port) {
  const counter = { count: 0 };
  let child;
  if (SMTP_SINK) {
    // -c: counters on stdout ("\r"-separated); backlog 1000.
    child = spawn(SMTP_SINK, ['-c', '-u', 'root', `127.0.0.1:${port}`, '1000'], { env: postfixEnv(SMTP_SINK), stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    child = spawn(NODE, [join(ROOT, 'bench', 'sink.js'), String(port), String(Math.ceil(STEP_TIMEOUT / 1000) + 60)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  }
  live.add(child.pid);
  child.once('close', () => live.delete(child.pid));
  let buf = '';
  child.stdout.on('data', (d) => {
    buf = (buf + d).slice(-4096);
    // smtp-sink -c: "<sessions> <quits> <messages>"-style counters; bench/sink.js: "count N".
    const parts = buf.split(/[\r\n]+/).filter(Boolean);
    const last = parts.at(-1) ?? '';
    const m = SMTP_SINK ? /(\d+)\s*$/.exec(last) : /^count (\d+)/.exec(last);
    if (m) counter.count = Number(m[1]);
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((r) => child.once('close', r));
  await waitForPort(port);
  return {
    counter,
    name: SMTP_SINK ? `smtp-sink -c -u root 127.0.0.1:${port} 1000` : `node bench/sink.js ${port}`,
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

const results = {
  started: new Date(START).toISOString(),
  machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memGB: Math.round(totalmem() / 2 ** 30) },
  tools: { loadgen: LOADGEN, smtpSource: SMTP_SOURCE ?? null, smtpSink: SMTP_SINK ?? null, hyperfine: HYPERFINE ?? null, strace: STRACE ?? null },
  parameters: { messages: N, e2eMessages: N_E2E, fsyncMessages: N_FSYNC, sessions: SESSIONS, size: SIZE, runs: RUNS },
  accept: [], e2e: [], sendmail: null, fsync: null, notes: [], othersCpu: {},
};

/** A short hash of the .js files under dist/: which build was measured (others may rebuild it during a run). */
function distFingerprint() {
  const h = createHash('sha256');
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.js')) h.update(p).update(readFileSync(p));
    }
  };
  walk(join(ROOT, 'dist'));
  return h.digest('hex').slice(0, 12);
}

function distFreshness() {
  const newest = (dir, ext) => {
    let t = 0;
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
      }
    };
    if (existsSync(dir)) walk(dir);
    return t;
  };
  const src = newest(join(ROOT, 'src'), '.ts');
  const dist = newest(join(ROOT, 'dist'), '.js');
  if (!dist) throw new Error('dist/ is empty: build first (npx tsc -p .)');
  if (src > dist) {
    const msg = 'src/ has changes newer than dist/: numbers are for the last build (run npx tsc -p . first)';
    log(`warning: ${msg}`);
    results.notes.push(msg);
  }
}

const pct = (v) => (v === undefined ? '?' : `${v}%`);

function table(headers, rows) {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function renderMarkdown() {
  const r = results;
  const L = [];
  L.push('# postern benchmark results', '');
  L.push(`Run ${r.started}, Node ${r.machine.node}, ${r.machine.cpus} CPUs (${r.machine.cpuModel}), ${r.machine.memGB} GB. ` +
    `Spools on ${r.machine.spoolFs ?? '?'}; one 4 KB write + fdatasync there: median ${r.machine.fdatasyncMs ?? '?'} ms.`);
  L.push(`Load generator: ${r.tools.loadgen === 'smtp-source' ? `Postfix smtp-source (${r.tools.smtpSource})` : "built-in (nodemailer's SMTPConnection)"}; ` +
    `sink: ${r.tools.smtpSink ? 'Postfix smtp-sink' : 'bench/sink.js (smtp-server)'}; ` +
    `${SESSIONS} concurrent sessions; ${SIZE}-byte message bodies. Daemon: \`bin/postern -C CONFIG -bd -q1m\` with config/postern.toml's settings.`);
  L.push(`Build measured: dist/ fingerprint ${r.dist ?? '?'} (sha256 of the .js files under dist/).`);
  L.push('"Others\' CPU" = user-mode CPU used during that measurement by processes that are not the bench\'s, in % of the whole machine (from /proc/stat); ' +
    'more than a few % means the machine was shared and the number is low.');
  L.push('');
  if (r.accept.length) {
    L.push('## 1. Accepting over SMTP, smarthost down', '');
    L.push('Time from the first connection until the load generator has its last 250 (every 250 is sent only after the spool commit is synced). ' +
      '"queued" is `postern -bpc` right after the load; it must equal the messages sent.', '');
    L.push(table(['connections', 'messages', 'seconds', 'msg/s', 'queued (-bpc)', '`<=` lines', 'daemon peak RSS', "others' CPU", 'problems'],
      r.accept.map((a) => [a.mode, a.messages, secs(a.ms), `**${a.rate}**`, a.queued, a.arrivals, `${a.mem.peakMB} MB`, pct(a.othersCpu), a.errors.length ? a.errors.join('; ') : 'none'])));
    L.push('', `Load command: \`${r.accept[0].command}\``, '');
  }
  if (r.e2e.length) {
    L.push('## 2. End to end into a sink', '');
    L.push('From the first connection until the main log holds N `Completed` lines (each one written after the sink answered 250 and the spool entry was removed with a synced commit).', '');
    L.push(table(['connections', 'messages', 'submission s', 'submission msg/s', 'until all Completed s', 'end-to-end msg/s', 'sink counted', 'left in queue', "others' CPU", 'problems'],
      r.e2e.map((e) => [e.mode, e.messages, secs(e.submitMs), e.submitRate, e.doneMs ? secs(e.doneMs) : 'n/a', `**${e.rate}**`, e.sinkCount, e.queuedAfter, pct(e.othersCpu), e.errors.length ? e.errors.join('; ') : 'none'])));
    L.push('', `Sink: \`${r.e2e[0].sink}\``, '');
  }
  if (r.sendmail) {
    const s = r.sendmail;
    L.push('## 3. Whole-process time of one submission', '');
    L.push(`${s.tool === 'hyperfine' ? `hyperfine (${s.runs} runs, ${s.warmup} warm-up)` : `timed by bench/run.js (${s.runs} runs after ${s.warmup} warm-up)`}; ` +
      `message ${s.messageBytes} bytes on stdin; others' CPU during this step: ${pct(r.othersCpu.sendmail)}.`, '');
    L.push(table(['command', 'mean ms', '± σ', 'median ms', 'min ms', 'max ms'],
      s.rows.map((x) => [x.label, x.mean.toFixed(1), x.stddev.toFixed(1), x.median.toFixed(1), x.min.toFixed(1), x.max.toFixed(1)])));
    L.push('', ...s.checks.map((c) => `- ${c}`), '');
  }
  if (r.fsync) {
    const f = r.fsync;
    L.push('## 4. Sync system calls per message', '');
    L.push(`\`strace -f -c ${f.seccomp ? '--seccomp-bpf ' : ''}-e trace=fsync,fdatasync,msync,sync_file_range\` around the daemon; ` +
      'baseline = daemon started and stopped with no mail (start-up and shut-down syncs). "net" subtracts the baseline. ' +
      'The smarthost is down, so the first deliveries are deferred once (a few settle commits) before the host is marked down. ' +
      `Others' CPU during this step: ${pct(r.othersCpu.fsync)}.`, '');
    L.push(table(['run', 'messages', 'fsync', 'fdatasync', 'msync', 'sync_file_range', 'total', 'net', 'net per message', 'accept msg/s under strace'],
      f.rows.map((x) => [x.label, x.messages, x.calls.fsync, x.calls.fdatasync, x.calls.msync, x.calls.sync_file_range, x.total,
        x.net ?? '', x.perMessage ?? '', x.rate ?? ''])));
    L.push('');
  }
  if (r.notes.length) L.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  L.push(`Total bench time: ${secs(Date.now() - START)} s.`, '');
  return L.join('\n');
}

function save() {
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(OUT, 'results.md'), renderMarkdown());
}

// ---------------------------------------------------------------------------
// 1. accept rate, smarthost down

async function measureAccept(reuse) {
  const mode = reuse ? 'reused (-d)' : 'one per message';
  const dir = workDir(reuse ? 'accept-reuse' : 'accept-new');
  const cfg = writeConfig(dir, { smtpPort: await freePort(), smarthostPort: await freePort() });
  const d = await startDaemon(cfg);
  log(`accept, ${mode}: ${N} messages, ${SESSIONS} sessions, smarthost 127.0.0.1:${cfg.smarthostPort} (closed)`);
  let l;
  let mem;
  let queued;
  try {
    l = await load({ port: cfg.smtpPort, sessions: SESSIONS, messages: N, size: SIZE, reuse, timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) });
  } finally {
    mem = memory(d.pid);
    queued = await queueCount(cfg).catch((e) => `error: ${e.message}`);
    await stopDaemon(d);
  }
  const arrivals = countLines(cfg.mainlog, / <= /);
  const errors = [...l.errors];
  if (queued !== N) errors.push(`queue holds ${queued}, expected ${N}`);
  if (arrivals !== N) errors.push(`${arrivals} arrival lines, expected ${N}`);
  const row = { mode, reuse, messages: N, ms: l.ms, rate: rate(N, l.ms), queued, arrivals, mem, errors, command: l.command, config: cfg.file };
  log(`  ${secs(l.ms)} s, ${row.rate} msg/s, -bpc ${queued}, peak RSS ${mem.peakMB} MB`);
  results.accept.push(row);
  save();
  return cfg;
}

// ---------------------------------------------------------------------------
// 2. end to end into a sink

async function measureE2e(reuse) {
  const mode = reuse ? 'reused (-d)' : 'one per message';
  const dir = workDir(reuse ? 'e2e-reuse' : 'e2e-new');
  const sinkPort = await freePort();
  const sink = await startSink(sinkPort);
  const cfg = writeConfig(dir, { smtpPort: await freePort(), smarthostPort: sinkPort });
  let d;
  const errors = [];
  const row = { mode, reuse, messages: N_E2E, sink: sink.name.replace(String(sinkPort), 'PORT') };
  try {
    d = await startDaemon(cfg);
    log(`end to end, ${mode}: ${N_E2E} messages into ${sink.name}`);
    const completed = new LineCounter(cfg.mainlog, / Completed$/);
    const t0 = performance.now();
    const until = Date.now() + Math.min(STEP_TIMEOUT, timeLeft());
    const l = await load({ port: cfg.smtpPort, sessions: SESSIONS, messages: N_E2E, size: SIZE, reuse, timeoutMs: until - Date.now() });
    row.submitMs = l.ms;
    row.submitRate = rate(N_E2E, l.ms);
    errors.push(...l.errors);
    while (completed.poll() < N_E2E && Date.now() < until) await sleep(20);
    const doneAt = performance.now();
    row.completed = completed.poll();
    if (row.completed >= N_E2E) {
      row.doneMs = doneAt - t0;
      row.rate = rate(N_E2E, row.doneMs);
    } else {
      row.rate = 'n/a';
      errors.push(`only ${row.completed} of ${N_E2E} Completed before the time limit`);
    }
    await sleep(300); // let the sink print its last counter
    row.sinkCount = sink.counter.count;
    row.queuedAfter = await queueCount(cfg);
    row.mem = memory(d.pid);
    row.deferrals = countLines(cfg.mainlog, / == /);
    if (row.deferrals) errors.push(`${row.deferrals} deferrals in the main log`);
    if (row.queuedAfter !== 0) errors.push(`${row.queuedAfter} messages still queued`);
  } finally {
    if (d) await stopDaemon(d);
    await sink.stop();
  }
  row.errors = errors;
  log(`  submitted in ${secs(row.submitMs)} s (${row.submitRate} msg/s); all Completed after ${row.doneMs ? secs(row.doneMs) : '?'} s: ${row.rate} msg/s; sink counted ${row.sinkCount}`);
  results.e2e.push(row);
  save();
}

// ---------------------------------------------------------------------------
// 3. sendmail whole-process time

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

function stats(times) {
  const a = [...times].sort((x, y) => x - y);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const median = a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
  const stddev = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, a.length - 1));
  return { mean, median, stddev, min: a[0], max: a.at(-1) };
}

async function measureSendmail(queuedCfg) {
  const upDir = workDir('sendmail-up');
  const downDir = workDir('sendmail-down');
  const up = writeConfig(upDir, { smtpPort: await freePort(), smarthostPort: await freePort() });
  const down = writeConfig(downDir, { smtpPort: await freePort(), smarthostPort: await freePort() });
  const msgFile = join(upDir, 'message.eml');
  const body = 'This is a bench message.\n'.repeat(Math.max(1, Math.floor(SIZE / 25)));
  writeFileSync(msgFile, `From: bench <a@example.org>\nTo: b@example.org\nSubject: sendmail bench\n\n${body}`);
  const warmup = 3;
  const commands = [
    { label: '`node -e 0`', cmd: `${shq(NODE)} -e 0`, argv: [NODE, '-e', '0'] },
    { label: '`sendmail -t -i`, daemon running', cmd: `${shq(SENDMAIL)} -C ${shq(up.file)} -t -i < ${shq(msgFile)}`, argv: [SENDMAIL, '-C', up.file, '-t', '-i'], stdin: true, cfg: up },
    { label: '`sendmail -t -i`, daemon down', cmd: `${shq(SENDMAIL)} -C ${shq(down.file)} -t -i < ${shq(msgFile)}`, argv: [SENDMAIL, '-C', down.file, '-t', '-i'], stdin: true, cfg: down },
  ];
  let queuedN;
  if (queuedCfg) {
    queuedN = await queueCount(queuedCfg);
    commands.push({ label: `\`postern -bpc\`, ${queuedN} queued`, cmd: `${shq(POSTERN)} -C ${shq(queuedCfg.file)} -bpc`, argv: [POSTERN, '-C', queuedCfg.file, '-bpc'] });
    commands.push({ label: `\`postern -bp\` (mailq), ${queuedN} queued`, cmd: `${shq(POSTERN)} -C ${shq(queuedCfg.file)} -bp > /dev/null`, argv: [POSTERN, '-C', queuedCfg.file, '-bp'] });
  }
  const d = await startDaemon(up);
  const rows = [];
  let tool;
  let upQueued;
  try {
    log(`sendmail: ${commands.length} commands, ${RUNS} runs each`);
    if (HYPERFINE) {
      tool = 'hyperfine';
      const json = join(OUT, 'hyperfine.json');
      mkdirSync(OUT, { recursive: true });
      const r = await run(HYPERFINE, ['--warmup', String(warmup), '--runs', String(RUNS), '--style', 'basic', '--export-json', json,
        ...commands.flatMap((c) => ['-n', c.label, c.cmd])], { timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) });
      if (r.code !== 0) throw new Error(`hyperfine failed (${r.code}): ${r.stderr.slice(-2000)}`);
      for (const [i, x] of JSON.parse(readFileSync(json, 'utf8')).results.entries()) {
        rows.push({ label: commands[i].label, mean: x.mean * 1000, stddev: (x.stddev ?? 0) * 1000, median: x.median * 1000, min: x.min * 1000, max: x.max * 1000 });
      }
    } else {
      tool = 'bench/run.js';
      const input = readFileSync(msgFile);
      for (const c of commands) {
        const times = [];
        for (let i = 0; i < warmup + RUNS; i++) {
          const r = await run(c.argv[0], c.argv.slice(1), { input: c.stdin ? input : undefined, timeoutMs: 60_000 });
          if (r.code !== 0) throw new Error(`${c.label} exited ${r.code}: ${r.stderr}`);
          if (i >= warmup) times.push(r.ms);
        }
        rows.push({ label: c.label, ...stats(times) });
      }
    }
  } finally {
    upQueued = await queueCount(up).catch((e) => e.message);
    await stopDaemon(d);
  }
  const downQueued = await queueCount(down).catch((e) => e.message);
  const expect = warmup + RUNS;
  const checks = [
    `daemon-running spool holds ${upQueued} messages after ${expect} submissions (${countLines(up.mainlog, / <= .* P=local /)} \`<= ... P=local\` lines)`,
    `daemon-down spool holds ${downQueued} messages after ${expect} submissions (${countLines(down.mainlog, / <= /)} \`<=\` lines)`,
  ];
  if (upQueued !== expect || downQueued !== expect) results.notes.push(`sendmail: expected ${expect} queued in each spool, found ${upQueued} / ${downQueued}`);
  results.sendmail = { tool, runs: RUNS, warmup, messageBytes: statSync(msgFile).size, rows, checks };
  for (const x of rows) log(`  ${x.label}: mean ${x.mean.toFixed(1)} ms, median ${x.median.toFixed(1)} ms`);
  save();
}

// ---------------------------------------------------------------------------
// 4. sync system calls per message

const SYNCS = ['fsync', 'fdatasync', 'msync', 'sync_file_range'];

function parseStraceSummary(text) {
  const calls = Object.fromEntries(SYNCS.map((s) => [s, 0]));
  for (const line of text.split('\n')) {
    // % time     seconds  usecs/call     calls    errors syscall
    const f = line.trim().split(/\s+/);
    const name = f.at(-1);
    if (SYNCS.includes(name) && f.length >= 5) {
      const n = Number(f.length === 6 ? f[3] : f[3]);
      if (Number.isFinite(n)) calls[name] = n;
    }
  }
  return calls;
}

async function straceRun(label, messages, reuse, seccomp) {
  const dir = workDir(`fsync-${label.replace(/\W+/g, '-')}`);
  const cfg = writeConfig(dir, { smtpPort: await freePort(), smarthostPort: await freePort() });
  const out = join(dir, 'strace.txt');
  const wrapper = [STRACE, '-f', '-c', ...(seccomp ? ['--seccomp-bpf'] : []), '-e', `trace=${SYNCS.join(',')}`, '-o', out];
  const d = await startDaemon(cfg, wrapper);
  let l;
  let queued;
  try {
    if (messages > 0) l = await load({ port: cfg.smtpPort, sessions: SESSIONS, messages, size: SIZE, reuse, timeoutMs: Math.min(STEP_TIMEOUT, timeLeft()) });
    else await sleep(1000);
    await sleep(500);
  } finally {
    queued = await queueCount(cfg).catch(() => NaN);
    await stopDaemon(d);
  }
  const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `strace-${label.replace(/\W+/g, '-')}.txt`), text);
  const calls = parseStraceSummary(text);
  const total = SYNCS.reduce((s, k) => s + calls[k], 0);
  const row = { label, messages, reuse, calls, total, queued, rate: l ? rate(messages, l.ms) : undefined, errors: l?.errors ?? [] };
  if (messages > 0 && queued !== messages) results.notes.push(`fsync ${label}: queue holds ${queued}, expected ${messages}`);
  log(`  ${label}: ${JSON.stringify(calls)} (queued ${queued})`);
  return row;
}

async function measureFsync() {
  let seccomp = true;
  const probe = await run(STRACE, ['-f', '-c', '--seccomp-bpf', '-e', 'trace=fsync', '-o', '/dev/null', 'true'], { timeoutMs: 10_000 });
  if (probe.code !== 0) seccomp = false;
  log(`fsync: strace${seccomp ? ' --seccomp-bpf' : ''}, ${N_FSYNC} messages`);
  const base = await straceRun('baseline (no mail)', 0, false, seccomp);
  const rows = [base];
  for (const reuse of [true, false]) {
    if (timeLeft() < 30_000) { results.notes.push('fsync: skipped a run, out of time'); break; }
    const r = await straceRun(reuse ? `${SESSIONS} sessions, reused` : `${SESSIONS} sessions, one per message`, N_FSYNC, reuse, seccomp);
    r.net = r.total - base.total;
    r.perMessage = (r.net / r.messages).toFixed(3);
    rows.push(r);
  }
  results.fsync = { seccomp, rows };
  save();
}

// ---------------------------------------------------------------------------

/** The spool's file system and what one 4 KB write + fdatasync costs there (median of 50). */
function diskProbe() {
  const dir = workDir('disk');
  let fs = 'unknown';
  try { fs = execFileSync('df', ['--output=fstype,source', dir], { encoding: 'utf8' }).split('\n')[1].trim().replace(/\s+/g, ' on '); } catch { /* no df */ }
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
  }
  results.machine.spoolFs = `${fs} (${tmpdir()})`;
  results.machine.fdatasyncMs = Number(stats(times).median.toFixed(3));
  log(`spool file system: ${results.machine.spoolFs}; 4 KB write + fdatasync: median ${results.machine.fdatasyncMs} ms`);
}

async function main() {
  distFreshness();
  results.dist = distFingerprint();
  diskProbe();
  mkdirSync(OUT, { recursive: true });
  log(`load generator: ${LOADGEN}${LOADGEN === 'smtp-source' ? ` (${SMTP_SOURCE})` : ' (set SMTP_SOURCE=/path/to/smtp-source to use Postfix\'s)'}`);
  let queuedCfg;
  if (STEPS.has('accept')) {
    await watched('accept, one per message', () => measureAccept(false), () => results.accept.at(-1));
    if (timeLeft() > 30_000) queuedCfg = await watched('accept, reused', () => measureAccept(true), () => results.accept.at(-1));
  }
  if (STEPS.has('e2e')) {
    for (const reuse of [false, true]) {
      if (timeLeft() < 30_000) { results.notes.push('e2e: skipped a run, out of time'); break; }
      await watched(`e2e, ${reuse ? 'reused' : 'one per message'}`, () => measureE2e(reuse), () => results.e2e.at(-1));
    }
  }
  if (STEPS.has('sendmail')) {
    if (timeLeft() < 30_000) results.notes.push('sendmail: skipped, out of time');
    else await watched('sendmail', () => measureSendmail(queuedCfg));
  }
  if (STEPS.has('fsync')) {
    if (!STRACE) results.notes.push('fsync: skipped, strace not found (apt-get install -y strace, or STRACE=/path)');
    else if (timeLeft() < 30_000) results.notes.push('fsync: skipped, out of time');
    else await watched('fsync', () => measureFsync());
  }
  const after = distFingerprint();
  if (after !== results.dist) {
    results.notes.push(`dist/ changed during the run (build ${results.dist} at the start, ${after} at the end): later steps measured another build`);
  }
  save();
  process.stdout.write(renderMarkdown());
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  results.notes.push(`bench stopped: ${e.message}`);
  log(`error: ${e.stack ?? e.message}`);
  try { save(); } catch { /* nothing more to do */ }
} finally {
  killLive();
  if (!opt.keep) for (const d of workDirs) rmSync(d, { recursive: true, force: true });
  else log(`work folders kept: ${workDirs.join(' ')}`);
}
process.exit(failed ? 1 : 0);
