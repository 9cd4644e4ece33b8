// core/crlf.ts: LF line ends to CRLF for the wire, in native copies (Buffer.indexOf and
// copy), one pass per part and one allocation. The spool keeps LF (as Exim's -D file);
// the SMTP client would otherwise split the message at every line in JavaScript.
const LF = 0x0a;
const CR = 0x0d;

/** The parts as one buffer with every bare LF made CRLF (a CRLF already there stays as it is). */
export function crlf(parts: readonly Buffer[]): Buffer {
  let size = 0;
  for (const p of parts) {
    size += p.length;
    for (let i = p.indexOf(LF); i >= 0; i = p.indexOf(LF, i + 1)) size++;
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  let prev = -1; // the byte before the current part's first
  for (const p of parts) {
    let start = 0;
    for (let i = p.indexOf(LF); i >= 0; i = p.indexOf(LF, i + 1)) {
      o += p.copy(out, o, start, i);
      const before = i > 0 ? p[i - 1] : prev;
      if (before !== CR) out[o++] = CR;
      out[o++] = LF;
      start = i + 1;
    }
    o += p.copy(out, o, start);
    if (p.length > 0) prev = p[p.length - 1] as number;
  }
  return out.subarray(0, o);
}
