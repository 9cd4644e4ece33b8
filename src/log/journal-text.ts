// log/journal-text.ts: a message's journal (core/journal.ts) in words: the -Mvl text
// (the main log's lines for this message, without its ID, as Exim's per-message log)
// and the `history` of -bp --json. Entries an earlier version kept are shown as they
// were written.
import type { JournalEntry } from '../core/journal.js';
import { hostField, limitText, logTime, renderText } from './mainlog.js';
import { reasonText } from './outcome-text.js';

/** The -Mvl text. */
export function journalText(entries: JournalEntry[]): string {
  let out = '';
  for (const e of entries) {
    switch (e.type) {
      case 'legacy-log': out += e.text; break;
      case 'legacy-attempt': break; // its lines are in the legacy text
      case 'attempt': for (const { at, event } of e.events) out += `${logTime(at)} ${renderText(event)}\n`; break;
      case 'admin': case 'edit': case 'timer': case 'limit': out += `${logTime(e.at)} ${changeText(e)}\n`; break;
    }
  }
  return out;
}

/** A change that is not an attempt: an operator's action or edit, or a limit's. */
export type ChangeEntry = Extract<JournalEntry, { type: 'admin' | 'edit' | 'timer' | 'limit' }>;

export function isChangeEntry(e: JournalEntry): e is ChangeEntry {
  return e.type === 'admin' || e.type === 'edit' || e.type === 'timer' || e.type === 'limit';
}


/** A change in the main log's words (without the message ID). */
export function changeText(e: ChangeEntry): string {
  if (e.type === 'admin') return renderText({ type: 'admin', id: '', action: e.action, user: e.user });
  if (e.type === 'timer') return 'Unfrozen by errmsg timer';
  if (e.type === 'limit') return limitText(e);
  return e.edit === 'recipient-added' ? `recipient <${e.address}> added by ${e.user}`
    : e.edit === 'sender-changed' ? `sender address changed to <${e.address}> by ${e.user}`
    : `address <${e.address}> marked delivered by ${e.user}`;
}

/** A change as data for --json (`history`, -Mwhy's `changes`). */
export function changeJson(e: ChangeEntry): Record<string, unknown> {
  const at = new Date(e.at).toISOString();
  if (e.type === 'admin') return { type: 'admin', at, action: e.action, user: e.user };
  if (e.type === 'timer') return { type: 'timer', at, action: e.action, text: changeText(e) };
  if (e.type === 'limit') return { type: 'limit', at, limit: e.limit, key: e.key, rate: e.rate, text: changeText(e) };
  return { type: 'edit', at, edit: e.edit, address: e.address, user: e.user, text: changeText(e) };
}

/** The attempts and operator actions for -bp --json: data, with Exim's words beside it. */
export function journalJson(entries: JournalEntry[], sender: string): unknown[] {
  const out: unknown[] = [];
  for (const e of entries) {
    if (e.type === 'legacy-log') continue;
    if (isChangeEntry(e)) {
      out.push(changeJson(e));
      continue;
    }
    const at = new Date(e.at).toISOString();
    const host = e.host ? { host: hostField(e.host) } : {};
    const results = e.type === 'legacy-attempt'
      ? e.results.map((r) => ({ rcpt: r.rcpt, kind: r.kind, reason: r.detail, ...(r.errno !== undefined && r.kind === 'deferred' ? { errno: r.errno } : {}) }))
      : e.results.map((r) => {
        const words = reasonText(r, r.rcpt, sender);
        return { rcpt: r.rcpt, kind: r.kind, cause: r.cause, ...(r.phase ? { phase: r.phase } : {}), ...(r.reply ? { reply: r.reply } : {}),
          ...(r.kind === 'delivered' ? {} : { reason: words.text }), ...(r.kind === 'deferred' ? { errno: words.errno } : {}) };
      });
    out.push({ type: 'attempt', at, ...host, results });
  }
  return out;
}
