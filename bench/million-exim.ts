// bench/million-exim.ts: Exim 4.96's side of bench/million.ts's comparison (issue 12):
// `exim -bp > /dev/null` and `exiqgrep -r REGEX -i` on a queue of N messages shaped as
// million.js's (one recipient at d0..d19.example, every 10th from spam@bad.example).
// Exim is the Debian package unpacked by bench/fetch-peers.sh, run privately in its
// own mount namespace (bench/peers.ts's prepareExim; nothing is installed). The queue:
// one message submitted with `exim -odq`, then its -H and -D files copied N times under
// new IDs (the ID rewritten in the files' first lines and headers; the envelope's
// recipient and sender rewritten too, the headers' own text left as it is), owned by Debian-exim as Exim writes them.
//
//   node dist/bench/million-exim.js [--count 100000] [--dir /tmp/exim-million] [--postern CONFIG]
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, chmodSync, readFileSync, readdirSync, rmSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findPeers, peersUsable, prepareExim } from './peers.js';
import { ROOT } from './root.js';

const arg = (name: string, dflt: string | undefined): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const count = Number(arg('count', '100000'));
const dir = resolve(arg('dir', '/tmp/exim-million') ?? '/tmp/exim-million');
const peers = findPeers(process.env.BENCH_PEERS ?? join(ROOT, 'bench/peers'));
const why = peersUsable();
if (why || !peers.exim) {
  console.error(`cannot run Exim here: ${why ?? 'no unpacked Exim (run bench/fetch-peers.sh)'}`);
  process.exit(1);
}
const { MessageIdGenerator } = await import(join(ROOT, 'dist/spool/message-id.js'));

rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const x = prepareExim(peers, dir, { smtpPort: 2, smarthostPort: 9 });
// exiqgrep calls /usr/sbin/exim4: inside the namespace, the unpacked one.
copyFileSync(join(peers.dir, 'exim/usr/sbin/exiqgrep'), join(dir, 'sbin/exiqgrep'));
chmodSync(join(dir, 'sbin/exiqgrep'), 0o755);
const inNs = (cmd: string, input?: string) => spawnSync('unshare', ['-m', '-p', '-f', '--kill-child', 'sh', '-c', `${x.enter} && ${cmd}`],
  { env: x.env, input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], maxBuffer: 1 << 30 });

const seed = inNs('/usr/sbin/exim4 -odq -f www-data@web1.example.org user1@d1.example',
  'Subject: report\nFrom: www-data@web1.example.org\n\n' + 'A line of body text, as a cron job would send.\n'.repeat(3));
if (seed.status !== 0) throw new Error(`exim -odq failed: ${seed.stderr}`);
const input = join(x.spool, 'input');
const files = readdirSync(input);
const seedId = (files.find((f) => f.endsWith('-H')) ?? '').slice(0, -2);
const H = readFileSync(join(input, `${seedId}-H`), 'latin1');
const D = readFileSync(join(input, `${seedId}-D`), 'latin1');
const { uid, gid } = statSync(join(input, `${seedId}-H`));
rmSync(join(input, `${seedId}-H`));
rmSync(join(input, `${seedId}-D`));

const t0 = performance.now();
const gen = new MessageIdGenerator(4242);
const start = Date.now() - 2 * 86_400_000;
for (let i = 0; i < count; i++) {
  const id = gen.next(Math.floor(start + (i * 2 * 86_400_000) / (count * 1.3)));
  const sender = i % 10 === 0 ? 'spam@bad.example' : `www-data@web${i % 7}.example.org`;
  const rcpt = `user${i % 1000}@d${i % 20}.example`;
  // The envelope part only: the headers' byte counts must stay right.
  const cut = H.indexOf('\n\n');
  const h = H.slice(0, cut).replaceAll(seedId, id).replace('<www-data@web1.example.org>', `<${sender}>`).replace('\nuser1@d1.example', `\n${rcpt}`) +
    H.slice(cut).replaceAll(seedId, id);
  for (const [suffix, text] of [['-H', h], ['-D', D.replaceAll(seedId, id)]] as const) {
    const f = join(input, id + suffix);
    writeFileSync(f, text, { encoding: 'latin1', mode: 0o640 });
    chownSync(f, uid, gid);
  }
}
console.error(`wrote ${count} messages in ${Math.round(performance.now() - t0) / 1000} s`);

interface Timing { s: number; rssMB: number }
function timed(cmd: string): Timing {
  const r = inNs(`/usr/bin/time -f '%e %M' sh -c ${JSON.stringify(`${cmd} > /dev/null`)}`);
  const line = r.stderr.toString().trim().split('\n').pop() ?? '';
  const [s = NaN, kb = NaN] = line.split(' ').map(Number);
  if (r.status !== 0 || !Number.isFinite(s)) throw new Error(`${cmd}: ${r.stderr}`);
  return { s, rssMB: Math.round(kb / 102.4) / 10 };
}
const check = inNs('/usr/sbin/exim4 -bpc').stdout.toString().trim();
// With --postern CONFIG (a spool filled by bench/million.ts to the same count): each
// command of both, alternating, three rounds; medians.
const posternConfig = arg('postern', undefined);
const node = (name: string, args: string): Timing => {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', 'sh', '-c', `${process.execPath} ${join(ROOT, 'bin', name)} -C ${posternConfig} ${args} > /dev/null`]);
  const [s = NaN, kb = NaN] = (r.stderr.toString().trim().split('\n').pop() ?? '').split(' ').map(Number);
  return { s, rssMB: Math.round(kb / 102.4) / 10 };
};
const rounds = posternConfig ? 3 : 1;
const runs: Record<'bp' | 'exiqgrep' | 'posternBp' | 'posternQgrep', Timing[]> = { bp: [], exiqgrep: [], posternBp: [], posternQgrep: [] };
for (let i = 0; i < rounds; i++) {
  runs.bp.push(timed('/usr/sbin/exim4 -bp'));
  if (posternConfig) runs.posternBp.push(node('postern', '-bp'));
  runs.exiqgrep.push(timed("/usr/sbin/exiqgrep -r '@d7\\.example$' -i"));
  if (posternConfig) runs.posternQgrep.push(node('postern-qgrep', "-r '@d7\\.example$' -i"));
}
const med = (a: Timing[]): Timing | undefined => a.length ? a.sort((p, q) => p.s - q.s)[Math.floor(a.length / 2)] : undefined;
const result: { count: number; queued: number; bp?: Timing; exiqgrep?: Timing; posternBp?: Timing; posternQgrep?: Timing; bpRatio?: number; qgrepRatio?: number } = { count, queued: Number(check), bp: med(runs.bp), exiqgrep: med(runs.exiqgrep),
  ...(posternConfig ? { posternBp: med(runs.posternBp), posternQgrep: med(runs.posternQgrep) } : {}) };
if (posternConfig) {
  result.bpRatio = Math.round((result.bp!.s / result.posternBp!.s) * 10) / 10;
  result.qgrepRatio = Math.round((result.exiqgrep!.s / result.posternQgrep!.s) * 10) / 10;
}
console.log(JSON.stringify(result));
mkdirSync(join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(join(ROOT, 'bench/out/million-exim.json'), JSON.stringify(result, null, 1));
execFileSync('true');
