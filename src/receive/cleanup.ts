// receive/cleanup.ts: what every submission goes through before the spool, shared by
// SMTP and sendmail (Postfix's cleanup): line ends to LF, header/body split, address
// qualification, the header fix-ups Exim applies to local submissions (Received,
// Message-ID, Date, From), and recipients from headers for `sendmail -t`.
// Headers are handled as byte strings (latin1: one char per byte), so whatever bytes a
// client sent (UTF-8, Latin-1, junk) reach the smarthost unchanged; text we add is
// UTF-8, converted with toBytes().
import addressparser from 'nodemailer/lib/addressparser';
import { rfc5322Date } from '../core/date.js';

export { rfc5322Date };

export const VERSION = '0.1.0';

/** A JS (UTF-16) string as a byte string holding its UTF-8 encoding. */
export function toBytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}
/** A byte string (as headers are held) back to text, reading it as UTF-8. */
export function fromBytes(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

/** CRLF to LF, across chunk boundaries. */
const CR = 13;
const LF = 10;

export class LineEnds {
  private carry = false;
  /** One pass over the bytes, at most one copy; a chunk without CR is passed through. */
  push(chunk: Buffer): Buffer {
    let buf = this.carry ? Buffer.concat([Buffer.of(CR), chunk]) : chunk;
    this.carry = buf.length > 0 && buf[buf.length - 1] === CR;
    if (this.carry) buf = buf.subarray(0, -1);
    let cr = buf.indexOf(CR);
    if (cr < 0) return buf;
    const out = Buffer.allocUnsafe(buf.length);
    let o = 0;
    let start = 0;
    for (; cr >= 0; cr = buf.indexOf(CR, cr + 1)) {
      if (buf[cr + 1] !== LF) continue; // a bare CR stays
      o += buf.copy(out, o, start, cr);
      start = cr + 1;
    }
    o += buf.copy(out, o, start);
    return out.subarray(0, o);
  }
  end(): Buffer {
    return this.carry ? Buffer.from('\r', 'latin1') : Buffer.alloc(0);
  }
}

export interface Header {
  /** Name as written. */
  name: string;
  /** Whole header, folded lines included, ending with LF. */
  raw: string;
}

export interface ParsedMessage {
  headers: Header[];
  body: Buffer;
}

const HEADER_START = /^[\x21-\x39\x3b-\x7e]+:/;

/** Splits an LF message into headers and body (at the blank line, or at the first non-header line). */
export function parseMessage(data: Buffer): ParsedMessage {
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
    if (/^[ \t]/.test(line) && headers.length > 0) {
      (headers[headers.length - 1] as Header).raw += line + '\n';
    } else if (HEADER_START.test(line)) {
      headers.push({ name: line.slice(0, line.indexOf(':')), raw: line + '\n' });
    } else {
      break; // Not a header: the body starts here (Exim inserts the blank line).
    }
    pos = nl + 1;
  }
  return { headers, body: data.subarray(Math.min(pos, data.length)) };
}

export function headerValue(h: Header): string {
  return h.raw.slice(h.raw.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ').trim();
}

export function findHeader(headers: Header[], name: string): Header | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower);
}

export function qualify(address: string, domain: string): string {
  return address === '' || address.includes('@') ? address : `${address}@${domain}`;
}

type Parsed = ReturnType<typeof addressparser>[number];

/** addressparser reads a bare word (`root`) as a name; for us it is an unqualified address. */
function entryAddress(a: Parsed): { name: string; address: string } {
  const address = 'address' in a ? a.address ?? '' : '';
  if (address === '' && a.name && /^[^\s@<>()",;:]+$/.test(a.name)) return { name: '', address: a.name };
  return { name: a.name ?? '', address };
}

/**
 * Splits an address list at its top-level commas (outside quotes, comments, angle
 * brackets and groups). addressparser alone reads `root, Admin <a@b>` as one named
 * address, which would lose the bare `root`.
 */
function splitList(value: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quote = false;
  let angle = 0;
  let paren = 0;
  let group = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quote) {
      cur += c;
      if (c === '\\') cur += value[++i] ?? '';
      else if (c === '"') quote = false;
      continue;
    }
    if (c === '"') quote = true;
    else if (c === '(') paren++;
    else if (c === ')' && paren > 0) paren--;
    else if (paren === 0) {
      if (c === '<') angle++;
      else if (c === '>' && angle > 0) angle--;
      else if (c === ':' && angle === 0) group = true;
      else if (c === ';' && angle === 0) group = false;
      else if (c === ',' && angle === 0 && !group) {
        parts.push(cur);
        cur = '';
        continue;
      }
    }
    cur += c;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter(Boolean);
}

function parseList(value: string): Parsed[] {
  return splitList(value).flatMap((part) => addressparser(part));
}

/** The bare addresses of an address header (groups flattened). */
export function headerAddresses(value: string): string[] {
  const out: string[] = [];
  const walk = (list: Parsed[]) => {
    for (const a of list) {
      if ('group' in a && a.group) walk(a.group);
      else {
        const e = entryAddress(a);
        if (e.address) out.push(e.address);
      }
    }
  };
  walk(parseList(value));
  return out;
}

const ADDRESS_HEADERS = new Set(['from', 'to', 'cc', 'bcc', 'sender', 'reply-to']);

/** Rewrites an address header so that bare local parts get `@domain`; leaves it alone otherwise. */
function qualifyHeader(h: Header, domain: string): Header {
  const list = parseList(headerValue(h));
  let changed = false;
  const render = (a: Parsed): string => {
    if ('group' in a && a.group) return `${a.name}: ${a.group.map(render).join(', ')};`;
    const { name, address } = entryAddress(a);
    const q = qualify(address, domain);
    if (q !== address) changed = true;
    return name ? `${/^[\w .!#$%&'*+/=?^`{|}~-]*$/.test(name) ? name : JSON.stringify(name)} <${q}>` : q;
  };
  const value = list.map(render).join(', ');
  return changed ? { name: h.name, raw: `${h.name}: ${value}\n` } : h;
}

export interface Submission {
  id: string;
  now: number;
  hostname: string;
  qualifyDomain: string;
  sender: string;
  /** Envelope recipients, if given (SMTP, or sendmail's arguments). */
  recipients: string[];
  /** How it came: `local` (sendmail) or the SMTP protocol name. */
  protocol: string;
  /** Local submitter's login (sendmail). */
  user?: string;
  /** Full name for a generated From: (sendmail -F). */
  fullName?: string;
  client?: { name?: string; ip: string; helo?: string };
  /** sendmail -t: take recipients from To/Cc/Bcc and remove Bcc. */
  extractRecipients?: boolean;
}

export interface Cleaned {
  headers: string;
  body: Buffer;
  recipients: string[];
  messageIdHeader?: string;
}

/** Applies the local-submission fix-ups; throws CleanupError for unusable input. */
export class CleanupError extends Error {}

export function cleanup(data: Buffer, sub: Submission): Cleaned {
  const parsed = parseMessage(data);
  let headers = parsed.headers.map((h) =>
    ADDRESS_HEADERS.has(h.name.toLowerCase()) && !h.raw.includes('\0') ? qualifyHeader(h, toBytes(sub.qualifyDomain)) : h);

  let recipients = sub.recipients.map((r) => qualify(r, sub.qualifyDomain));
  if (sub.extractRecipients) {
    // As Exim and sendmail 8: addresses also on the command line are removed from the header list.
    const minus = new Set(recipients.map((r) => r.toLowerCase()));
    const found: string[] = [];
    for (const h of headers) {
      if (!/^(to|cc|bcc)$/i.test(h.name)) continue;
      for (const a of headerAddresses(headerValue(h))) {
        const q = qualify(fromBytes(a), sub.qualifyDomain);
        if (!minus.has(q.toLowerCase()) && !found.some((f) => f.toLowerCase() === q.toLowerCase())) found.push(q);
      }
    }
    recipients = found;
    headers = headers.filter((h) => h.name.toLowerCase() !== 'bcc');
  }

  const date = rfc5322Date(sub.now);
  const senderText = sub.sender === '' ? '<>' : `<${sub.sender}>`;
  let received: string;
  if (sub.client) {
    const c = sub.client;
    const from = c.name ? `${c.name} ([${c.ip}]${c.helo ? ` helo=${c.helo}` : ''})` : `[${c.ip}]${c.helo ? ` (helo=${c.helo})` : ''}`;
    const forLine = recipients.length === 1 ? `\n\tfor ${recipients[0]}` : '';
    received = `Received: from ${from}\n\tby ${sub.hostname} with ${sub.protocol} (postern ${VERSION})\n` +
      `\t(envelope-from ${senderText})\n\tid ${sub.id}${forLine};\n\t${date}\n`;
  } else {
    received = `Received: from ${sub.user ?? 'unknown'} by ${sub.hostname} with ${sub.protocol} (postern ${VERSION})\n` +
      `\t(envelope-from ${senderText})\n\tid ${sub.id};\n\t${date}\n`;
  }

  const added: Header[] = [];
  let messageIdHeader: string | undefined;
  const mid = findHeader(headers, 'message-id');
  if (mid) {
    messageIdHeader = fromBytes(headerValue(mid)).replace(/^<|>$/g, '') || undefined;
  } else {
    added.push({ name: 'Message-Id', raw: toBytes(`Message-Id: <E${sub.id}@${sub.hostname}>\n`) });
  }
  if (!findHeader(headers, 'from')) {
    const addr = sub.sender || `${sub.user ?? 'MAILER-DAEMON'}@${sub.qualifyDomain}`;
    const name = sub.fullName;
    const value = name ? `${/^[\w .'-]*$/.test(name) ? name : JSON.stringify(name)} <${addr}>` : addr;
    added.push({ name: 'From', raw: toBytes(`From: ${value}\n`) });
  }
  if (!findHeader(headers, 'date')) added.push({ name: 'Date', raw: `Date: ${date}\n` });

  const text = toBytes(received) + [...headers, ...added].map((h) => h.raw).join('');
  return { headers: text, body: parsed.body, recipients, ...(messageIdHeader ? { messageIdHeader } : {}) };
}
