// Property tests for the header handling of src/receive/cleanup.ts, on generated
// header blocks of hostile bytes: cleanup never throws anything but CleanupError; its
// header block is whole lines, each a header or a continuation, never a lone "." and
// never a CR; running it again on its own output changes nothing but
// the Received line (qualification is idempotent); -t recipients are all qualified.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cleanup, CleanupError, type Submission } from '../../src/receive/cleanup.js';

const RUNS = 2000;

const sub: Submission = {
  id: '1xVME4-0001HS-0Y', now: Date.UTC(2026, 0, 1), hostname: 'web1.example.org', qualifyDomain: 'example.org',
  sender: 'www-data@example.org', recipients: ['ops@example.org'], protocol: 'local', user: 'www-data',
};

// Bytes as latin1 chars; the alphabet leans on what address and header parsing care about.
const byte = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abcxyz019 .@,;:<>()"\\\t\r-_=?'.split('')) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)) },
);
const text = (max: number) => fc.string({ unit: byte, maxLength: max });
const addressLike = fc.oneof(
  fc.constantFrom('root', 'a@b.example', 'Admin <root>', '"Q, R" <x@y.example>', 'g: a, b;', '(c) root', 'x@-bad', '<>', '"a b"@example.org'),
  text(20),
);
const addressValue = fc.array(addressLike, { minLength: 1, maxLength: 4 }).map((a) => a.join(', '));
const NAMES = ['To', 'Cc', 'Bcc', 'From', 'Sender', 'Reply-To', 'Subject', 'Message-ID', 'Date', 'X-Thing', 'to', 'FROM'];
const header = fc.tuple(fc.constantFrom(...NAMES), fc.oneof(addressValue, text(30)), fc.array(text(15), { maxLength: 2 }))
  .map(([name, value, folds]) => `${name}: ${value}${folds.map((f) => `\n\t${f}`).join('')}\n`);
const message = fc.tuple(fc.array(header, { maxLength: 8 }), fc.boolean(), text(40))
  .map(([headers, blank, body]) => Buffer.from(`${headers.join('')}${blank ? '\n' : ''}${body}`, 'latin1'));

/** The header block without its first header (the Received line cleanup puts on top). */
function withoutReceived(headers: string): string {
  const lines = headers.split('\n');
  let i = 1;
  while (i < lines.length && /^[ \t]/.test(lines[i] as string)) i++;
  return lines.slice(i).join('\n');
}

function run(data: Buffer, s: Submission) {
  try {
    return cleanup(data, s);
  } catch (err) {
    if (err instanceof CleanupError) return undefined;
    throw err;
  }
}

describe('cleanup headers (property)', () => {
  it('only CleanupError escapes; the header block is whole header lines, no lone ".", no CR', () => {
    fc.assert(fc.property(message, fc.boolean(), (data, extract) => {
      const out = run(data, { ...sub, extractRecipients: extract, recipients: extract ? [] : sub.recipients });
      if (!out) return;
      expect(out.headers.endsWith('\n')).toBe(true);
      const lines = out.headers.slice(0, -1).split('\n');
      for (const line of lines) {
        expect(line).not.toBe('.');
        expect(line).toMatch(/^(?:[\x21-\x39\x3b-\x7e]+:|[ \t])/);
      }
      // No CR at all: the transport would turn it into a line end inside a header.
      expect(out.headers).not.toContain('\r');
      if (extract) for (const r of out.recipients) expect(r).toContain('@');
    }), { numRuns: RUNS });
  });

  it('is a fixed point on its own output, the Received line apart', () => {
    fc.assert(fc.property(message, (data) => {
      const once = run(data, sub);
      if (!once) return;
      const again = run(Buffer.concat([Buffer.from(`${withoutReceived(once.headers)}\n`, 'latin1'), once.body]), sub);
      expect(again).toBeDefined();
      expect(withoutReceived(again!.headers)).toBe(withoutReceived(once.headers));
      expect(again!.body.equals(once.body)).toBe(true);
    }), { numRuns: RUNS });
  });
});
