// bench/receivers.ts: a PROTOTYPE outside src/ for issue 22's open question — what does
// a second receiver give on two cores? It measures SMTP *accepting* only (no scheduler,
// no delivery: the smarthost is down), with the daemon's own receiving code from dist/
// (SmtpReceiver on an inherited listening fd, the LMDB spool with its synced commit
// before every 250, the main log), in three shapes that accept on ONE listening socket
// the parent binds and hands over as systemd would (fd 3, `listenFd(3)`, the daemon's
// socket-activation path):
//   p1: one process (the baseline, the daemon's code path);
//   p2: two processes, each with its own LmdbSpool on the same spool (LMDB takes
//       writers from several processes; each commit takes the environment's write lock)
//       and its own ID generator (the pid is in every ID, so IDs never collide);
//   w2: one process whose two worker_threads each run a receiver on the same fd (two
//       libuv loops polling one listening socket) and open the spool (lmdb-js shares the
//       environment between threads of a process); the IDs' pid part is pid*16+threadId.
// Load: Postfix's smtp-source (bench/peers/ or SMTP_SOURCE=), one message per connection
// and connections reused (-d), after an untimed warm-up on the same receivers; rounds
// alternate the shapes load by load. Figures: msg/s, and CPU s per 1,000 messages of
// every receiving process (/proc/PID/stat, all threads, from just before to 0.5 s after
// the load). Every row is checked: smtp-source exit 0 and the spool holds warm-up + N.
//
//   npm run build && npx tsc -p bench && node dist/bench/receivers.js [--shapes p1,p2,w2]
//     [--loads new,reuse] [-m 2000] [--warmup 1000] [--rounds 3] [-s 20] [-l 2048]
// Prints a table and writes bench/out/receivers.json. Not part of npm test or CI.
import { fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker, isMainThread, threadId, workerData } from 'node:worker_threads';
import { findPeers, treeCpuSeconds } from './peers.js';
import { ROOT, UNIT_NODE_FLAGS } from './root.js';

const SELF = fileURLToPath(import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// the receiving side (a child process, or a worker thread of one)

/** What of dist/ the receiver needs (dist/ is built from src/, whose types tsc checks there). */
interface Spool { count(): number; close(): Promise<void> | void }
interface Receiver { listenFd(fd: number): Promise<string>; close(): Promise<void> }
interface Dist {
  LmdbSpool: { open(dir: string): Spool };
  MessageIdGenerator: new (pid: number) => unknown;
  EventBus: new () => { on(f: (e: unknown) => void): void };
  MainLog: new (file: string, format: 'exim', now: () => number) => { write(e: unknown): void; close(): Promise<void> };
  SmtpReceiver: new (o: Record<string, unknown>) => Receiver;
  systemClock: unknown;
}

async function loadDist(): Promise<Dist> {
  const d = (p: string) => import(join(ROOT, 'dist', p)) as Promise<Record<string, unknown>>;
  const [spool, ids, events, log, smtp, clock] = await Promise.all([d('spool/lmdb-spool.js'), d('spool/message-id.js'), d('core/events.js'), d('log/mainlog.js'), d('receive/smtp.js'), d('core/clock.js')]);
  return { LmdbSpool: spool.LmdbSpool, MessageIdGenerator: ids.MessageIdGenerator, EventBus: events.EventBus, MainLog: log.MainLog, SmtpReceiver: smtp.SmtpReceiver, systemClock: clock.systemClock } as Dist;
}

/** One receiver as daemon.ts builds it (config/postern.toml's [listen] values), on fd 3. */
async function runReceiver(dir: string, name: string, idPid: number): Promise<() => Promise<void>> {
  const dist = await loadDist();
  const events = new dist.EventBus();
  const log = new dist.MainLog(join(dir, `mainlog-${name}`), 'exim', () => Date.now());
  events.on((e) => log.write(e));
  const spool = dist.LmdbSpool.open(join(dir, 'spool'));
  const receiver = new dist.SmtpReceiver({
    hostname: 'bench.example.org', qualifyDomain: 'example.org', relayFrom: ['127.0.0.0/8', '::1/128'],
    maxMessageSize: 50 * 1024 * 1024, maxRecipients: 1000, maxConnections: 100, spool, events, clock: dist.systemClock,
    idleTimeout: 300_000, maxErrors: 20, ids: new dist.MessageIdGenerator(idPid), kick: () => {},
  });
  await receiver.listenFd(3);
  return async () => {
    await receiver.close();
    await spool.close();
    await log.close();
  };
}

/** A receiving process: `--child DIR THREADS` (0: the receiver on the main thread). */
async function child(dir: string, threads: number): Promise<void> {
  setFlagsFromString('--heap-growing-percent=200'); // as daemon.ts
  let stop: () => Promise<void>;
  if (threads === 0) {
    stop = await runReceiver(dir, String(process.pid), process.pid);
  } else {
    const workers = Array.from({ length: threads }, () => new Worker(SELF, { workerData: { dir } }));
    await Promise.all(workers.map((w) => new Promise<void>((res, rej) => {
      w.once('error', rej);
      w.once('message', (m) => (m === 'ready' ? res() : rej(new Error(String(m)))));
    })));
    stop = async () => {
      await Promise.all(workers.map((w) => new Promise<void>((res) => { w.once('exit', () => res()); w.postMessage('stop'); })));
    };
  }
  process.on('message', (m) => {
    if (m === 'stop') void stop().finally(() => process.exit(0));
  });
  process.send!('ready');
}

async function workerMain(): Promise<void> {
  const { parentPort } = await import('node:worker_threads');
  const { dir } = workerData as { dir: string };
  try {
    const stop = await runReceiver(dir, `${process.pid}-t${threadId}`, process.pid * 16 + threadId);
    parentPort!.on('message', (m) => {
      if (m === 'stop') void stop().catch(() => {}).finally(() => process.exit(0));
    });
    parentPort!.postMessage('ready');
  } catch (err) {
    parentPort!.postMessage(`worker failed: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------
// the parent: socket, shapes, load, figures

interface Shape { name: string; procs: number; threads: number }
const SHAPES: Record<string, Shape> = {
  p1: { name: '1 process', procs: 1, threads: 0 },
  p2: { name: '2 processes', procs: 2, threads: 0 },
  w2: { name: '1 process, 2 worker threads', procs: 1, threads: 2 },
};

interface Running { pids: number[]; stop(): Promise<void>; port: number; dir: string }

async function start(shape: Shape): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-receivers-'));
  const server: Server = createServer();
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen({ port: 0, host: '127.0.0.1', backlog: 511 }, () => res()); });
  const port = (server.address() as AddressInfo).port;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const kids = Array.from({ length: shape.procs }, () => fork(SELF, ['--child', dir, String(shape.threads)], {
    execArgv: UNIT_NODE_FLAGS, stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'],
  }));
  // The children have their copies of the socket: the parent must not accept on it.
  await new Promise<void>((res) => server.close(() => res()));
  await Promise.all(kids.map((k) => new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error('receiver not ready after 20 s')), 20_000);
    k.once('exit', (code) => { clearTimeout(t); rej(new Error(`receiver exited (${code}) before ready`)); });
    k.once('message', (m) => { clearTimeout(t); if (m === 'ready') res(); else rej(new Error(String(m))); });
  })));
  return {
    pids: kids.map((k) => k.pid!), port, dir,
    stop: async () => {
      await Promise.all(kids.map((k) => new Promise<void>((res) => {
        const t = setTimeout(() => k.kill('SIGKILL'), 15_000);
        k.once('exit', () => { clearTimeout(t); res(); });
        k.send('stop');
      })));
    },
  };
}

const args = process.argv.slice(2);
const opt = (names: string[], dflt: string): string => {
  const i = args.findIndex((a) => names.includes(a));
  return i >= 0 ? args[i + 1] ?? dflt : dflt;
};

const PEERS = findPeers(join(ROOT, 'bench', 'peers'));
const SMTP_SOURCE = process.env.SMTP_SOURCE ?? PEERS.smtpSource;

function smtpSource(port: number, messages: number, reuse: boolean, sessions: number, size: number): Promise<{ ms: number; code: number | null; stderr: string }> {
  const lib = SMTP_SOURCE ? join(dirname(dirname(SMTP_SOURCE)), 'lib', 'postfix') : '';
  const env = existsSync(lib) ? { ...process.env, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } : process.env;
  const argv = ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', 'a@example.org', '-t', 'b@example.org', ...(reuse ? ['-d'] : []), `127.0.0.1:${port}`];
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const c = spawn(SMTP_SOURCE!, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => { stderr += d; });
    const timer = setTimeout(() => c.kill('SIGKILL'), 180_000);
    c.once('error', rej);
    c.once('close', (code) => { clearTimeout(timer); res({ ms: performance.now() - t0, code, stderr }); });
  });
}

/** Busy and total CPU seconds of the whole machine (/proc/stat's first line; all cores). */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!;
  return { busy: (total - idle) / 100, total: total / 100 };
}

/** This process's own CPU seconds and its reaped children's (smtp-source, once it has exited). */
function selfCpu(): { own: number; children: number } {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
  return { own: (x[11]! + x[12]!) / 100, children: (x[13]! + x[14]!) / 100 };
}

interface Row { round: number; load: string; shape: string; messages: number; seconds: number; rate: number; cpuPer1000: number; queued: number; split: number[]; loadgenCpuPer1000: number; machineBusy: number; othersCpu: number; ok: boolean; problem?: string }

async function measure(shape: Shape, load: string, round: number, o: { messages: number; warmup: number; sessions: number; size: number }): Promise<Row> {
  const reuse = load === 'reuse';
  const r = await start(shape);
  let row: Row;
  try {
    if (o.warmup > 0) {
      const w = await smtpSource(r.port, o.warmup, reuse, o.sessions, o.size);
      if (w.code !== 0) throw new Error(`warm-up: smtp-source exited ${w.code}: ${w.stderr.slice(0, 300)}`);
    }
    await sleep(500);
    const cpu = () => r.pids.reduce((s, p) => s + treeCpuSeconds(p), 0);
    const c0 = cpu();
    const m0 = machineCpu();
    const s0 = selfCpu();
    const t = await smtpSource(r.port, o.messages, reuse, o.sessions, o.size);
    // Read at the load's end: the machine's busy share while it ran, and what of it was not ours.
    const m1 = machineCpu();
    const s1 = selfCpu();
    const c1early = cpu();
    await sleep(500);
    const c1 = cpu();
    row = { round, load, shape: shape.name, messages: o.messages, seconds: t.ms / 1000, rate: o.messages / (t.ms / 1000), cpuPer1000: ((c1 - c0) * 1000) / o.messages, queued: -1, split: [],
      // the load generator (a reaped child: the parent's cutime) and the bench itself
      loadgenCpuPer1000: ((s1.children) * 1000 - s0.children * 1000) / o.messages,
      machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
      othersCpu: Math.max(0, (m1.busy - m0.busy) - (c1early - c0) - (s1.children - s0.children) - (s1.own - s0.own)) / (m1.total - m0.total),
      ok: t.code === 0,
      ...(t.code !== 0 ? { problem: `smtp-source exited ${t.code}: ${t.stderr.slice(0, 300)}` } : {}) };
  } finally {
    await r.stop();
  }
  const { LmdbSpool } = await loadDist();
  const spool = LmdbSpool.open(join(r.dir, 'spool'));
  row.queued = spool.count();
  await spool.close();
  if (row.queued !== o.warmup + o.messages) {
    row.ok = false;
    row.problem = `${row.problem ?? ''} spool holds ${row.queued}, expected ${o.warmup + o.messages}`.trim();
  }
  // How the arrivals (warm-up included) fell to each receiver: both must take a share.
  row.split = readdirSync(r.dir).filter((f) => f.startsWith('mainlog-')).map((f) => readFileSync(join(r.dir, f), 'utf8').split('\n').filter((l) => l.includes(' <= ')).length);
  rmSync(r.dir, { recursive: true, force: true });
  return row;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function parent(): Promise<void> {
  if (!SMTP_SOURCE || !existsSync(SMTP_SOURCE)) throw new Error('no smtp-source: run bench/fetch-peers.sh or set SMTP_SOURCE=');
  const shapes = opt(['--shapes'], 'p1,p2,w2').split(',').map((s) => {
    const sh = SHAPES[s];
    if (!sh) throw new Error(`unknown shape ${s} (p1, p2, w2)`);
    return sh;
  });
  const loads = opt(['--loads'], 'new,reuse').split(',');
  const o = { messages: Number(opt(['-m', '--messages'], '2000')), warmup: Number(opt(['--warmup'], '1000')), sessions: Number(opt(['-s', '--sessions'], '20')), size: Number(opt(['-l', '--size'], '2048')) };
  const rounds = Number(opt(['--rounds'], '3'));
  const uptime = () => readFileSync('/proc/loadavg', 'utf8').trim();
  process.stderr.write(`receivers: load average before: ${uptime()}\n`);
  const rows: Row[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const load of loads) {
      // Alternate the order of the shapes from round to round.
      const order = round % 2 ? shapes : [...shapes].reverse();
      for (const shape of order) {
        const row = await measure(shape, load, round, o);
        rows.push(row);
        process.stderr.write(`receivers: round ${round} ${load} ${shape.name}: ${row.rate.toFixed(0)} msg/s, ${row.cpuPer1000.toFixed(2)} CPU s/1000, queued ${row.queued}, arrivals per receiver ${row.split.join('/')}, smtp-source ${row.loadgenCpuPer1000.toFixed(2)} CPU s/1000, machine busy ${(row.machineBusy * 100).toFixed(0)}%, others ${(row.othersCpu * 100).toFixed(0)}%${row.ok ? '' : ` VOID: ${row.problem}`}\n`);
      }
    }
  }
  const after = uptime();
  process.stderr.write(`receivers: load average after: ${after}\n`);
  const lines = ['| load | shape | msg/s median [min–max] | CPU s per 1,000 median [min–max] | smtp-source CPU s per 1,000 | machine busy | others | valid |', '|---|---|---|---|---|---|---|---|'];
  for (const load of loads) {
    for (const shape of shapes) {
      const rs = rows.filter((r) => r.load === load && r.shape === shape.name);
      const ok = rs.filter((r) => r.ok);
      const f = (k: 'rate' | 'cpuPer1000', d: number) => ok.length ? `${median(ok.map((r) => r[k])).toFixed(d)} [${Math.min(...ok.map((r) => r[k])).toFixed(d)}–${Math.max(...ok.map((r) => r[k])).toFixed(d)}]` : 'void';
      const med = (k: 'loadgenCpuPer1000' | 'machineBusy' | 'othersCpu', pct: boolean) => ok.length ? (pct ? `${(median(ok.map((r) => r[k])) * 100).toFixed(0)}%` : median(ok.map((r) => r[k])).toFixed(2)) : '';
      lines.push(`| ${load === 'new' ? 'one message per connection' : 'connections reused'} | ${shape.name} | ${f('rate', 0)} | ${f('cpuPer1000', 2)} | ${med('loadgenCpuPer1000', false)} | ${med('machineBusy', true)} | ${med('othersCpu', true)} | ${ok.length} of ${rs.length} |`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
  mkdirSync(join(ROOT, 'bench', 'out'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'out', 'receivers.json'), JSON.stringify({ options: o, rounds, loads, rows }, null, 2));
}

if (!isMainThread) await workerMain();
else if (args[0] === '--child') await child(args[1]!, Number(args[2]));
else await parent();
