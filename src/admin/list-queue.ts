// admin/list-queue.ts: -bp and its letters (c count, u undelivered only, r and a as
// Exim's, accepted), --json, and -bp with message IDs: the queue as Exim lists it. For
// main.ts and the bundled listing (cli/list.ts) alike.
import { usage } from '../core/exit.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { batched, entryFormatter, formatEntry, jsonEntry } from './format.js';

type Out = (s: string | Buffer) => void;
export interface ListOptions { count: boolean; undelivered: boolean; json: boolean; ids: string[] }

/** The listing's command line: its mode (`-bp...` or `--json`) and the other arguments. */
export function listOptions(mode: string, rest: string[]): ListOptions {
  const flags = mode === '--json' ? '-bp' : mode;
  if (!/^-bp[cura]*$/.test(flags)) throw usage(`unknown option ${mode}`);
  const ids = rest.filter((a) => a !== mode && a !== '--json' && !/^-bp/.test(a));
  for (const id of ids) if (id.startsWith('-')) throw usage(`unknown option ${id}`);
  return { count: flags.includes('c'), undelivered: flags.includes('u'), json: rest.includes('--json'), ids };
}

export function listQueue(spool: LmdbSpool, out: Out, opts: Partial<ListOptions>): number {
  if (opts.count) {
    out(opts.json ? `${JSON.stringify({ count: spool.count() })}\n` : `${spool.count()}\n`);
    return 0;
  }
  const now = Date.now();
  const buf = batched((s) => out(s));
  if (opts.ids && opts.ids.length) {
    for (const id of opts.ids) {
      const r = spool.load(id);
      if (r) buf.write(opts.json ? jsonEntry(r, spool.journal(r.id)) : formatEntry(r, now, opts.undelivered));
      else if (!opts.json) buf.write(`      ${id}\n    *** spool read error: No such file or directory ***\n\n`);
    }
  } else if (opts.json) {
    for (const r of spool.list()) buf.write(jsonEntry(r, spool.journal(r.id)));
  } else {
    // The whole queue: listing entries, not records (spool/listing.ts).
    const entry = entryFormatter(now, opts.undelivered);
    for (const r of spool.listed()) buf.write(entry(r));
  }
  buf.flush();
  return 0;
}
