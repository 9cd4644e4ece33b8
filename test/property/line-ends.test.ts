// Property tests for line ends and dot handling on the mail path: LineEnds (CRLF to
// LF, bare CR kept) and sendmail's readMessage give the same bytes however the input
// is cut into chunks; readMessage never lets a "." line through when it ends the
// message; and what the transport writes (nodemailer's DataStream, dot-stuffing and
// CRLF) ends DATA exactly once, at its end, and unstuffs to the message with every
// line end as CRLF.
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineEnds } from '../../src/receive/header-block.js';
import { readMessage } from '../../src/receive/sendmail.js';
// The transport's own dot-stuffer (not exported by nodemailer's package map).
import DataStream from '../../node_modules/nodemailer/dist/esm/smtp-connection/data-stream.js';

const RUNS = 3000;

const bytes = fc.array(fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(13, 10, 46, 97, 32) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
), { maxLength: 60 }).map((a) => Buffer.from(a));

/** Cuts a buffer at the given (wrapped) positions. */
function cut(buf: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((p) => (buf.length ? p % (buf.length + 1) : 0)))].sort((x, y) => x - y);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}
const cuts = fc.array(fc.nat(), { maxLength: 8 });

const latin1 = (b: Buffer) => b.toString('latin1');
const lineEnds = (parts: Buffer[]) => {
  const e = new LineEnds();
  return Buffer.concat([...parts.map((p) => e.push(p)), e.end()]);
};

describe('line ends and dots (property)', () => {
  it('LineEnds: CRLF becomes LF, a bare CR or LF stays, whatever the chunking', () => {
    fc.assert(fc.property(bytes, cuts, (buf, at) => {
      expect(latin1(lineEnds(cut(buf, at)))).toBe(latin1(buf).replace(/\r\n/g, '\n'));
    }), { numRuns: RUNS });
  });

  it('readMessage: the same message whatever the chunking; no "." line survives when one ends the input', async () => {
    await fc.assert(fc.asyncProperty(bytes, cuts, fc.boolean(), async (buf, at, dotEnds) => {
      const whole = await readMessage(Readable.from([buf]), dotEnds);
      const pieces = await readMessage(Readable.from(cut(buf, at).filter((p) => p.length)), dotEnds);
      expect(latin1(pieces)).toBe(latin1(whole));
      const normal = latin1(buf).replace(/\r\n/g, '\n');
      const out = latin1(whole);
      expect(normal.startsWith(out)).toBe(true);
      if (dotEnds) {
        expect(`\n${out}`).not.toContain('\n.\n');
        expect(`\n${out}`.endsWith('\n.')).toBe(false);
      } else {
        expect(out).toBe(normal);
      }
    }), { numRuns: RUNS });
  });

  it('the transport ends DATA once, at the end, and the hub unstuffs the message with CRLF line ends', async () => {
    await fc.assert(fc.asyncProperty(bytes, cuts, async (buf, at) => {
      const body = lineEnds([buf]);
      const ds = new DataStream();
      const out: Buffer[] = [];
      ds.on('data', (c: Buffer) => out.push(c));
      const done = new Promise((resolve) => ds.on('end', resolve));
      for (const p of cut(body, at)) if (p.length) ds.write(p);
      ds.end();
      await done;
      const wire = `\r\n${latin1(Buffer.concat(out))}`; // what follows the 354 line
      expect(wire.indexOf('\r\n.\r\n')).toBe(wire.length - 5);
      // Every line is CRLF-terminated; unstuffed, they are the message's lines.
      const content = wire.slice(2, -3);
      const lines = content.split('\r\n');
      expect(lines.pop()).toBe('');
      expect(lines.every((l) => !l.includes('\r') && !l.includes('\n'))).toBe(true);
      const unstuffed = lines.map((l) => (l.startsWith('.') ? l.slice(1) : l));
      // (An empty message goes out as one empty line: DATA needs its CRLF before the dot.)
      const expected = latin1(body).split(/\r\n|\r|\n/);
      if (expected.length > 1 && expected[expected.length - 1] === '') expected.pop();
      expect(unstuffed).toEqual(expected);
    }), { numRuns: RUNS });
  });
});
