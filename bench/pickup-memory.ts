// bench/pickup-memory.ts: the daemon's memory while its pickup takes big maildrop files
// (issue 18, item 9). As root: starts `postern -bd` (of ROOT, default this checkout) with
// the hub down (nothing is delivered meanwhile), notes its resident memory idle, moves N
// drop files of SIZE MB into the maildrop at once, waits for all N arrivals in the log,
// and prints one JSON line with the peak resident memory (VmHWM) over the idle figure.
// Not part of npm test.
//
//   npx tsc -p bench && node dist/bench/pickup-memory.js [--root DIR] [--files 8] [--mb 10]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT as HOME } from './root.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? def : def;
};
const ROOT = resolve(arg('root', HOME));
const FILES = Number(arg('files', '8'));
const MB = Number(arg('mb', '10'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'postern-mem-'));
const config = join(dir, 'postern.toml');
writeFileSync(config, `hostname = "web1.example.org"\nqualify_domain = "example.org"\n[listen]\nsmtp = ["127.0.0.1:0"]\n[spool]\ndirectory = "spool"\n[smarthost]\nhosts = ["127.0.0.1:9"]\ntls = "none"\n[log]\nfile = "log/mainlog"\n`);
const daemon = spawn(process.execPath, [join(ROOT, 'bin/postern'), '-C', config, '-bd', '-q1h'], { stdio: ['ignore', 'ignore', 'pipe'] });
const status = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))?.[1]) / 1024;
try {
  let said = '';
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`not ready: ${said}`)), 30_000);
    daemon.stderr.on('data', (d) => { said += d; if (/ready/.test(said)) { clearTimeout(t); res(); } });
  });
  await sleep(3000); // settle
  const idleRss = status('VmRSS');
  const idleHwm = status('VmHWM');
  // The files, made beside the maildrop and moved in at once.
  const stage = join(dir, 'stage');
  mkdirSync(stage);
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\n';
  const body = Buffer.from(line.repeat(Math.ceil((MB * 1024 * 1024) / line.length)));
  for (let i = 0; i < FILES; i++) {
    const env = JSON.stringify({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' });
    writeFileSync(join(stage, randomBytes(16).toString('hex')), Buffer.concat([Buffer.from(`${env}\nSubject: big ${i}\n\n`), body]), { mode: 0o644 });
  }
  const drop = join(dir, 'spool-maildrop');
  const t0 = Date.now();
  for (const f of readdirSync(stage)) renameSync(join(stage, f), join(drop, f));
  let peak = 0;
  for (;;) {
    peak = Math.max(peak, status('VmRSS'));
    const arrivals = (readFileSync(join(dir, 'log/mainlog'), 'utf8').match(/ <= /g) ?? []).length;
    if (arrivals >= FILES) break;
    if (Date.now() - t0 > 300_000) throw new Error(`only ${arrivals} of ${FILES} picked up in 300 s`);
    await sleep(20);
  }
  const tookMs = Date.now() - t0;
  const hwm = status('VmHWM');
  console.log(JSON.stringify({ root: ROOT, files: FILES, mb: MB, idleRssMb: Math.round(idleRss), idleHwmMb: Math.round(idleHwm), peakHwmMb: Math.round(hwm),
    sampledPeakRssMb: Math.round(peak), overIdleMb: Math.round(hwm - idleRss), tookMs }));
} finally {
  daemon.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
