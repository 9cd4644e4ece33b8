// Failure reports carry the hub's own status: Status: from the reply's enhanced code
// (5.1.1, not 5.0.0), Diagnostic-Code: as the hub sent the reply, 5.0.0 / 4.0.0 only
// when no reply is known (-Mg, a local reason).
import { describe, expect, it } from 'vitest';
import { diagnosticCode, failureReport, statusOf } from '../../src/bounce/dsn.js';
import { delayReport } from '../../src/bounce/delay-warning.js';
import type { MessageRecord } from '../../src/core/types.js';

const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const original: MessageRecord = {
  v: 1, id: '1abcde-fghijk-AB', sender: 'app@example.org', arrival: T0, protocol: 'local', size: 10, frozen: false,
  recipients: [{ address: 'bad@example.org', state: 'pending', tries: 1 }], nextAttempt: T0, attempts: 1, warningsSent: 0,
  bodySize: 2, chunks: 1,
};
const base = { id: '1abcdf-fghijk-AB', now: T0, hostname: 'web1.example.org', qualifyDomain: 'example.org', original,
  originalHeaders: 'Subject: x\n' };
const host = { name: 'hub.example.org', ip: '192.0.2.1', port: 25 };
const text = (m: { body: Buffer[] }) => Buffer.concat(m.body).toString('utf8');

describe('Status and Diagnostic-Code', () => {
  it('a 550 5.1.1 gives Status: 5.1.1 and the reply as Diagnostic-Code', () => {
    const m = failureReport({ ...base, originalBody: Buffer.from('x\n'), failed: [{ rcpt: 'bad@example.org', host,
      detail: 'SMTP error from remote mail server after RCPT TO:<bad@example.org>: 550 5.1.1 <bad@example.org>: no such user',
      reply: { code: 550, enhanced: '5.1.1', text: '<bad@example.org>: no such user' } }] });
    expect(text(m)).toContain('Action: failed\nFinal-Recipient: rfc822;bad@example.org\nStatus: 5.1.1\nRemote-MTA: dns; hub.example.org\n' +
      'Diagnostic-Code: smtp; 550 5.1.1 <bad@example.org>: no such user\n');
  });

  it('a reply without an enhanced code: Status class.0.0, Diagnostic-Code as sent', () => {
    const m = failureReport({ ...base, originalBody: Buffer.from('x\n'), failed: [{ rcpt: 'bad@example.org', host,
      detail: 'x', reply: { code: 550, enhanced: '5.0.0', text: 'no such user', derived: true } }] });
    expect(text(m)).toContain('Status: 5.0.0\nRemote-MTA: dns; hub.example.org\nDiagnostic-Code: smtp; 550 no such user\n');
  });

  it('no reply (-Mg, a local reason): 5.0.0 and no Diagnostic-Code', () => {
    const m = failureReport({ ...base, originalBody: Buffer.from('x\n'), failed: [{ rcpt: 'bad@example.org', detail: 'Unrouteable address' }] });
    expect(text(m)).toContain('Status: 5.0.0\n\n');
    expect(text(m)).not.toContain('Diagnostic-Code');
  });

  it('a delay warning carries the temporary reply: Status: 4.7.1', () => {
    const m = delayReport({ ...base, delay: 3_600_000, delayed: [{ rcpt: 'bad@example.org', host, detail: 'greylisted',
      reply: { code: 451, enhanced: '4.7.1', text: 'greylisted, come back later' } }] });
    expect(text(m)).toContain('Action: delayed\nFinal-Recipient: rfc822;bad@example.org\nStatus: 4.7.1\n' +
      'Remote-MTA: dns; hub.example.org\nDiagnostic-Code: smtp; 451 4.7.1 greylisted, come back later\n');
  });

  it.each([
    ['failed', { code: 550, enhanced: '5.1.1', text: '' }, '5.1.1'],
    ['failed', { code: 451, enhanced: '4.2.2', text: '' }, '5.2.2'], // a temporary reply that ended in failure
    ['failed', undefined, '5.0.0'],
    ['delayed', { code: 452, enhanced: '4.2.2', text: '' }, '4.2.2'],
    ['delayed', undefined, '4.0.0'],
  ] as const)('%s with %j: %s', (action, reply, status) => {
    expect(statusOf(action, reply)).toBe(status);
  });

  it('Diagnostic-Code is the reply as sent', () => {
    expect(diagnosticCode({ code: 421, enhanced: '4.0.0', text: 'bye', derived: true })).toBe('smtp; 421 bye');
  });
});
