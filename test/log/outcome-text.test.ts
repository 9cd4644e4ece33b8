// Exim's words for each kind of delivery result: the sentence and the errno that
// `defer (N):` shows, one row per cause and phase. These are the strings the main log,
// -Mvl, -bp --json and reports print.
import { describe, expect, it } from 'vitest';
import type { Trouble } from '../../src/core/types.js';
import { reasonText, replyText } from '../../src/log/outcome-text.js';

const r550 = { code: 550, enhanced: '5.1.1', text: '<a@b>: no such user' };
const r451 = { code: 451, enhanced: '4.0.0', text: 'try again later', derived: true as const };

const ROWS: [Trouble, string, number][] = [
  [{ cause: 'refused', phase: 'connect' }, 'Connection refused', 111],
  [{ cause: 'timeout', phase: 'connect' }, 'Connection timed out', 110],
  [{ cause: 'timeout' }, 'Connection timed out', 110],
  [{ cause: 'unreachable', phase: 'connect' }, 'No route to host', 113],
  [{ cause: 'lost_connection' }, 'Remote host closed connection', -18],
  [{ cause: 'lost_connection', note: 'Something odd' }, 'Something odd', -1],
  [{ cause: 'tls', phase: 'starttls', note: 'self-signed certificate' }, 'TLS session failure: self-signed certificate', -37],
  [{ cause: 'auth', phase: 'auth', reply: { code: 535, enhanced: '5.7.8', text: 'bad credentials' } },
    'authentication failed: 535 5.7.8 bad credentials', -42],
  [{ cause: 'auth', phase: 'auth', note: 'Connection closed unexpectedly during AUTH' },
    'authentication failed: Connection closed unexpectedly during AUTH', -42],
  [{ cause: 'reply', phase: 'rcpt', reply: r550 }, 'SMTP error from remote mail server after RCPT TO:<a@b>: 550 5.1.1 <a@b>: no such user', -44],
  [{ cause: 'reply', phase: 'rcpt', reply: r451 }, 'SMTP error from remote mail server after RCPT TO:<a@b>: 451 try again later', -44],
  [{ cause: 'reply', phase: 'mail', reply: r451 }, 'SMTP error from remote mail server after MAIL FROM:<s@x>: 451 try again later', -45],
  [{ cause: 'reply', phase: 'data', reply: r451 }, 'SMTP error from remote mail server after DATA: 451 try again later', -46],
  [{ cause: 'reply', phase: 'dot', reply: r451 }, 'SMTP error from remote mail server after end of data: 451 try again later', -46],
  [{ cause: 'reply', phase: 'greeting', reply: r451 }, 'SMTP error from remote mail server after initial connection: 451 try again later', -1],
  [{ cause: 'reply', phase: 'ehlo', reply: r451 }, 'SMTP error from remote mail server after EHLO: 451 try again later', -1],
  [{ cause: 'local', note: 'spool read error: gone' }, 'spool read error: gone', -1],
  [{ cause: 'unroutable', note: 'Unrouteable address' }, 'Unrouteable address', -1],
  [{ cause: 'retry_time' }, 'no host to try', -54],
];

describe('reasonText', () => {
  for (const [t, text, errno] of ROWS) {
    it(`${t.cause}${t.phase ? `/${t.phase}` : ''} → defer (${errno}): ${text}`, () => {
      expect(reasonText(t, 'a@b', 's@x')).toEqual({ text, errno });
    });
  }
  it('prints a reply as the hub sent it', () => {
    expect(replyText({ code: 250, enhanced: '2.0.0', text: 'OK', derived: true })).toBe('250 OK');
    expect(replyText({ code: 250, enhanced: '2.0.0', text: 'Ok: queued' })).toBe('250 2.0.0 Ok: queued');
  });
});
