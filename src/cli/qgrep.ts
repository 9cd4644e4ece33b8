// cli/qgrep.ts: postern-qgrep, exiqgrep's selectors and displays over the spool. The
// sender is matched as `<address>` (so `-f '^<>$'` selects bounces), recipients bare;
// with no selector every message matches, so `postern-qgrep -i | xargs postern -Mrm`
// empties the queue. Oldest first; reads envelopes only, never bodies.
import yargs from 'yargs';
import type { Config } from '../config/schema.js';
import { usage } from '../core/exit.js';
import type { MessageRecord } from '../core/types.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { formatEntry, formatSize, jsonEntry } from './format.js';

interface QgrepArgs {
  f?: string; r?: string; s?: string; y?: number; o?: number;
  z?: boolean; x?: boolean; a?: boolean; c?: boolean; i?: boolean; b?: boolean; R?: boolean; json?: boolean;
}

function regex(flag: string, text: string | undefined, flags: string): RegExp | undefined {
  if (text === undefined) return undefined;
  try {
    return new RegExp(text, flags);
  } catch {
    throw usage(`-${flag} ${text} is not a valid regular expression`);
  }
}

export function parseQgrepArgs(argv: string[]): QgrepArgs {
  let failure: string | undefined;
  const parsed = yargs(argv)
    .parserConfiguration({ 'camel-case-expansion': false, 'unknown-options-as-args': false })
    .string(['f', 'r', 's']).number(['y', 'o']).boolean(['z', 'x', 'a', 'c', 'i', 'b', 'R', 'json'])
    .strictOptions().help(false).version(false)
    .fail((msg) => { failure = msg; })
    .parseSync() as QgrepArgs & { _: unknown[] };
  if (failure) throw usage(failure.replace(/\n/g, ' '));
  if (parsed._.length > 0) throw usage(`unexpected argument ${String(parsed._[0])}`);
  for (const k of ['y', 'o'] as const) {
    if (parsed[k] !== undefined && !(Number.isFinite(parsed[k]) && (parsed[k] as number) >= 0)) throw usage(`-${k} needs a number of seconds`);
  }
  return parsed;
}

export function qgrep(argv: string[], _config: Config, spool: LmdbSpool, out: (s: string) => void): number {
  const a = parseQgrepArgs(argv);
  const sender = regex('f', a.f, 'i');
  const rcpt = regex('r', a.r, 'i');
  const size = regex('s', a.s, '');
  const now = Date.now();
  const matches = (m: MessageRecord): boolean => {
    if (sender && !sender.test(`<${m.sender}>`)) return false;
    if (rcpt && !m.recipients.some((r) => (a.a || r.state === 'pending') && rcpt.test(r.address))) return false;
    if (size && !size.test(formatSize(m.size).trim())) return false;
    const age = (now - m.arrival) / 1000;
    if (a.y !== undefined && age >= a.y) return false;
    if (a.o !== undefined && age <= a.o) return false;
    if (a.z && !m.frozen) return false;
    if (a.x && m.frozen) return false;
    return true;
  };
  let total = 0;
  const selected: MessageRecord[] = [];
  for (const m of spool.list()) {
    total++;
    if (!matches(m)) continue;
    if (a.c) selected.length++;
    else selected.push(m);
  }
  if (a.c) {
    out(`${selected.length} matches out of ${total} messages\n`);
    return 0;
  }
  if (a.R) selected.reverse();
  for (const m of selected) {
    if (a.json) out(jsonEntry(m));
    else if (a.i) out(`${m.id}\n`);
    else if (a.b) {
      const to = m.recipients.filter((r) => a.a || r.state === 'pending').map((r) => r.address).join(';');
      out(`${m.id} From: <${m.sender}> To: ${to}\n`);
    } else out(formatEntry(m, now, !a.a));
  }
  return 0;
}
