// The journal's changes other than attempts (operator actions, envelope edits, the
// errmsg timer) in -Mvl's words and as --json's `history`, in the order they happened.
import { describe, expect, it } from 'vitest';
import type { JournalEntry } from '../../src/core/journal.js';
import { journalJson, journalText } from '../../src/log/journal-text.js';
import { logTime } from '../../src/log/mainlog.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const entries: JournalEntry[] = [
  { v: 1, type: 'admin', at: T0, action: 'frozen', user: 'root' },
  { v: 1, type: 'edit', at: T0 + 1000, edit: 'recipient-added', address: 'z@example.org', user: 'root' },
  { v: 1, type: 'edit', at: T0 + 2000, edit: 'sender-changed', address: '', user: 'ops' },
  { v: 1, type: 'edit', at: T0 + 3000, edit: 'marked-delivered', address: 'x@example.org', user: 'root' },
  { v: 1, type: 'timer', at: T0 + 4000, action: 'unfrozen' },
];

describe('journal text', () => {
  it('-Mvl: each change as its main log line', () => {
    expect(journalText(entries)).toBe([
      `${logTime(T0)} frozen by root`,
      `${logTime(T0 + 1000)} recipient <z@example.org> added by root`,
      `${logTime(T0 + 2000)} sender address changed to <> by ops`,
      `${logTime(T0 + 3000)} address <x@example.org> marked delivered by root`,
      `${logTime(T0 + 4000)} Unfrozen by errmsg timer`,
    ].join('\n') + '\n');
  });

  it('--json: each change as data', () => {
    const at = (ms: number) => new Date(ms).toISOString();
    expect(journalJson(entries, 'a@example.org')).toEqual([
      { type: 'admin', at: at(T0), action: 'frozen', user: 'root' },
      { type: 'edit', at: at(T0 + 1000), edit: 'recipient-added', address: 'z@example.org', user: 'root', text: 'recipient <z@example.org> added by root' },
      { type: 'edit', at: at(T0 + 2000), edit: 'sender-changed', address: '', user: 'ops', text: 'sender address changed to <> by ops' },
      { type: 'edit', at: at(T0 + 3000), edit: 'marked-delivered', address: 'x@example.org', user: 'root', text: 'address <x@example.org> marked delivered by root' },
      { type: 'timer', at: at(T0 + 4000), action: 'unfrozen', text: 'Unfrozen by errmsg timer' },
    ]);
  });
});
