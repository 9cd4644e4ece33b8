// test/receive/data-scan.test.ts: fastDataScan (receive/smtp-internals.ts), the DATA
// phase's dot search by Buffer#indexOf, makes the same decisions as smtp-server's own
// byte loop: for random sessions (a message full of dots, CRs, LFs and terminators
// between commands) cut into random pieces (fast-check), the library's parser with and
// without it gives the same commands and the same message bytes, and reads the
// commands after the message the same way.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { fastDataScan, type LibConnection } from '../../src/receive/smtp-internals.js';

/** What the parser made of `pieces`: commands, and each message's bytes, in order. */
async function parse(pieces: Buffer[], fast: boolean): Promise<string[]> {
  const parser = new SMTPStream();
  if (fast) {
    fastDataScan({ _parser: parser } as unknown as LibConnection);
    expect(parser._feedDataStream, 'fastDataScan hooked the parser').not.toBe(SMTPStream.prototype._feedDataStream);
  }
  const seen: string[] = [];
  parser.oncommand = (command: Buffer, callback?: () => void) => {
    const line = command.toString('latin1');
    seen.push(`cmd ${line}`);
    if (line === 'DATA') {
      const stream = parser.startDataMode();
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        seen.push(`data ${JSON.stringify(Buffer.concat(parts).toString('latin1'))}`);
        parser.continue();
      });
    }
    callback?.();
  };
  const all = (async () => {
    for (const p of pieces) {
      await new Promise<void>((resolve, reject) => parser.write(p, (err) => (err ? reject(err) : resolve())));
    }
    await new Promise<void>((resolve) => parser.end(resolve));
  })();
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<void>((_, reject) => { timer = setTimeout(() => reject(new Error(`parser stuck: ${JSON.stringify(seen)}`)), 10_000); });
  await Promise.race([all, stuck]).finally(() => clearTimeout(timer));
  return seen;
}

const unit = fc.constantFrom('.', '.', '..', 'a', 'é', '\r', '\n', '\r\n', '\r\n.', '\r\n..', '\r\n.\r\n', '\x00');
const body = fc.array(unit, { maxLength: 40 }).map((a) => a.join(''));
const session = body.map((b) => `MAIL FROM:<a@b>\r\nDATA\r\n${b}\r\n.\r\nNOOP\r\nQUIT\r\n`);

function cut(text: string, at: number[]): Buffer[] {
  const b = Buffer.from(text, 'latin1');
  const points = [...new Set(at.map((n) => n % (b.length + 1)))].sort((x, y) => x - y);
  return [0, ...points].map((from, i) => b.subarray(from, points[i] ?? b.length)).filter((p) => p.length > 0);
}

describe('fastDataScan', () => {
  it('gives what the library\'s own scan gives, for any session cut anywhere', async () => {
    await fc.assert(fc.asyncProperty(session, fc.array(fc.nat(200), { maxLength: 8 }), async (text, at) => {
      const pieces = cut(text, at);
      expect(await parse(pieces, true)).toEqual(await parse(pieces, false));
    }), { numRuns: 3000 });
  });

  it('a 1 MB message with long lines and dot lines, in 64 KB pieces: the same bytes, unstuffed', async () => {
    const lines: string[] = [];
    for (let i = 0, n = 0; n < 1024 * 1024; i++) {
      const l = `${i % 3 === 0 ? '..' : ''}${'y'.repeat(i % 1500)}\xe9\r\n`;
      lines.push(l);
      n += l.length;
    }
    const text = `DATA\r\n${lines.join('')}.\r\nQUIT\r\n`;
    const b = Buffer.from(text, 'latin1');
    const pieces: Buffer[] = [];
    for (let off = 0; off < b.length; off += 65536) pieces.push(b.subarray(off, off + 65536));
    const fast = await parse(pieces, true);
    expect(fast).toEqual(await parse(pieces, false));
    expect(fast[1]).toBe(`data ${JSON.stringify(lines.join('').replace(/^\.\./gm, '.'))}`);
    expect(fast.at(-1)).toBe('cmd QUIT');
  });

  it('leaves a parser without the library\'s method as it is', () => {
    const parser: { _feedDataStream?: unknown } = {};
    expect(() => fastDataScan({ _parser: parser } as unknown as LibConnection)).not.toThrow();
    expect(parser._feedDataStream).toBeUndefined();
    expect(() => fastDataScan({ _parser: false } as unknown as LibConnection)).not.toThrow();
  });

  // fastDataScan is a copy of the library's routine with one loop changed: a library whose
  // routine changed (an upgrade, a security fix) fails here until the copy is checked again.
  it('is a copy of the routine of the smtp-server it was checked against (3.21.6)', () => {
    const digest = createHash('sha256').update(SMTPStream.prototype._feedDataStream.toString()).digest('hex');
    expect(digest).toBe('9d8b903f9a3a63542d72e19a9e2f67009a3b1107a28d57e8e7369355454ff230');
  });
});
