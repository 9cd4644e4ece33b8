// receive/drop-file.ts: one complete maildrop file into the spool, as the pickup finds
// it: the envelope line checked, the header block held (at most 1 MB) and cleaned up,
// the body streamed into the spool in 64 KB reads, the commit started with the file's
// name. The file's owner (the kernel's word) is the submitter. Says why a file is no
// message; the pickup (pickup.ts) decides what then becomes of the file.
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { isRoutableAddress } from '../core/address.js';
import type { Clock } from '../core/clock.js';
import type { MessageRecord } from '../core/types.js';
import { userName } from '../core/users.js';
import type { Hold, SenderLimits } from '../limits/sender-limits.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import type { IncomingMessage } from '../spool/spool.js';
import { cleanupHeaders, qualify } from './cleanup.js';
import { HeaderSplitter, HeaderTooLong, parseHeaderBlock } from './header-block.js';
import { ENVELOPE_ALLOWANCE, parseEnvelope, type DropEnvelope } from './maildrop.js';

const READ = 64 * 1024;

/** What taking a file needs (the pickup's options have it). */
export interface DropFileOptions {
  spool: { incoming(id: string, pickup: string): IncomingMessage };
  clock: Clock;
  ids: MessageIdGenerator;
  hostname: string;
  qualifyDomain: string;
  maxMessageSize: number;
  maxRecipients: number;
  limits?: SenderLimits;
}

/** A file taken: its commit under way, and what the pickup logs of it. */
export interface Taken {
  kind: 'ok'; commit: Promise<MessageRecord>; id: string; sender: string; protocol: string; user: string; queueOnly: boolean; messageIdHeader?: string; held: number;
  hold?: Hold;
}

/**
 * Streams a complete drop file into the spool: the envelope line, then the header
 * block (held, at most 1 MB), then the body in 64 KB reads, written as it comes.
 * Resolves with the commit under way, or says why the file is no message.
 */
export async function takeDropFile(o: DropFileOptions, name: string, fh: FileHandle, st: Stats): Promise<Taken | string> {
  const head = await readEnvelope(fh);
  if (typeof head === 'string') return head;
  const e = parseEnvelope(head.line, { maxRecipients: o.maxRecipients });
  if (typeof e === 'string') return e;
  const user = userName(st.uid);
  const sender = qualify(e.sender === undefined ? `${user}@${o.qualifyDomain}` : e.sender.replace(/^<(.*)>$/, '$1'), o.qualifyDomain);
  if (sender !== '' && !isRoutableAddress(sender)) return 'bad sender address';
  if (!e.recipients.every((r) => isRoutableAddress(qualify(r, o.qualifyDomain)))) return 'bad recipient address';
  const now = o.clock.now();
  const message = o.spool.incoming(o.ids.next(now), name);
  const why = await streamBody(fh, head.rest, head.pos, message).catch((err: unknown) => {
    void message.abort();
    throw err; // the spool could not take it (a full disk): the file stays
  });
  if (typeof why === 'string') {
    await message.abort();
    return why;
  }
  const checked = headers(o, e, why.head, message, user, sender, now);
  if (typeof checked === 'string') {
    await message.abort();
    return checked;
  }
  const hold = o.limits?.check({ user });
  const meta = {
    // Arrived when sendmail wrote it (the daemon may have been down), never in the future.
    sender, recipients: checked.recipients, arrival: Math.min(now, Math.floor(st.mtimeMs)), protocol: e.protocol, user, headers: checked.headers,
    ...(checked.messageIdHeader ? { messageIdHeader: checked.messageIdHeader } : {}),
    ...(e.queueOnly ? { queueOnly: true } : {}), ...(hold ? { hold: hold.entry } : {}),
  };
  const commit = message.commit(meta);
  commit.catch(() => o.limits?.refund({ user }, hold)); // settled by the turn; a refused commit is not counted
  return { kind: 'ok', commit, id: message.id, sender, protocol: e.protocol, user, queueOnly: e.queueOnly === true,
    ...(checked.messageIdHeader ? { messageIdHeader: checked.messageIdHeader } : {}), held: Math.min(message.bodySize, 1024 * 1024),
    ...(hold ? { hold } : {}) };
}

/** The cleaned header block and recipients, or why the message cannot be one. */
function headers(o: DropFileOptions, e: DropEnvelope, head: Buffer, message: IncomingMessage, user: string, sender: string, now: number) {
  let cleaned;
  try {
    cleaned = cleanupHeaders(parseHeaderBlock(head), {
      id: message.id, now, hostname: o.hostname, qualifyDomain: o.qualifyDomain, sender, recipients: e.recipients, protocol: e.protocol, user,
      extractRecipients: e.extract, ...(e.fullName !== undefined ? { fullName: e.fullName } : {}),
    });
  } catch (err) {
    return `unusable message (${(err as Error).message})`;
  }
  if (cleaned.recipients.length === 0) return 'no recipients';
  if (cleaned.recipients.length > o.maxRecipients) return `more than ${o.maxRecipients} recipients`;
  if (!cleaned.recipients.every(isRoutableAddress)) return 'bad recipient address in the headers';
  if (Buffer.byteLength(cleaned.headers, 'latin1') + message.bodySize > o.maxMessageSize) return 'larger than max_message_size';
  return cleaned;
}

/** The envelope line (at most ENVELOPE_ALLOWANCE bytes) and what was read after it. */
async function readEnvelope(fh: FileHandle): Promise<{ line: string; rest: Buffer; pos: number } | string> {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(READ);
    const { bytesRead } = await fh.read(buf, 0, READ, pos);
    if (bytesRead === 0) return 'no envelope line';
    const got = buf.subarray(0, bytesRead);
    const nl = got.indexOf(10);
    if (nl >= 0) {
      const line = Buffer.concat([...parts, got.subarray(0, nl)]);
      if (line.length > ENVELOPE_ALLOWANCE) return 'no envelope line';
      return { line: line.toString('utf8'), rest: got.subarray(nl + 1), pos: pos + bytesRead };
    }
    parts.push(got);
    pos += bytesRead;
    if (pos > ENVELOPE_ALLOWANCE) return 'no envelope line';
  }
}

/**
 * The message after the envelope line, read from `pos` to the end: headers held by
 * the splitter, body bytes written to the spool as they come (the spool's pace).
 * Resolves with the header block, or says why the message is unusable.
 */
async function streamBody(fh: FileHandle, first: Buffer, pos: number, message: IncomingMessage): Promise<{ head: Buffer } | string> {
  const split = new HeaderSplitter();
  let buf: Buffer | undefined;
  try {
    let body = split.push(first);
    for (;;) {
      if (body.length) await message.write(body); // copied by the spool: the buffer is ours again
      // While the headers are held the splitter may keep the buffer it was given: a new
      // one each read until then; one buffer for the whole body after that.
      if (!buf || !split.head) buf = Buffer.allocUnsafe(READ);
      const { bytesRead } = await fh.read(buf, 0, READ, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      body = split.push(buf.subarray(0, bytesRead));
    }
    const rest = split.end();
    if (rest.length) await message.write(rest);
  } catch (err) {
    if (err instanceof HeaderTooLong) return 'message header too long';
    throw err;
  }
  return { head: split.head ?? Buffer.alloc(0) };
}
