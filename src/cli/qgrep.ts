// cli/qgrep.ts: postern-qgrep, exiqgrep's selectors and displays over the spool
// (full implementation lands with the queue-administration issue).
import type { Config } from '../config/schema.js';
import { usage } from '../core/exit.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { formatEntry } from './format.js';

export function qgrep(argv: string[], _config: Config, spool: LmdbSpool, out: (s: string) => void): number {
  let idsOnly = false;
  let count = false;
  for (const a of argv) {
    if (a === '-i') idsOnly = true;
    else if (a === '-c') count = true;
    else throw usage(`option ${a} is not supported yet`);
  }
  let n = 0;
  const now = Date.now();
  for (const r of spool.list()) {
    n++;
    if (count) continue;
    out(idsOnly ? `${r.id}\n` : formatEntry(r, now));
  }
  if (count) out(`${n} matches out of ${n} messages\n`);
  return 0;
}
