// admin/format.ts: Exim's queue-listing formats (-bp): the age and size columns, one
// message with its recipients, and the --json object (with the message's journal as
// `history`). Pure functions of a record (or its listing entry) and its journal;
// entryFormatter(), formatEntry for a whole listing; and batched(), which joins a
// listing's writes.
import type { JournalEntry } from '../core/journal.js';
import type { MessageRecord } from '../core/types.js';
import { journalJson } from '../log/journal-text.js';
import type { Listed } from '../spool/listing.js';

/** Exim's age column: minutes up to 90, then rounded hours up to 72, then days; 3 wide. */
export function formatAge(ms: number): string {
  const m = Math.max(0, Math.floor(ms / 60_000));
  if (m <= 90) return `${m}m`.padStart(3);
  const h = Math.floor((m + 30) / 60);
  if (h <= 72) return `${h}h`.padStart(3);
  return `${Math.floor((h + 12) / 24)}d`.padStart(3);
}

/** printf's %.1f: an exact tie rounds to the even digit (1.25 -> 1.2), unlike toFixed. */
function oneDecimal(v: number): string {
  const tenths = v * 10;
  const floor = Math.floor(tenths);
  const tie = tenths - floor === 0.5;
  const rounded = tie ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(tenths);
  return (rounded / 10).toFixed(1);
}

/** Exim's string_format_size, 5 wide. */
export function formatSize(n: number): string {
  if (n === 0) return '     ';
  if (n < 1024) return String(n).padStart(5);
  if (n < 10 * 1024) return `${oneDecimal(n / 1024)}K`.padStart(5);
  if (n < 1024 * 1024) return `${Math.floor((n + 512) / 1024)}K`.padStart(5);
  if (n < 10 * 1024 * 1024) return `${oneDecimal(n / 1024 / 1024)}M`.padStart(5);
  return `${Math.floor((n + 512 * 1024) / 1024 / 1024)}M`.padStart(5);
}

export function formatEntry(r: Listed, now: number, undeliveredOnly = false): string {
  return entryText(r, formatAge(now - r.arrival), formatSize(r.size), undeliveredOnly);
}

/**
 * formatEntry at one `now` for a whole listing: the age column is worked out once per
 * minute met (a bounded set), not once per message. Sizes seldom repeat: no such cache.
 */
export function entryFormatter(now: number, undeliveredOnly = false): (r: Listed) => string {
  const ages = new Map<number, string>();
  return (r) => {
    const ms = now - r.arrival;
    const minute = Math.floor(ms / 60_000);
    let age = ages.get(minute);
    if (age === undefined) ages.set(minute, age = formatAge(ms));
    return entryText(r, age, formatSize(r.size), undeliveredOnly);
  };
}

function entryText(r: Listed, age: string, size: string, undeliveredOnly: boolean): string {
  let out = `${age} ${size} ${r.id} <${r.sender}>${r.frozen ? ' *** frozen ***' : ''}\n`;
  for (const rc of r.recipients) {
    const done = rc.state !== 'pending';
    if (done && undeliveredOnly) continue;
    out += `        ${done ? 'D' : ' '} ${rc.address}\n`;
  }
  return out + '\n';
}

/** One message for -bp --json; with its journal, a `history` of attempts and operator actions. */
export function jsonEntry(r: MessageRecord, journal?: JournalEntry[]): string {
  return JSON.stringify({
    id: r.id,
    arrival: new Date(r.arrival).toISOString(),
    size: r.size,
    sender: r.sender,
    recipients: r.recipients.map((x) => ({ address: x.address, state: x.state, ...(x.lastError ? { last_error: x.lastError } : {}) })),
    frozen: r.frozen,
    attempts: r.attempts,
    last_error: r.lastError ?? null,
    next_attempt: r.nextAttempt === null ? null : new Date(r.nextAttempt).toISOString(),
    ...(journal ? { history: journalJson(journal, r.sender) } : {}),
  }) + '\n';
}

/**
 * Joins small writes into 64 KB ones: a listing of a million messages is a few thousand
 * writes, not a million. Call flush() at the end.
 */
export function batched(out: (s: string) => void): { write: (s: string) => void; flush: () => void } {
  // One string grown by concatenation (a rope V8 flattens once, when written).
  let text = '';
  const flush = () => {
    if (text.length === 0) return;
    out(text);
    text = '';
  };
  return {
    write: (s) => {
      text += s;
      if (text.length >= 65536) flush();
    },
    flush,
  };
}
