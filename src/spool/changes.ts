// spool/changes.ts: what each Change (core/change.ts) does to a stored message, inside
// apply()'s transaction: an attempt's settlement (with the bounces it made, admitted
// in the same transaction), freeze, thaw, remove, made due, an envelope edit. Reads
// the record through the store's decoder and writes it back only through its save()
// or deleteAll(), with the change's journal entries.
import { adminEntry, applyEdit, type Change, type ChangeResult, type Settlement } from '../core/change.js';
import type { NewJournalEntry } from '../core/journal.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import { rechunk } from './bodies.js';
import { newRecord, type IndexKeys, type SpoolStore } from './store.js';

/** A whole new message into the spool, inside the caller's transaction (admit(), an attempt's bounces). */
export function admitOne(store: SpoolStore, msg: NewMessage, pickupFile?: string): MessageRecord | false {
  const parts = rechunk(msg.body);
  const record = newRecord(msg, parts.reduce((n, b) => n + b.length, 0), parts.length);
  return store.insert(record, msg.headers, parts, { pickupFile });
}

/** One change, inside apply()'s transaction. */
export function applyOne(store: SpoolStore, c: Change): ChangeResult {
  const record = store.read(c.id);
  // Removed (-Mrm) while it was being delivered, say: nothing left to change.
  if (!record) return { kind: 'gone' };
  const before: IndexKeys = { nextAttempt: record.nextAttempt, frozen: record.frozen };
  let entries: NewJournalEntry[] = [];
  switch (c.kind) {
    case 'settle':
      return settleOne(store, record, c.settlement, before);
    case 'remove':
      store.deleteAll(record);
      return { kind: 'completed', entries: [adminEntry(c)], record };
    case 'freeze':
    case 'thaw':
      if (record.frozen === (c.kind === 'freeze')) return { kind: 'unchanged' };
      record.frozen = c.kind === 'freeze';
      record.nextAttempt = c.kind === 'freeze' ? null : c.dueAt ?? c.by.at;
      entries = [adminEntry(c)];
      break;
    case 'make-due':
      if (record.frozen && !c.thaw) return { kind: 'unchanged' };
      record.frozen = false;
      record.nextAttempt = c.at;
      break;
    case 'edit': {
      const done = applyEdit(record, c.edit, c.by);
      if (!Array.isArray(done)) return { kind: 'not-recipient', address: done.missing };
      if (done.length === 0) return { kind: 'unchanged' };
      if (!record.recipients.some((r) => r.state === 'pending')) {
        store.deleteAll(record);
        return { kind: 'completed', entries: done, record };
      }
      entries = done;
      break;
    }
  }
  store.save(record, before);
  store.appendJournal(record.id, entries);
  return { kind: 'changed', entries, record };
}

/**
 * An attempt's settlement (`record`: the message as stored, `before` its index keys).
 * Only recipients still pending take the attempt's state, and a freeze made by the
 * operator during the attempt is kept.
 */
function settleOne(store: SpoolStore, record: MessageRecord, s: Settlement, before: IndexKeys): ChangeResult {
  const byAddress = new Map(s.recipients.map((r) => [r.address, r]));
  record.recipients = record.recipients.map((r) => (r.state === 'pending' ? byAddress.get(r.address) ?? r : r));
  record.attempts += 1;
  if (s.lastError !== undefined) record.lastError = s.lastError;
  if (s.warningsSent !== undefined) record.warningsSent = s.warningsSent;
  // The attempt's bounces and warnings, new mail in the same transaction.
  for (const m of s.enqueue ?? []) admitOne(store, m);
  if (!record.recipients.some((r) => r.state === 'pending')) {
    store.deleteAll(record);
    return { kind: 'completed', entries: s.journal, record };
  }
  // A message frozen now, or by the operator during the attempt, is off the due index.
  if (s.freeze) record.frozen = true;
  record.nextAttempt = record.frozen ? (s.freeze ? s.wakeAt ?? null : null) : s.nextAttempt;
  store.save(record, before);
  store.appendJournal(record.id, s.journal);
  return { kind: 'changed', entries: s.journal, record };
}
