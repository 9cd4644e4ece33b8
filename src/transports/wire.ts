// transports/wire.ts: a whole message as the DATA phase sends it, made at once with
// native string operations: every CR, LF or CRLF a CRLF, and a dot that starts a line
// doubled (RFC 5321 4.5.2). The same bytes as nodemailer's DataStream, which makes
// them in a JavaScript loop over every byte (the largest cost of relaying a 100 KB
// message). The terminating dot is not included: the data stream adds it.

/**
 * The DATA form of a message (headers, blank line, body) with LF, CRLF or bare CR line
 * ends, given as bytes or as a byte string (latin1: one char per byte, so any bytes
 * round-trip; the delivery path reads the spool straight into one).
 */
export function toWire(message: Buffer | string): Buffer {
  const text = typeof message === 'string' ? message : message.toString('latin1');
  // The spool keeps LF line ends: without a CR anywhere, a plain replaceAll does (twice
  // as fast as the regular expression a stray CR needs).
  let s = text.includes('\r') ? text.replace(/\r\n|\r|\n/g, '\r\n') : text.replaceAll('\n', '\r\n');
  if (s.includes('\n.')) s = s.replaceAll('\n.', '\n..');
  if (s.startsWith('.')) s = `.${s}`;
  return Buffer.from(s, 'latin1');
}
