// core/journal.ts: the shape of a message's journal, the one versioned history the
// spool keeps per message (attempts, operator actions, freezes), written in the same
// transaction as the change it records. Entries are data; log/ renders them (-Mvl,
// --json). Older spools kept two histories (the -Mvl text and attempt records): their
// entries come back as `legacy-log` and `legacy-attempt` so they can still be shown.
import type { MtaEvent } from './events.js';
import type { AttemptResult, HostLabel, LimitName } from './types.js';

/** What an envelope edit did to one address. */
export type EnvelopeEditKind = 'recipient-added' | 'sender-changed' | 'marked-delivered';

/** One logged event of an attempt, with its own time (host errors come before the results). */
export interface JournalEvent {
  at: number;
  event: MtaEvent;
}

export type JournalEntry =
  /** A delivery attempt: per-recipient results as data, and what it logged (host errors, results, a freeze). */
  | { v: 1; type: 'attempt'; at: number; host?: HostLabel; results: AttemptResult[]; events: JournalEvent[] }
  /** An operator's action (-Mf, -Mt, -Mg) or a limit acting as one (timeout_frozen_after). */
  | { v: 1; type: 'admin'; at: number; action: 'frozen' | 'unfrozen' | 'cancelled' | 'removed'; user: string }
  /** An operator's envelope edit (-Mar, -Mes, -Mmd, -Mmad), one entry per address. */
  | { v: 1; type: 'edit'; at: number; edit: EnvelopeEditKind; address: string; user: string }
  /** Frozen on arrival: its sender (`key`: the user, the client's address) was over `limit` (`rate` as configured, "200/1h"). */
  | { v: 1; type: 'limit'; at: number; limit: LimitName; key: string; rate: string }
  /** A limit that thawed a frozen message for one last try (ignore_bounce_errors_after: Exim's errmsg timer). */
  | { v: 1; type: 'timer'; at: number; action: 'unfrozen' }
  /** Read from a spool of an earlier version: its -Mvl text, as it was written. */
  | { v: 0; type: 'legacy-log'; text: string }
  /** Read from a spool of an earlier version: an attempt record, the reason as text. */
  | { v: 0; type: 'legacy-attempt'; at: number; host?: HostLabel;
      results: { rcpt: string; kind: AttemptResult['kind']; detail: string; errno?: number }[] };

/** The entries the spool writes (the legacy ones are only read). */
export type NewJournalEntry = Extract<JournalEntry, { v: 1 }>;
