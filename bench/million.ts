// bench/million.ts: the queue commands on a big queue (issue 12). Fills a spool through
// the spool API (LmdbSpool.admit, 2,000 messages in flight at once so that lmdb-js
// groups them into few synced transactions; then made due (apply) a day ahead, so a daemon
// started on it waits as it would with its hub down), deterministic: message i has
// arrival start + i * 2 days / (1.3 N) (IDs from one generator, pid 4242, so they sort by
// arrival), sender spam@bad.example for every 10th, else www-data@webN, and one
// recipient at d0..d19.example. At each size asked (default 10,000, 100,000 and
// 1,000,000; it fills up to each) it times the real commands as child processes with
// /usr/bin/time (elapsed, peak RSS of the biggest process of the pipeline):
// -bpc (and on an empty spool), -bp > /dev/null, a qgrep filter, --summary, removing
// 1,000 IDs through xargs, a one-transaction bulk remove of the oldest 100,000 (refilled
// before the next size), and
// the daemon's RSS 3 s after its ready line against an empty spool's.
//
//   npm run build && npx tsc -p bench && node dist/bench/million.js [--sizes 10000,100000,1000000] [--dir /tmp/postern-million] [--keep]
// (--keep: no bulk remove, the spool keeps its size, for bench/million-exim.ts --postern)
// Writes bench/out/million.md and million.json; the spool stays in --dir (removed first).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT } from './root.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? dflt : dflt;
};
const sizes = arg('sizes', '10000,100000,1000000').split(',').map(Number);
const dir = resolve(arg('dir', '/tmp/postern-million'));
const TOTAL = Math.max(...sizes);
// The built spool (dist/, from src/): its types are src/'s, checked by the main tsc.
interface SpoolApi {
  admit(m: { id: string; sender: string; recipients: string[]; arrival: number; protocol: string; user: string; headers: string; body: Buffer[] }): Promise<{ id: string }>;
  apply(changes: { kind: 'make-due'; id: string; at: number; thaw: boolean }[]): Promise<unknown>;
  close(): Promise<void> | void;
}
const { LmdbSpool } = (await import(join(ROOT, 'dist/spool/lmdb-spool.js'))) as { LmdbSpool: { open(dir: string): SpoolApi } };
const { MessageIdGenerator } = (await import(join(ROOT, 'dist/spool/message-id.js'))) as { MessageIdGenerator: new (pid: number) => { next(at: number): string } };

interface Conf { file: string; spoolDir: string }
function config(name: string): Conf {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const file = join(d, 'postern.toml');
  writeFileSync(file, `hostname = "bench.example.org"
qualify_domain = "example.org"
[listen]
smtp = ["127.0.0.1:0"]
[spool]
directory = "${d}/spool"
[smarthost]
hosts = ["127.0.0.1:9"]
tls = "none"
[log]
file = "${d}/mainlog"
`);
  return { file, spoolDir: join(d, 'spool') };
}

rmSync(dir, { recursive: true, force: true });
const full = config('full');
const empty = config('empty');
LmdbSpool.open(empty.spoolDir).close();

const start = Date.now() - 2 * 86_400_000;
const gen = new MessageIdGenerator(4242);
let filled = 0;
let queued = 0;
/** Messages below this index were removed by an earlier bulk remove. */
let firstIndex = 0;
/** Arrivals spread over two days, with room for the refills after removals. */
const SPAN = 2 * 86_400_000 / (TOTAL * 1.3);
let fillMs = 0;
const body = Buffer.from('A line of body text, as a cron job would send.\n'.repeat(3));
async function fillTo(target: number): Promise<void> {
  const n = filled + (target - queued);
  queued = target;
  const t0 = performance.now();
  const spool = LmdbSpool.open(full.spoolDir);
  const later = Date.now() + 86_400_000;
  while (filled < n) {
    const batch: Promise<string>[] = [];
    for (let k = 0; k < 2000 && filled < n; k++, filled++) {
      const i = filled;
      const arrival = Math.floor(start + i * SPAN);
      const id = gen.next(arrival);
      const sender = i % 10 === 0 ? 'spam@bad.example' : `www-data@web${i % 7}.example.org`;
      const rcpt = `user${i % 1000}@d${i % 20}.example`;
      batch.push(spool.admit({
        id, sender, recipients: [rcpt], arrival, protocol: 'local', user: 'www-data',
        headers: `Received: from www-data by bench.example.org with local\n\tid ${id}\nSubject: report ${i}\nFrom: ${sender}\nTo: ${rcpt}\n`,
        body: [body],
      }).then((r) => r.id));
    }
    const ids = await Promise.all(batch);
    await spool.apply(ids.map((id) => ({ kind: 'make-due', id, at: later, thaw: false })));
  }
  await spool.close();
  fillMs += performance.now() - t0;
}

const bin = (name: string) => `${process.execPath} ${join(ROOT, 'bin', name)}`;
/** Runs a shell command under /usr/bin/time: { s: seconds, rssMB }. */
interface Timing { s: number; rssMB: number; anonMB?: number }
function timed(cmd: string, okCodes = [0]): Timing {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', 'sh', '-c', `${cmd} >/dev/null`], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const err = r.stderr.toString();
  // GNU time says "Command exited with non-zero status N" before its line.
  const code = Number(/non-zero status (\d+)/.exec(err)?.[1] ?? 0);
  if (!okCodes.includes(code)) throw new Error(`${cmd} exited ${code}: ${err.slice(-400)}`);
  return parseTime(err);
}
function parseTime(stderr: string): Timing {
  const line = stderr.trim().split('\n').pop() ?? '';
  const [s = NaN, kb = NaN] = line.split(' ').map(Number);
  return { s, rssMB: Math.round(kb / 102.4) / 10 };
}
/**
 * One postern command, stdout to /dev/null: elapsed, peak RSS (VmHWM: LMDB's mapped
 * file pages it touched count too) and peak anonymous RSS (its own heap and stacks),
 * sampled from /proc every 20 ms.
 */
function sampled(name: string, args: string[]): Promise<Timing> {
  return new Promise((res, rej) => {
    const devnull = openSync('/dev/null', 'w');
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(ROOT, 'bin', name), ...args], { stdio: ['ignore', devnull, 'pipe'] });
    let anon = 0;
    let hwm = 0;
    let err = '';
    const look = () => {
      try {
        const st = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        anon = Math.max(anon, Number(/RssAnon:\s+(\d+)/.exec(st)?.[1] ?? 0));
        hwm = Math.max(hwm, Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0));
      } catch { /* exited */ }
    };
    const timer = setInterval(look, 20);
    child.stderr!.on('data', (d: Buffer) => { err += d; });
    child.once('exit', () => look());
    child.once('close', (code) => {
      clearInterval(timer);
      closeSync(devnull);
      if (code !== 0) return rej(new Error(`${name} ${args.join(' ')} exited ${code}: ${err}`));
      res({ s: Math.round(performance.now() - t0) / 1000, rssMB: Math.round(hwm / 102.4) / 10, anonMB: Math.round(anon / 102.4) / 10 });
    });
  });
}

const median = (runs: number, f: () => Timing): Timing => {
  const r = Array.from({ length: runs }, f).sort((a, b) => a.s - b.s);
  return r[Math.floor(r.length / 2)]!;
};

function daemonRss(cfg: Conf): Promise<number> {
  return new Promise((res, rej) => {
    let measured = false;
    const child = spawn(process.execPath, [join(ROOT, 'bin/postern'), '-C', cfg.file, '-bd', '-q1h'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`daemon did not start: ${err}`)); }, 120_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      if (!/ready/.test(err) || measured) return;
      measured = true;
      setTimeout(() => {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
        clearTimeout(timer);
        child.once('close', () => res(Math.round(kb / 102.4) / 10));
        child.kill('SIGTERM');
      }, 3000);
    });
  });
}

const C = (f: Conf) => `-C ${f.file}`;
interface SizeRow { size: number; bpc?: Timing; bpcEmpty?: Timing; bp?: Timing; qgrep?: Timing; summary?: Timing; xargs1000?: Timing; daemonRss?: number; daemonRssFirst?: number; bulkRemove?: Timing; bulkRemoved?: number }
/** A row once measured: everything but the bulk remove (not with --keep) is there. */
type Done = Required<Omit<SizeRow, 'bulkRemove' | 'bulkRemoved'>> & Pick<SizeRow, 'bulkRemove' | 'bulkRemoved'> & { bp: Required<Timing>; qgrep: Required<Timing> };
const results: SizeRow[] = [];
const emptyBpc = median(5, () => timed(`${bin('postern')} ${C(empty)} -bpc`));
const emptyDaemon = await daemonRss(empty);
console.error(`empty: -bpc ${emptyBpc.s}s, daemon RSS ${emptyDaemon} MB`);
for (const size of sizes) {
  await fillTo(size);
  console.error(`filled ${size} (${Math.round(fillMs / 1000)} s of filling so far)`);
  const row: SizeRow = { size };
  // -bpc beside the empty spool's, alternating (the machine's load moves both alike).
  const pairs = Array.from({ length: 5 }, () => [timed(`${bin('postern')} ${C(empty)} -bpc`), timed(`${bin('postern')} ${C(full)} -bpc`)] as const);
  row.bpc = pairs.map((p) => p[1]).sort((a, b) => a.s - b.s)[2];
  row.bpcEmpty = pairs.map((p) => p[0]).sort((a, b) => a.s - b.s)[2];
  row.bp = await sampled('postern', ['-C', full.file, '-bp']);
  row.qgrep = await sampled('postern-qgrep', ['-C', full.file, '-r', '@d7\\.example$', '-i']);
  row.summary = await sampled('postern-qgrep', ['-C', full.file, '--summary']);
  // 1,000 IDs of the spam sender through xargs (qgrep's scan included).
  row.xargs1000 = timed(`${bin('postern-qgrep')} ${C(full)} -i -f '^<spam@' | head -n 1000 | xargs ${bin('postern')} ${C(full)} -Mrm`, [0, 123]);
  // The first daemon start after other processes wrote the spool mends its indexes (one
  // pass over the records: their pages stay resident); one after its own clean stop reads none.
  row.daemonRssFirst = await daemonRss(full);
  row.daemonRss = await daemonRss(full);
  if (process.argv.includes('--keep')) {
    results.push(row);
    continue;
  }
  // The oldest 100,000 (all of them at 100,000) in one transaction, then filled up again.
  const cut = Math.min(filled, firstIndex + Math.min(size, 100_000));
  const oldest = Math.max(0, Math.floor((Date.now() - (start + cut * SPAN)) / 1000) - 1);
  firstIndex = cut;
  const before = Number(execFileSync(process.execPath, [join(ROOT, 'bin/postern'), '-C', full.file, '-bpc']).toString());
  row.bulkRemove = timed(`${bin('postern-qgrep')} ${C(full)} -o ${oldest} --remove`);
  const after = Number(execFileSync(process.execPath, [join(ROOT, 'bin/postern'), '-C', full.file, '-bpc']).toString());
  row.bulkRemoved = before - after;
  results.push(row);
  console.error(JSON.stringify(row));
  queued = after;
}

const done = results as Done[];
const small = done[0]!;
const fmt = (r: Timing) => `${r.s.toFixed(2)} s, ${r.rssMB} MB${r.anonMB !== undefined ? ` (${r.anonMB} anon)` : ''}`;
let md = `Queue commands on a big queue (bench/million, ${new Date().toISOString().slice(0, 10)}, ${process.version}, 2 shared cores).\n` +
  `Empty spool: -bpc ${emptyBpc.s.toFixed(2)} s; daemon RSS ${emptyDaemon} MB. Filling ${filled.toLocaleString('en')} messages through the spool API took ${Math.round(fillMs / 1000)} s.\n\n` +
  `| queued | -bpc | -bp > /dev/null | qgrep -r filter | --summary | 1,000 IDs via xargs -Mrm | bulk --remove (one transaction) | daemon RSS after its clean stop (first start after other writers) |\n` +
  '| --- | --- | --- | --- | --- | --- | --- | --- |\n';
for (const r of done) {
  md += `| ${r.size.toLocaleString('en')} | ${r.bpc.s.toFixed(2)} s (empty ${r.bpcEmpty.s.toFixed(2)} s) | ${fmt(r.bp)} | ${fmt(r.qgrep)} | ${fmt(r.summary)} | ${fmt(r.xargs1000)} | ` +
    `${r.bulkRemove ? `${(r.bulkRemoved ?? 0).toLocaleString('en')} in ${fmt(r.bulkRemove)}` : '-'} | ${r.daemonRss} MB (${r.daemonRssFirst} MB) |\n`;
}
const big = done[done.length - 1]!;
md += `\nTargets: -bpc at ${big.size.toLocaleString('en')} within 1.2x of empty: ${(big.bpc.s / big.bpcEmpty.s).toFixed(2)}x (medians of 5 alternating runs); ` +
  `-bp peak RSS ${big.size.toLocaleString('en')} vs ${small.size.toLocaleString('en')}: ${(big.bp.rssMB / small.bp.rssMB).toFixed(2)}x ` +
  `(anonymous ${(big.bp.anonMB / small.bp.anonMB).toFixed(2)}x); ` +
  `qgrep: ${(big.qgrep.rssMB / small.qgrep.rssMB).toFixed(2)}x (anonymous ${(big.qgrep.anonMB / small.qgrep.anonMB).toFixed(2)}x); daemon RSS vs empty: ${(big.daemonRss / emptyDaemon).toFixed(2)}x.\n`;
mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
const outName = arg('out', 'million');
writeFileSync(join(ROOT, `bench/out/${outName}.md`), md);
writeFileSync(join(ROOT, `bench/out/${outName}.json`), JSON.stringify({ emptyBpc, emptyDaemon, fillMs, results }, null, 1));
process.stdout.write(md);
