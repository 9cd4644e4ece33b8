// test/transports/wire.test.ts: toWire() gives the bytes nodemailer's own DataStream
// gives for the same message (fast-check, thousands of bodies full of dots, CRs and
// LFs), whole or in pieces cut anywhere (the spool's chunks), and the cases the DATA
// phase depends on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { toWire } from '../../src/transports/wire.js';

/** What nodemailer's DataStream sends for `message`, terminating dot line included. */
function viaDataStream(message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const ds = new (DataStream as unknown as new () => NodeJS.ReadWriteStream)();
    const out: Buffer[] = [];
    ds.on('data', (c: Buffer) => out.push(c));
    ds.on('error', reject);
    ds.on('end', () => resolve(Buffer.concat(out)));
    ds.end(message);
  });
}

/** The terminator DataStream adds after output ending in `wire` (whose last byte is never a bare CR). */
const terminated = (wire: Buffer) => Buffer.concat([wire, Buffer.from(wire.at(-1) === 0x0a ? '.\r\n' : '\r\n.\r\n')]);

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('toWire', () => {
  it('makes every line end CRLF and doubles a dot that starts a line', () => {
    expect(toWire(bytes('Subject: x\n\n.hidden\nok\n')).toString('latin1')).toBe('Subject: x\r\n\r\n..hidden\r\nok\r\n');
    expect(toWire(bytes('.\n..\na.b\n')).toString('latin1')).toBe('..\r\n...\r\na.b\r\n');
    expect(toWire(bytes('a\rb\r\n.c\r.d')).toString('latin1')).toBe('a\r\nb\r\n..c\r\n..d');
    expect(toWire(bytes('é\xff\n')).equals(bytes('é\xff\r\n'))).toBe(true);
    expect(toWire(Buffer.alloc(0)).length).toBe(0);
  });

  it('gives the bytes nodemailer DataStream gives, for any message', async () => {
    const unit = fc.constantFrom('.', '.', 'a', ' ', '\r', '\n', '\r\n', '\xe9', '\x00');
    await fc.assert(fc.asyncProperty(fc.array(unit, { maxLength: 60 }).map((a) => a.join('')), async (text) => {
      const m = bytes(text);
      const want = await viaDataStream(m);
      expect(terminated(toWire(m)).toString('latin1')).toBe(want.toString('latin1'));
    }), { numRuns: 3000 });
  });

  it('gives the same bytes for a message in pieces cut anywhere (header block, chunks, empty pieces)', async () => {
    const unit = fc.constantFrom('.', '.', 'a', ' ', '\r', '\n', '\n', '\r\n', '\xe9', '\x00');
    const text = fc.array(unit, { maxLength: 80 }).map((a) => a.join(''));
    await fc.assert(fc.asyncProperty(text, fc.array(fc.nat(80), { maxLength: 6 }), async (t, cuts) => {
      const m = bytes(t);
      const at = [...new Set(cuts.map((c) => Math.min(c, m.length)))].sort((a, b) => a - b);
      const parts = [0, ...at].map((from, i) => m.subarray(from, at[i] ?? m.length));
      const want = await viaDataStream(m);
      expect(terminated(toWire(parts)).toString('latin1')).toBe(want.toString('latin1'));
      expect(toWire(parts).equals(toWire(t))).toBe(true);
    }), { numRuns: 3000 });
  });

  it('LF-only pieces: a dot at a piece\'s first byte after a piece ending in LF is doubled, one mid-line is not', () => {
    expect(toWire([bytes('a\n'), bytes('.b\n')]).toString('latin1')).toBe('a\r\n..b\r\n');
    expect(toWire([bytes('a'), bytes('.b\n')]).toString('latin1')).toBe('a.b\r\n');
    expect(toWire([bytes('a\n'), bytes(''), bytes('.')]).toString('latin1')).toBe('a\r\n..');
    expect(toWire([bytes('.'), bytes('\n.')]).toString('latin1')).toBe('..\r\n..');
    expect(toWire([]).length).toBe(0);
  });

  it('a message of 1 MB with long lines, 8-bit bytes and dot lines: the bytes DataStream gives', async () => {
    const line = (i: number) => (i % 7 === 0 ? '.' : '') + (i % 5 === 0 ? '\xff\xe9' : '') + 'x'.repeat(i % 1200) + '\n';
    const body: string[] = [];
    for (let i = 0, n = 0; n < 1024 * 1024; i++) { body.push(line(i)); n += line(i).length; }
    const m = bytes(`Subject: big\n\n${body.join('')}`);
    const chunks: Buffer[] = [];
    for (let off = 0; off < m.length; off += 64 * 1024) chunks.push(m.subarray(off, off + 64 * 1024));
    expect(terminated(toWire(chunks)).equals(await viaDataStream(m))).toBe(true);
  });

  it('a message needing no change is passed on as it is', () => {
    const m = bytes('no line end at all');
    expect(toWire(m)).toBe(m);
  });

  it('rests on the nodemailer method the transport hooks (else every message would take the slow way)', () => {
    expect(typeof (SMTPConnection.prototype as unknown as Record<string, unknown>)._createSendStream).toBe('function');
  });

  it('rests on the list of AUTH mechanisms nodemailer keeps (mayAuthenticate: AUTH only when the hub offers it)', () => {
    const conn = new SMTPConnection({ port: 1, logger: false });
    expect(Array.isArray((conn as unknown as Record<string, unknown>)._supportedAuth)).toBe(true);
    conn.close();
  });
});
