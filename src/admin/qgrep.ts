// admin/qgrep.ts: postern-qgrep, exiqgrep's selectors and displays over the spool. The
// sender is matched as `<address>` (so `-f '^<>$'` selects bounces), recipients bare;
// with no selector every message matches, so `postern-qgrep -i | xargs postern -Mrm`
// empties the queue. Oldest first; reads envelopes only, never bodies, one at a time
// (ages, taken from the ID's time as exiqgrep does, seek by ID). Also --summary
// (exiqsumm), --shape (qshape) and the bulk actions --remove, --freeze, --thaw,
// --deliver, --giveup on what matches (see bulk.ts).
import { parseArgs } from 'node:util';
import { usage } from '../core/exit.js';
import type { MessageRecord } from '../core/types.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import type { Listed } from '../spool/listing.js';
import { base62, idTime } from '../spool/message-id.js';
import { batched, entryFormatter, formatSize, jsonEntry } from './format.js';
import { QueueShape, QueueSummary } from './summary.js';
import type { BulkAction } from './bulk.js';

const BULK_ACTIONS = ['remove', 'freeze', 'thaw', 'deliver', 'giveup'] as const satisfies readonly BulkAction[];

interface QgrepArgs {
  f?: string; r?: string; s?: string; y?: number; o?: number;
  z?: boolean; x?: boolean; a?: boolean; c?: boolean; i?: boolean; b?: boolean; R?: boolean; json?: boolean;
  summary?: boolean; shape?: boolean; 'dry-run'?: boolean;
  remove?: boolean; freeze?: boolean; thaw?: boolean; deliver?: boolean; giveup?: boolean;
}

function regex(flag: string, text: string | undefined, flags: string): RegExp | undefined {
  if (text === undefined) return undefined;
  try {
    return new RegExp(text, flags);
  } catch {
    throw usage(`-${flag} ${text} is not a valid regular expression`);
  }
}

const STRINGS = ['f', 'r', 's', 'y', 'o'] as const;
const BOOLEANS = ['z', 'x', 'a', 'c', 'i', 'b', 'R', 'json', 'summary', 'shape', 'dry-run', ...BULK_ACTIONS] as const;

/** node:util's parseArgs: yargs took longer to load (about 2× node's own start) than qgrep took to list 100,000 messages. */
export function parseQgrepArgs(argv: string[]): QgrepArgs {
  let got: { values: Record<string, unknown>; positionals: string[] };
  try {
    got = parseArgs({ args: argv, strict: true, allowPositionals: true,
      options: Object.fromEntries([...STRINGS.map((k) => [k, { type: 'string' as const }]), ...BOOLEANS.map((k) => [k, { type: 'boolean' as const }])]) });
  } catch (e) {
    // parseArgs names a short option with two dashes (`--f <value>`): as given, one.
    const option = /'(-{1,2}[\w-]+)/.exec((e as Error).message)?.[1]?.replace(/^--(\w)$/, '-$1');
    const code = (e as { code?: string }).code;
    throw usage(code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? `unknown option ${option ?? ''}`.trim()
      : code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? `option ${option ?? ''} needs a value` : (e as Error).message);
  }
  if (got.positionals.length > 0) throw usage(`unexpected argument ${got.positionals[0]}`);
  const v = got.values as Record<string, string | boolean | undefined>;
  const parsed: QgrepArgs = { ...v } as QgrepArgs;
  for (const k of ['y', 'o'] as const) if (v[k] !== undefined) parsed[k] = (v[k] as string).trim() === '' ? NaN : Number(v[k]);
  for (const k of ['y', 'o'] as const) {
    if (parsed[k] !== undefined && !(Number.isFinite(parsed[k]) && (parsed[k] as number) >= 0)) throw usage(`-${k} needs a number of seconds`);
  }
  const actions = BULK_ACTIONS.filter((k) => parsed[k]);
  if (actions.length > 1) throw usage(`--${actions[0]} and --${actions[1]} cannot be given together`);
  const displays = (['c', 'i', 'b', 'summary', 'shape'] as const).filter((k) => parsed[k]);
  if (actions.length && displays.length) throw usage(`--${actions[0]} cannot be given with ${displays[0]!.length > 1 ? '--' : '-'}${displays[0]}`);
  if (parsed['dry-run'] && !actions.length) throw usage('--dry-run needs one of --remove, --freeze, --thaw, --deliver, --giveup');
  if (parsed.summary && parsed.shape) throw usage('--summary and --shape cannot be given together');
  return parsed;
}

/** -y and -o are ages of the ID's time (as exiqgrep's): the range of IDs to read, sought, not scanned. */
function idRange(a: QgrepArgs, now: number): { start?: string; end?: string } {
  const nowSec = now / 1000;
  const range: { start?: string; end?: string } = {};
  // Younger than y: ID time > now - y; older than o: ID time < now - o.
  if (a.y !== undefined) range.start = base62(Math.max(0, Math.floor(nowSec - a.y)), 6);
  if (a.o !== undefined) range.end = base62(Math.max(0, Math.ceil(nowSec - a.o) + 1), 6);
  return range;
}

/**
 * The matching messages, oldest first, one at a time: listing entries (spool/listing.ts),
 * or with `full` the records (what --json shows).
 */
function select(spool: LmdbSpool, a: QgrepArgs, now: number): Generator<Listed>;
function select(spool: LmdbSpool, a: QgrepArgs, now: number, full: true): Generator<MessageRecord>;
function* select(spool: LmdbSpool, a: QgrepArgs, now: number, full = false): Generator<Listed> {
  const sender = regex('f', a.f, 'i');
  const rcpt = regex('r', a.r, 'i');
  const size = regex('s', a.s, '');
  const nowSec = now / 1000;
  const range = idRange(a, now);
  for (const m of full ? spool.list(range) : spool.listed(range)) {
    if (sender && !sender.test(`<${m.sender}>`)) continue;
    if (rcpt && !m.recipients.some((r) => (a.a || r.state === 'pending') && rcpt.test(r.address))) continue;
    if (size && !size.test(formatSize(m.size).trim())) continue;
    const age = nowSec - idTime(m.id);
    if (a.y !== undefined && age >= a.y) continue;
    if (a.o !== undefined && age <= a.o) continue;
    if (a.z && !m.frozen) continue;
    if (a.x && m.frozen) continue;
    yield m;
  }
}

/**
 * The bulk actions (bulk.ts), handed in by the caller: the listing's own bundle
 * (cli/list.ts) never takes them and so never loads them.
 */
export type BulkRunner = (action: BulkAction, ids: string[], o: { dryRun: boolean; json: boolean; frozen: ReadonlySet<string> }) => Promise<number>;

/** Whether the command line asks for a bulk action (as parseQgrepArgs reads it). */
export const asksAction = (argv: readonly string[]) => argv.some((a) => BULK_ACTIONS.some((k) => a === `--${k}`));

export async function qgrep(argv: string[], spool: LmdbSpool, out: (s: string) => void, bulk?: BulkRunner): Promise<number> {
  const a = parseQgrepArgs(argv);
  const now = Date.now();
  const action = BULK_ACTIONS.find((k) => a[k]);
  if (action) {
    const ids: string[] = [];
    const frozen = new Set<string>();
    // What an action changes is chosen from the records themselves, not the listing
    // entries (a spool an older postern also wrote may hold stale ones until the daemon's
    // next start mends them: store.ts mendIndexes()).
    for (const m of select(spool, a, now, true)) {
      ids.push(m.id);
      if (m.frozen) frozen.add(m.id);
    }
    if (a.R) ids.reverse();
    if (!bulk) throw new Error(`--${action} needs the bulk actions`); // a caller's bug, never the user's
    return bulk(action, ids, { dryRun: !!a['dry-run'], json: !!a.json, frozen });
  }
  if (a.summary || a.shape) {
    const table = a.summary ? new QueueSummary() : new QueueShape(now);
    for (const m of select(spool, a, now)) table.add(m);
    out(a.json ? table.json() : table instanceof QueueSummary ? table.text(now) : table.text());
    return 0;
  }
  if (a.c) {
    let n = 0;
    for (const _ of select(spool, a, now)) n++;
    out(a.json ? `${JSON.stringify({ matches: n, messages: spool.count() })}\n` : `${n} matches out of ${spool.count()} messages\n`);
    return 0;
  }
  const buf = batched(out);
  out = buf.write;
  const entry = entryFormatter(now, !a.a);
  const show = (m: Listed) => {
    if (a.json) out(a.i ? `${JSON.stringify({ id: m.id })}\n` : jsonEntry(m as MessageRecord));
    else if (a.i) out(`${m.id}\n`);
    else if (a.b) {
      const to = m.recipients.filter((r) => a.a || r.state === 'pending').map((r) => r.address).join(';');
      out(`${m.id} From: <${m.sender}> To: ${to}\n`);
    } else out(entry(m));
  };
  // --json shows whole records; everything else is in the listing entries.
  const matches = a.json && !a.i ? select(spool, a, now, true) : select(spool, a, now);
  if (a.R) {
    // Newest first: only what matches is held.
    const selected = [...matches];
    for (let i = selected.length - 1; i >= 0; i--) show(selected[i] as Listed);
  } else {
    for (const m of matches) show(m);
  }
  buf.flush();
  return 0;
}
