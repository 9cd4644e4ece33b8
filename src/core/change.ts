// core/change.ts: the things that can happen to a queued message, as data. Every
// operator action (-Mrm, -Mf, -Mt, -Mar, -Mes, -Mmd, -Mmad, -M, postern-qgrep's
// actions, a user's own -Mrm) is a Change; the spool applies a list of them in one
// transaction (spool.apply), each writing its journal entry with the change it records.
// An attempt's settlement (and -Mg's) is one too: its bounces are committed with it.
import type { EnvelopeEditKind, NewJournalEntry } from './journal.js';
import type { MessageRecord, NewMessage, RecipientRecord } from './types.js';

/** An envelope edit, as Exim's -Mar, -Mes, -Mmd and -Mmad make them. */
export type EnvelopeEdit =
  | { op: 'add-recipients'; addresses: string[] }
  | { op: 'set-sender'; address: string }
  | { op: 'mark-delivered'; addresses: string[] }
  | { op: 'mark-all-delivered' };

/** Who asked, and when: every change is journaled with it. */
export interface Actor {
  at: number;
  user: string;
}

/** The result of one delivery attempt, written as one transaction. */
export interface Settlement {
  /** New state of the recipients that were tried, by address (others stay as they are). */
  recipients: RecipientRecord[];
  /** Next time the message is due; ignored when nothing is pending any more. */
  nextAttempt: number | null;
  lastError?: string;
  /** Delay warnings sent so far, when this attempt sent one. */
  warningsSent?: number;
  /** Freeze the message (kept, off the due index) if anything is still pending. */
  freeze?: boolean;
  /** With `freeze`: stay on the due index at this time, when a frozen-time limit needs a look. */
  wakeAt?: number;
  /** Entries for the message's journal (the attempt, an operator action), in this transaction. */
  journal: NewJournalEntry[];
  /** Messages born of this attempt (bounces), committed in the same transaction. */
  enqueue?: NewMessage[];
}

export type Change =
  /** An attempt's settlement (or -Mg's, a limit's cancel): its results, next time, journal and the bounces it made. */
  | { kind: 'settle'; id: string; settlement: Settlement }
  | { kind: 'freeze'; id: string; by: Actor }
  /** Thawed, due at `dueAt` (default: `by.at`). */
  | { kind: 'thaw'; id: string; by: Actor; dueAt?: number }
  | { kind: 'remove'; id: string; by: Actor }
  /** Made due at `at` (-M, -q runs); a frozen message only when `thaw`. Not journaled: an attempt follows. */
  | { kind: 'make-due'; id: string; at: number; thaw: boolean }
  | { kind: 'edit'; id: string; edit: EnvelopeEdit; by: Actor };

/**
 * What applying a change did: changed; unchanged (already so, or a -Mmad with nothing
 * pending); completed (an edit left nothing pending: the message is gone); gone (not in
 * the spool); or not a recipient (-Mmd of an address that is not pending: nothing done).
 */
export type ChangeResult =
  | { kind: 'changed'; entries: NewJournalEntry[]; record?: MessageRecord }
  | { kind: 'completed'; entries: NewJournalEntry[]; record?: MessageRecord }
  | { kind: 'unchanged' }
  | { kind: 'gone' }
  | { kind: 'not-recipient'; address: string };

/** The journal entry of a freeze, thaw or removal. */
export function adminEntry(c: Extract<Change, { kind: 'freeze' | 'thaw' | 'remove' }>): NewJournalEntry {
  const action = c.kind === 'freeze' ? 'frozen' : c.kind === 'thaw' ? 'unfrozen' : 'removed';
  return { v: 1, type: 'admin', at: c.by.at, action, user: c.by.user };
}

/**
 * Applies an envelope edit to `record` (changed in place only when it applies) and
 * returns its journal entries, one per address; or the address that is not a pending
 * recipient (-Mmd: nothing is changed then). No entries: nothing to do (-Mmad with
 * nothing pending).
 */
export function applyEdit(record: MessageRecord, edit: EnvelopeEdit, by: Actor): NewJournalEntry[] | { missing: string } {
  const entry = (kind: EnvelopeEditKind, address: string): NewJournalEntry => ({ v: 1, type: 'edit', at: by.at, edit: kind, address, user: by.user });
  switch (edit.op) {
    case 'add-recipients':
      for (const a of edit.addresses) record.recipients.push({ address: a, state: 'pending', tries: 0 });
      return edit.addresses.map((a) => entry('recipient-added', a));
    case 'set-sender':
      record.sender = edit.address;
      return [entry('sender-changed', edit.address)];
    case 'mark-delivered': {
      const found = [];
      for (const a of edit.addresses) {
        const rc = record.recipients.find((x) => x.address.toLowerCase() === a.toLowerCase() && x.state === 'pending');
        if (!rc) return { missing: a };
        found.push(rc);
      }
      for (const rc of found) rc.state = 'delivered';
      return found.map((rc) => entry('marked-delivered', rc.address));
    }
    case 'mark-all-delivered': {
      const out: NewJournalEntry[] = [];
      for (const rc of record.recipients) {
        if (rc.state !== 'pending') continue;
        rc.state = 'delivered';
        out.push(entry('marked-delivered', rc.address));
      }
      return out;
    }
  }
}
