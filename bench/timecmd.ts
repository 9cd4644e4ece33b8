// bench/timecmd.ts: times whole runs of one command for bench/run.ts, the same way for
// every command (postern's sendmail, Exim's inside its mount namespace, `node -e 0`):
// spawn, stdin from a file, wait for exit; warm-up runs first. Prints one JSON line
// { times: [ms...] }; exits 1 with the command's stderr when a run fails.
//
//   node dist/bench/timecmd.js '{"argv":["node","-e","0"],"runs":20,"warmup":3,"stdin":"/path"}'
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

const spec = JSON.parse(process.argv[2] ?? '{}') as { argv: string[]; runs: number; warmup: number; stdin?: string };
const once = () => new Promise<number>((res, rej) => {
  const fd = spec.stdin ? openSync(spec.stdin, 'r') : 'ignore';
  const t0 = performance.now();
  const child = spawn(spec.argv[0]!, spec.argv.slice(1), { stdio: [fd, 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d; });
  child.once('error', rej);
  child.once('close', (code) => {
    const ms = performance.now() - t0;
    if (typeof fd === 'number') closeSync(fd);
    if (code !== 0) rej(new Error(`${spec.argv.join(' ')} exited ${code}: ${err.slice(-500)}`));
    else res(ms);
  });
});
try {
  const times = [];
  for (let i = 0; i < spec.warmup + spec.runs; i++) {
    const ms = await once();
    if (i >= spec.warmup) times.push(ms);
  }
  process.stdout.write(JSON.stringify({ times }) + '\n');
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
