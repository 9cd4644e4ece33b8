// spool/queries.ts: the spool's reads that are not one message's body: the due index
// (due, dueAfter, nextDue, nextDueAfter: the scheduler's only way to find work), the
// listing and counts, the metrics' stats from entry counts, and a message's journal
// (with what spools written before the journal kept, shown first). Every read of a
// stored record goes through the store's decoder; listed() reads the listing entries
// (listing.ts) instead, where there are some.
import type { JournalEntry } from '../core/journal.js';
import type { MessageRecord } from '../core/types.js';
import { parseListing, type Listed } from './listing.js';
import { decodeRecord } from './record.js';
import type { DueKey } from './spool.js';
import { entryCount, type SpoolStore } from './store.js';

/**
 * What the metrics need, from entry counts (mdb_stat) and one key: messages, frozen
 * ones, keys on the due index, and the arrival time of the oldest message (IDs sort
 * by arrival, so it is the first key of `meta`). Never reads the whole queue.
 */
export function stats(store: SpoolStore): { messages: number; frozen: number; due: number; oldestArrival: number | undefined } {
  store.root.resetReadTxn();
  return { messages: entryCount(store.meta), frozen: entryCount(store.frozenIdx), due: entryCount(store.dueIdx), oldestArrival: store.oldestArrival() };
}

/** See Spool.journal. */
export function journal(store: SpoolStore, id: string): JournalEntry[] {
  const out: JournalEntry[] = [];
  // What a spool written before the journal kept: shown first, as it was.
  if (store.legacy) {
    const text = store.mlog.get(id);
    if (text) out.push({ v: 0, type: 'legacy-log', text });
    for (const { value } of store.attempts.getRange({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })) {
      out.push({ v: 0, type: 'legacy-attempt', ...value });
    }
  }
  for (const { value } of store.journalDb.getRange({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })) out.push(value);
  return out;
}

/** See Spool.dueAfter. */
export function dueAfter(store: SpoolStore, after: DueKey | undefined, before: number, limit: number, skip?: ReadonlySet<string>): DueKey[] {
  // Another process (sendmail) may have committed since our read snapshot.
  store.root.resetReadTxn();
  const out: DueKey[] = [];
  const start: [number, string] = after ? [after.at, after.id] : [0, ''];
  for (const [at, id] of store.dueIdx.getKeys({ start, end: [before, '\uffff'] })) {
    if ((after && at === after.at && id === after.id) || skip?.has(id)) continue;
    out.push({ at, id });
    if (out.length >= limit) break;
  }
  return out;
}

/** See Spool.nextDueAfter. */
export function nextDueAfter(store: SpoolStore, t: number): number | undefined {
  store.root.resetReadTxn();
  for (const key of store.dueIdx.getKeys({ start: [t + 1, ''], limit: 1 })) return key[0];
  return undefined;
}

/** See Spool.nextDue. */
export function nextDue(store: SpoolStore, skip?: ReadonlySet<string>): number | undefined {
  store.root.resetReadTxn();
  for (const key of store.dueIdx.getKeys({})) if (!skip?.has(key[1])) return key[0];
  return undefined;
}

/** `range`: IDs from `start` (included) to `end` (excluded): IDs sort by arrival second, so an age is a seek. */
export function* list(store: SpoolStore, range: { start?: string; end?: string } = {}): Iterable<MessageRecord> {
  store.root.resetReadTxn();
  for (const { value } of store.meta.getRange(range)) yield decodeRecord(value);
}

/**
 * What list() yields, as listing entries. Every record written since the listing came
 * has its entry, written and removed in the same transaction, so when `listing` holds as
 * many entries as `meta` it holds the entries of all of them and is read alone. Else
 * (a spool with messages stored by a postern before the listing) it is read beside the
 * keys of `meta`, in step, and a message without a readable entry is read from its
 * record; an entry without its message is passed over. With no entry at all: list().
 */
export function* listed(store: SpoolStore, range: { start?: string; end?: string } = {}): Iterable<Listed> {
  store.root.resetReadTxn();
  const entries = entryCount(store.listing);
  if (entries === 0) {
    yield* list(store, range);
    return;
  }
  if (entries === entryCount(store.meta)) {
    for (const { key, value } of store.listing.getRange(range)) {
      const e = parseListing(key, value) ?? store.read(key);
      if (e) yield e;
    }
    return;
  }
  const it = store.listing.getRange(range)[Symbol.iterator]();
  let entry = it.next();
  for (const id of store.meta.getKeys(range)) {
    // IDs are ASCII: JS string order is the database's byte order.
    while (!entry.done && entry.value.key < id) entry = it.next();
    const e = !entry.done && entry.value.key === id ? parseListing(id, entry.value.value) : undefined;
    const m = e ?? store.read(id);
    if (m) yield m;
  }
}

/** From the meta database's entry count (mdb_stat): no key is read, whatever the queue's size. */
export function count(store: SpoolStore): number {
  store.root.resetReadTxn();
  return entryCount(store.meta);
}
