// Tests for HeaderSplitter (src/receive/cleanup.ts): a message arriving in pieces is
// split into header block and body exactly as the whole-message parser always split
// it, whatever the pieces, and the held header block is bounded; LineEnds converting
// in the chunk's own memory gives what the copying conversion gives.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderSplitter, HeaderTooLong, LineEnds, parseHeaderBlock, type Header } from '../../src/receive/header-block.js';

/** The whole-message parser as it was before streaming: the reference. */
function reference(data: Buffer): { headers: Header[]; body: Buffer } {
  const headers: Header[] = [];
  let pos = 0;
  while (pos < data.length) {
    let nl = data.indexOf(10, pos);
    if (nl < 0) nl = data.length;
    const line = data.toString('latin1', pos, nl);
    if (line === '') {
      pos = nl + 1;
      break;
    }
    if (/^[ \t]/.test(line) && headers.length > 0) (headers[headers.length - 1] as Header).raw += line + '\n';
    else if (/^[\x21-\x39\x3b-\x7e]+:/.test(line)) headers.push({ name: line.slice(0, line.indexOf(':')), raw: line + '\n' });
    else break;
    pos = nl + 1;
  }
  return { headers, body: data.subarray(Math.min(pos, data.length)) };
}

function splitInPieces(data: Buffer, cuts: number[], limit?: number): { headers: Header[]; body: Buffer } {
  const s = new HeaderSplitter(limit);
  const body: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts.map((x) => x % (data.length + 1))].sort((a, b) => a - b)) {
    body.push(Buffer.from(s.push(data.subarray(at, c))));
    at = c;
  }
  body.push(Buffer.from(s.push(data.subarray(at))));
  body.push(Buffer.from(s.end()));
  return { headers: parseHeaderBlock(s.head ?? Buffer.alloc(0)), body: Buffer.concat(body) };
}

const line = fc.oneof(
  fc.constantFrom('Subject: hi', 'To: a@example.org', ' folded', '\tfolded', '', 'X-A:', ':no name', 'From x', 'a b: c',
    'Subject : x', 'body line', '.', 'X-Long: ' + 'y'.repeat(300)),
  fc.string({ maxLength: 12 }),
);
const message = fc.tuple(fc.array(line, { maxLength: 12 }), fc.boolean())
  .map(([lines, lastLf]) => Buffer.from(lines.join('\n') + (lastLf && lines.length ? '\n' : ''), 'latin1'));

describe('HeaderSplitter', () => {
  it('any split into pieces gives what the whole-message parser gives', () => {
    fc.assert(fc.property(message, fc.array(fc.nat(), { maxLength: 6 }), (data, cuts) => {
      const want = reference(data);
      const got = splitInPieces(data, cuts);
      expect(got.headers).toEqual(want.headers);
      expect(got.body.equals(want.body)).toBe(true);
    }), { numRuns: 3000 });
  });

  it('byte by byte', () => {
    const data = Buffer.from('Subject: a\n b\nTo: x@example.org\n\nbody\nSubject: not a header\n', 'latin1');
    const cuts = Array.from({ length: data.length }, (_, i) => i);
    expect(splitInPieces(data, cuts)).toEqual(reference(data));
  });

  it('passes the body on as soon as a partial line cannot be a header', () => {
    const s = new HeaderSplitter();
    expect(s.push(Buffer.from('Subject: x\nthis is')).toString()).toBe('this is');
    expect(s.head?.toString()).toBe('Subject: x\n');
    expect(s.push(Buffer.from(' more')).toString()).toBe(' more');
  });

  it('holds a partial header line until its end', () => {
    const s = new HeaderSplitter();
    expect(s.push(Buffer.from('Subject: x\nX-Name')).length).toBe(0);
    expect(s.head).toBeUndefined();
    expect(s.push(Buffer.from(': v\n\nB')).toString()).toBe('B');
    expect(s.head?.toString()).toBe('Subject: x\nX-Name: v\n');
  });

  it('a header block over the limit throws HeaderTooLong, whether or not it is complete', () => {
    const s = new HeaderSplitter(1000);
    expect(() => { for (let i = 0; i < 100; i++) s.push(Buffer.from(`X-H${i}: ${'v'.repeat(20)}\n`)); }).toThrow(HeaderTooLong);
    const t = new HeaderSplitter(1000);
    expect(() => t.push(Buffer.from(`X-H: ${'v'.repeat(2000)}\n\nbody`))).toThrow(HeaderTooLong);
    const u = new HeaderSplitter(1000);
    expect(u.push(Buffer.from(`X-H: v\n\n${'b'.repeat(5000)}`)).length).toBe(5000);
  });

  it('a long body line never counts against the header limit', () => {
    const s = new HeaderSplitter(1000);
    expect(s.push(Buffer.from('Subject: x\n\n')).length).toBe(0);
    expect(s.push(Buffer.alloc(100_000, 'a')).length).toBe(100_000);
  });
});

describe('LineEnds.pushInPlace', () => {
  it('gives what push gives, for any pieces', () => {
    const text = fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', '.', 'xyz'), { maxLength: 40 }).map((a) => a.join(''));
    fc.assert(fc.property(text, fc.array(fc.nat(), { maxLength: 5 }), (t, cuts) => {
      const data = Buffer.from(t, 'latin1');
      const points = [...cuts.map((c) => c % (data.length + 1)), data.length].sort((a, b) => a - b);
      const copy = new LineEnds();
      const inPlace = new LineEnds();
      const a: Buffer[] = [];
      const b: Buffer[] = [];
      let at = 0;
      for (const c of points) {
        a.push(Buffer.from(copy.push(data.subarray(at, c))));
        b.push(Buffer.from(inPlace.pushInPlace(Buffer.from(data.subarray(at, c)))));
        at = c;
      }
      a.push(copy.end());
      b.push(inPlace.end());
      expect(Buffer.concat(b).equals(Buffer.concat(a))).toBe(true);
      expect(Buffer.concat(a).toString('latin1')).toBe(t.replace(/\r\n/g, '\n'));
    }), { numRuns: 3000 });
  });
});
