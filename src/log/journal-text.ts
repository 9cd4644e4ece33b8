// log/journal-text.ts: a message's journal (core/journal.ts) in words: the -Mvl text
// (the main log's lines for this message, without its ID, as Exim's per-message log)
// and the `history` of -bp --json. Entries an earlier version kept are shown as they
// were written.
import type { JournalEntry } from '../core/journal.js';
import { hostField, logTime, renderText } from './mainlog.js';
import { reasonText } from './outcome-text.js';

/** The -Mvl text. */
export function journalText(entries: JournalEntry[]): string {
  let out = '';
  for (const e of entries) {
    switch (e.type) {
      case 'legacy-log': out += e.text; break;
      case 'legacy-attempt': break; // its lines are in the legacy text
      case 'attempt': for (const { at, event } of e.events) out += `${logTime(at)} ${renderText(event)}\n`; break;
      case 'admin': out += `${logTime(e.at)} ${renderText({ type: 'admin', id: '', action: e.action, user: e.user })}\n`; break;
    }
  }
  return out;
}

/** The attempts and operator actions for -bp --json: data, with Exim's words beside it. */
export function journalJson(entries: JournalEntry[], sender: string): unknown[] {
  const out: unknown[] = [];
  for (const e of entries) {
    if (e.type === 'legacy-log') continue;
    const at = new Date(e.at).toISOString();
    if (e.type === 'admin') {
      out.push({ type: 'admin', at, action: e.action, user: e.user });
      continue;
    }
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
