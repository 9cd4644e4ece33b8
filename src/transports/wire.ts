// transports/wire.ts: a whole message as the DATA phase sends it, made at once: every
// CR, LF or CRLF a CRLF, and a dot that starts a line doubled (RFC 5321 4.5.2). The
// same bytes as nodemailer's DataStream, which makes them in a JavaScript loop over
// every byte (the largest cost of relaying a 100 KB message). The terminating dot is not included: the data stream adds it. Also the
// hand-over of such a message to nodemailer's data stream (passWire), which then only
// passes it on.
import { Readable, type Transform } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

const CR = 13;
const LF = 10;
const DOT = 46;

/**
 * The DATA form of a message (headers, blank line, body) with LF, CRLF or bare CR line
 * ends, given as bytes, as pieces of it in order (the header block and the spool's
 * chunks: no copy of them is joined first), or as a byte string (latin1: one char per
 * byte, so any bytes round-trip).
 */
export function toWire(message: Buffer | string | readonly Buffer[]): Buffer {
  const parts = typeof message === 'string' ? [Buffer.from(message, 'latin1')] : Buffer.isBuffer(message) ? [message] : message;
  // The spool keeps LF line ends: a CR anywhere (rare) takes the string way.
  for (const p of parts) if (p.includes(CR)) return toWireText(Buffer.concat(parts).toString('latin1'));
  return lfToWire(parts);
}

/**
 * LF-only pieces in DATA form, on bytes (no string of the message on the heap: for a
 * 100 KB message those strings were most of what the daemon's young generation
 * collected). One pass counts what each piece gains (a CR per LF, a dot per line that
 * starts with one, a line also starting at a piece's first byte); then each piece is
 * copied whole into the end of its place in a buffer of the exact size and its lines
 * are moved down into place with copyWithin, the added bytes written between them. The
 * LFs are found by Buffer#indexOf (memchr). Neither copyWithin nor set() makes an
 * object per line, as Buffer#copy of a part of a buffer does (a view per call).
 */
function lfToWire(parts: readonly Buffer[]): Buffer {
  let size = 0;
  let extra = 0;
  let lineStart = true;
  const gains: number[] = [];
  for (const p of parts) {
    let gain = 0;
    if (p.length > 0) {
      size += p.length;
      if (lineStart && p[0] === DOT) gain++;
      for (let i = p.indexOf(LF); i >= 0; i = p.indexOf(LF, i + 1)) {
        gain++;
        if (p[i + 1] === DOT) gain++; // past the piece's end: undefined, the next piece's first byte counts
      }
      lineStart = p[p.length - 1] === LF;
    }
    gains.push(gain);
    extra += gain;
  }
  if (extra === 0) return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  const out = Buffer.allocUnsafe(size + extra);
  let o = 0;
  lineStart = true;
  parts.forEach((p, n) => {
    if (p.length === 0) return;
    // The piece staged where its output ends; what is written below never passes what is still to be moved.
    const stage = o + (gains[n] as number);
    out.set(p, stage);
    if (lineStart && p[0] === DOT) out[o++] = DOT;
    let from = 0;
    for (let i = p.indexOf(LF); i >= 0; i = p.indexOf(LF, i + 1)) {
      out.copyWithin(o, stage + from, stage + i);
      o += i - from;
      out[o++] = CR;
      out[o++] = LF;
      if (p[i + 1] === DOT) out[o++] = DOT;
      from = i + 1;
    }
    out.copyWithin(o, stage + from, stage + p.length);
    o += p.length - from;
    lineStart = p[p.length - 1] === LF;
  });
  return out;
}

/** toWire on a byte string that holds a CR, with native string operations: any mix of CR, LF and CRLF. */
function toWireText(text: string): Buffer {
  let s = text.replace(/\r\n|\r|\n/g, '\r\n');
  if (s.includes('\n.')) s = s.replaceAll('\n.', '\n..');
  if (s.startsWith('.')) s = `.${s}`;
  return Buffer.from(s, 'latin1');
}

/** nodemailer's DataStream, as far as passWire touches it. */
type DataStream = Transform & { inByteCount: number; outByteCount: number; lastByte: number | false };

/**
 * nodemailer makes a DataStream for each message (SMTPConnection._createSendStream in
 * nodemailer 10.6, pinned in package.json), which makes line ends CRLF and doubles dots
 * in a loop over every byte. A message already in DATA form (toWire, natively) needs
 * neither: for it the stream passes the bytes on, and keeps the counts and the last
 * byte its terminating dot needs. A message that fits in the socket's buffer leaves
 * with its dot line in one write (the socket corked meanwhile; a bigger one is not
 * corked: the pipe would wait for a drain a corked socket never gives). False when the
 * library has no such method: then every message goes the library's way.
 */
export function passWire(conn: SMTPConnection, cached: { wireNext: number | false }): boolean {
  const c = conn as unknown as { _createSendStream?: (this: SMTPConnection, cb: unknown) => DataStream };
  const create = c._createSendStream;
  if (typeof create !== 'function') return false;
  c._createSendStream = function (this: SMTPConnection, cb: unknown): DataStream {
    const ds = create.call(this, cb);
    const size = cached.wireNext;
    if (size === false) return ds;
    cached.wireNext = false;
    const socket = (conn as unknown as { _socket?: { cork(): void; uncork(): void; writableLength: number; writableHighWaterMark: number } })._socket;
    // Room for the message and its dot line ("\r\n.\r\n" at most) without a full buffer.
    if (socket && socket.writableLength + size + 5 < socket.writableHighWaterMark) {
      socket.cork();
      // 'end' comes after the dot line was handed to the socket; 'close' also when the stream is destroyed.
      const uncork = () => socket.uncork();
      ds.once('end', uncork);
      ds.once('close', uncork);
    }
    ds._transform = (chunk: Buffer, _encoding, done) => {
      ds.inByteCount += chunk.length;
      ds.outByteCount += chunk.length;
      if (chunk.length > 0) ds.lastByte = chunk[chunk.length - 1] as number;
      done(null, chunk);
    };
    return ds;
  };
  return true;
}

/** One buffer as a stream. */
export function oneChunk(buf: Buffer): Readable {
  let left: Buffer | null = buf;
  return new Readable({
    read() {
      this.push(left);
      left = null;
    },
  });
}
