// Unit tests for hostile bytes in src/receive/cleanup.ts: under `sendmail -t` a NUL or
// another control character in To:/Cc:/Bcc: refuses the message (exit 65) instead of
// sending it to the address left once the parser dropped the byte.
import { describe, expect, it } from 'vitest';
import { cleanup, CleanupError, type Submission } from '../../src/receive/cleanup.js';

const sub: Submission = {
  id: '1xVME4-0001HS-0Y', now: 0, hostname: 'web1.example.org', qualifyDomain: 'example.org',
  sender: 'www-data@example.org', recipients: [], protocol: 'local', user: 'www-data', passwd: '/nonexistent/passwd', extractRecipients: true,
};
const msg = (to: string) => Buffer.from(`To: ${to}\nSubject: x\n\nbody\n`, 'latin1');

describe('cleanup -t: control characters in recipient headers', () => {
  it.each([
    ['a\0b@example.org', 'a NUL'],
    ['ok@example.org, a\0@example.org', 'a NUL'],
    ['a\x01b@example.org', 'a control character (\\001)'],
    ['a\rb@example.org', 'a control character (\\015)'],
  ])('%j is refused with exit 65', (to, what) => {
    let caught: unknown;
    try {
      cleanup(msg(to), sub);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CleanupError);
    expect((caught as CleanupError).exitCode).toBe(65);
    expect((caught as Error).message).toBe(`the To: header holds ${what}, so its recipients cannot be read`);
  });

  it('a tab and a folded line are fine; the same bytes outside -t are not looked at', () => {
    expect(cleanup(msg('a@example.org,\n\tb@example.org\t'), sub).recipients).toEqual(['a@example.org', 'b@example.org']);
    expect(cleanup(msg('a\0b@example.org'), { ...sub, extractRecipients: false, recipients: ['c@example.org'] }).recipients)
      .toEqual(['c@example.org']);
  });
});

describe('cleanup: display names and malformed address headers (found by test/property/cleanup.test.ts)', () => {
  const local = { ...sub, extractRecipients: false, recipients: ['ops@example.org'] };
  const headerOf = (headers: string, name: string) => headers.split('\n').find((l) => l.startsWith(`${name}:`));

  it('a name without an address stays a phrase as written, never "<>"', () => {
    const out = cleanup(Buffer.from('To: a\ta, root\n\nbody\n', 'latin1'), local);
    expect(headerOf(out.headers, 'To')).toBe('To: a\ta, root@example.org');
  });

  it('names are quoted as RFC 5322 quotes them (a tab stays a tab), group names too', () => {
    const out = cleanup(Buffer.from('To: "Q, R": root;\nCc: "a\\"b" <root>\n\nbody\n', 'latin1'), local);
    expect(headerOf(out.headers, 'To')).toBe('To: "Q, R": root@example.org;');
    expect(headerOf(out.headers, 'Cc')).toBe('Cc: "a\\"b" <root@example.org>');
  });

  it('sendmail -F: a line break in the full name cannot start a header of its own', () => {
    const out = cleanup(Buffer.from('Subject: x\n\nbody\n', 'latin1'), { ...local, fullName: 'Eve\nBcc: victim@example.org\tx' });
    expect(headerOf(out.headers, 'From')).toBe('From: "Eve Bcc: victim@example.org\tx" <www-data@example.org>');
    expect(headerOf(out.headers, 'Bcc')).toBeUndefined();
  });

  it('a header addressparser cannot make sense of is left as it came', () => {
    const raw = 'To: a,\n\t"@\n\t<a\n';
    const out = cleanup(Buffer.from(`${raw}\nbody\n`, 'latin1'), local);
    expect(out.headers).toContain(raw);
  });
});

describe('cleanup: a bare CR in a header', () => {
  it('goes out as a space, so the hub sees the same header lines postern saw', () => {
    const out = cleanup(Buffer.from('Subject: a\r\rb\nX-Thing: c\rFrom: forged@example.org\n\nbody\r\n', 'latin1'),
      { ...sub, extractRecipients: false, recipients: ['ops@example.org'] });
    expect(out.headers).not.toContain('\r');
    expect(out.headers).toContain('Subject: a  b\nX-Thing: c From: forged@example.org\n');
    // The From: that was not a header is not one now either: postern adds its own.
    expect(out.headers).toContain('From: www-data@example.org\n');
    expect(out.body.toString('latin1')).toBe('body\r\n');
  });
});
