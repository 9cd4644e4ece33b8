
// bench/profile-top.ts: the functions with the most self time in V8 CPU profiles
// (`node --cpu-prof`, or `npm run bench -- --profile`, which leaves them in
// bench/out/profiles/). Prints one table: self ms, share of all samples, function, file:line.
//
//   node dist/bench/profile-top.js bench/out/profiles/postern-bench-relay-new-*.cpuprofile [--top 25] [--by package]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, by: { type: 'string', default: 'function' } } });
if (!positionals.length) {
  process.stderr.write('usage: node dist/bench/profile-top.js FILE.cpuprofile... [--top N]\n');
  process.exit(64);
}
interface CpuNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface CpuProfile { nodes: CpuNode[]; samples: number[]; timeDeltas: number[] }
const self = new Map<string, number>();
let total = 0;
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // samples[i] is the node running at sample i; timeDeltas[i] the µs before it.
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    if (!n) return;
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(node_modules|dist|src)\//, '$1/')}:${f.lineNumber + 1}` : '';
    // --by package: node_modules/NAME, dist/DIR (postern's own), node: (Node's JS), or native/V8.
    const pkg = f.url.startsWith('node:') ? 'node: (Node\'s own JS)' : /node_modules\/((@[^/]+\/)?[^/]+)/.exec(f.url)?.[1] ?? /\/dist\/([^/]+)/.exec(f.url)?.[1]?.replace(/^/, 'postern dist/') ?? (f.url ? f.url : `native: ${f.functionName}`);
    const key = values.by === 'package' ? `${pkg}\t` : `${f.functionName || '(anonymous)'}\t${where}`;
    const us = p.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + us);
    total += us;
  });
}
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top));
process.stdout.write(`| self ms | share | function | where |\n|---:|---:|---|---|\n`);
for (const [key, us] of rows) {
  const [fn, where] = key.split('\t');
  process.stdout.write(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / total).toFixed(1)}% | ${fn} | ${where} |\n`);
}
process.stdout.write(`\nTotal sampled: ${(total / 1000).toFixed(0)} ms in ${positionals.length} profile(s).\n`);
