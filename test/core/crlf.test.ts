// test/core/crlf.test.ts: LF → CRLF for the wire, across part boundaries, against a
// plain reference (fast-check), and the cases the SMTP data phase depends on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crlf } from '../../src/core/crlf.js';

const ref = (s: string) => s.replace(/\r?\n/g, '\r\n');
const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('crlf', () => {
  it('makes bare LFs CRLF and leaves CRLF and bare CR alone', () => {
    expect(crlf([bytes('a\nb\r\nc\rd\n')]).toString('latin1')).toBe('a\r\nb\r\nc\rd\r\n');
    expect(crlf([bytes('\n\n')]).toString('latin1')).toBe('\r\n\r\n');
    expect(crlf([]).length).toBe(0);
  });

  it('sees a CR at the end of one part before the LF that starts the next', () => {
    expect(crlf([bytes('a\r'), bytes('\nb')]).toString('latin1')).toBe('a\r\nb');
    expect(crlf([bytes('a'), bytes(''), bytes('\nb')]).toString('latin1')).toBe('a\r\nb');
    expect(crlf([bytes('a\r'), bytes(''), bytes('\n')]).toString('latin1')).toBe('a\r\n');
  });

  it('equals the plain reference for any text cut into any parts', () => {
    fc.assert(fc.property(
      fc.array(fc.constantFrom('a', '.', '\r', '\n', 'é', ' '), { maxLength: 200 }).map((a) => a.join('')),
      fc.array(fc.nat(200), { maxLength: 6 }),
      (text, cuts) => {
        const at = [...new Set(cuts.map((c) => Math.min(c, text.length)))].sort((x, y) => x - y);
        const parts: Buffer[] = [];
        let from = 0;
        for (const c of [...at, text.length]) {
          parts.push(bytes(text.slice(from, c)));
          from = c;
        }
        expect(crlf(parts).toString('latin1')).toBe(ref(text));
      },
    ), { numRuns: 2000 });
  });
});
