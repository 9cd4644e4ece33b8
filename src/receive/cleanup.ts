// receive/cleanup.ts: what every submission goes through before the spool, shared by
// SMTP and sendmail (Postfix's cleanup), once header-block.ts has split it: address
// qualification, the header fix-ups Exim applies to local submissions (Received,
// Message-ID, Date, From), and recipients from headers for `sendmail -t`.
// Headers are handled as byte strings (latin1: one char per byte), so whatever bytes a
// client sent (UTF-8, Latin-1, junk) reach the smarthost unchanged; text we add is
// UTF-8, converted with toBytes().
import addressparser from 'nodemailer/lib/addressparser';
import { rfc5322Date } from '../core/date.js';
import { version } from '../core/version.js';
import { isRoutableAddress } from '../core/address.js';
import { CommandError, EX } from '../core/exit.js';
import { gecosName } from '../core/users.js';
import { findHeader, headerValue, parseMessage, type Header } from './header-block.js';
import { findAddresses, foldHeader, mapAddresses, PREFERRED_LINE } from '../rewrite/address-list.js';

export { rfc5322Date };


/** A JS (UTF-16) string as a byte string holding its UTF-8 encoding. */
function toBytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}
/** A byte string (as headers are held) back to text, reading it as UTF-8. */
function fromBytes(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
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

/**
 * A display name as RFC 5322 writes it: bare when it is atoms and spaces, else a
 * quoted-string (only `"` and `\` escaped: JSON's `\t` would read back as "t"). A line
 * break would start a header of its own: it becomes a space.
 */
function phrase(name: string): string {
  const flat = name.replace(/[\r\n]+/g, ' ');
  return /^[\w .!#$%&'*+/=?^`{|}~-]*$/.test(flat) ? flat : `"${flat.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Rewrites an address header so that bare local parts get `@domain`, in place: display
 * names, comments (`root (Cron Daemon)`), quoting and groups stay as written. Left
 * alone when malformed or when an address would still not be routable.
 */
function qualifyHeader(h: Header, domain: string): Header {
  const colon = h.raw.indexOf(':');
  const end = h.raw.endsWith('\n') ? h.raw.length - 1 : h.raw.length;
  const value = h.raw.slice(colon + 1, end);
  const spans = findAddresses(value);
  if (!spans || !spans.some((s) => !s.address.includes('@'))) return h;
  if (spans.some((s) => !isRoutableAddress(fromBytes(qualify(s.address, domain))))) return h;
  const out = mapAddresses(value, (a) => qualify(a, domain));
  if (out === undefined) return h;
  const raw = `${h.raw.slice(0, colon + 1)}${out}\n`;
  return { name: h.name, raw: raw.split('\n').some((l) => l.length > PREFERRED_LINE) ? foldHeader(raw) : raw };
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
  /** Where the submitter's full name is looked up when -F gave none (default /etc/passwd). */
  passwd?: string;
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

/** Unusable input (sendmail exits 65 with the message). */
export class CleanupError extends CommandError {
  constructor(message: string) {
    super(message, EX.DATAERR);
  }
}

export function cleanup(data: Buffer, sub: Submission): Cleaned {
  const parsed = parseMessage(data);
  return { ...cleanupHeaders(parsed.headers, sub), body: parsed.body };
}

/** The fix-ups on the header block alone, for a message whose body streams past (SMTP). */
export function cleanupHeaders(parsedHeaders: Header[], sub: Submission): Omit<Cleaned, 'body'> {
  if (sub.extractRecipients) {
    for (const h of parsedHeaders) {
      if (!/^(to|cc|bcc)$/i.test(h.name)) continue;
      // addressparser drops a NUL (or another control) silently, which would send the
      // message to an address nobody wrote: refuse the message instead.
      const bad = /[\x00-\x08\x0a-\x1f\x7f]/.exec(headerValue(h))?.[0];
      if (bad !== undefined) {
        const what = bad === '\0' ? 'a NUL' : `a control character (\\${bad.charCodeAt(0).toString(8).padStart(3, '0')})`;
        throw new CleanupError(`the ${fromBytes(h.name)}: header holds ${what}, so its recipients cannot be read`);
      }
    }
  }
  // A bare CR is a line end to the transport (and to many hubs): inside a header it
  // would split the header there, or end the header block early. It becomes a space.
  let headers = parsedHeaders.map((h) => (h.raw.includes('\r') ? { name: h.name, raw: h.raw.replace(/\r/g, ' ') } : h)).map((h) =>
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
    received = `Received: from ${from}\n\tby ${sub.hostname} with ${sub.protocol} (postern ${version()})\n` +
      `\t(envelope-from ${senderText})\n\tid ${sub.id}${forLine};\n\t${date}\n`;
  } else {
    received = `Received: from ${sub.user ?? 'unknown'} by ${sub.hostname} with ${sub.protocol} (postern ${version()})\n` +
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
    // Exim: without -F, the name of the user's passwd entry, when the From: is the user's own address.
    const own = !sub.client && sub.user !== undefined && addr.toLowerCase() === `${sub.user}@${sub.qualifyDomain}`.toLowerCase();
    const name = sub.fullName ?? (own ? gecosName(sub.user as string, sub.passwd) : undefined);
    const value = name ? `${phrase(name)} <${addr}>` : addr;
    added.push({ name: 'From', raw: toBytes(`From: ${value}\n`) });
  }
  if (!findHeader(headers, 'date')) added.push({ name: 'Date', raw: `Date: ${date}\n` });

  const text = toBytes(received) + localFromCheck([...headers, ...added], sub).map((h) => h.raw).join('');
  return { headers: text, recipients, ...(messageIdHeader ? { messageIdHeader } : {}) };
}

/**
 * Exim's local_from_check (with local_sender_retain false), for a local submission by
 * an untrusted user: a Sender: of theirs is removed, and unless the From: (theirs or
 * the one added above) is their own address alone (any case), `Sender:
 * login@qualify_domain` is added, so the message says who really sent it. Trusted, as Exim's trusted users: root
 * and the user this process runs as (the daemon's user: the pickup runs in the daemon).
 */
function localFromCheck(headers: Header[], sub: Submission): Header[] {
  const login = sub.user;
  if (login === undefined || sub.client || login === 'root') return headers;
  // Compared without regard to case, as Exim's strcmpic does.
  const own = (a: string) => a.toLowerCase() === toBytes(`${login}@${sub.qualifyDomain}`).toLowerCase();
  const kept = headers.filter((h) => h.name.toLowerCase() !== 'sender');
  const from = findHeader(kept, 'from');
  const addresses = from ? headerAddresses(headerValue(from)).map((a) => qualify(a, toBytes(sub.qualifyDomain))) : [];
  const theirs = addresses.length === 1 && own(addresses[0] as string);
  // Asked last: most messages need no change, and sendmail's own check runs as the user.
  if ((theirs && kept.length === headers.length) || login === processLogin()) return headers;
  return theirs ? kept : [...kept, { name: 'Sender', raw: toBytes(`Sender: ${login}@${sub.qualifyDomain}\n`) }];
}

/** The login of this process's effective user (getpwuid; the uid as a number when it has no entry). */
function processLogin(): string {
  const uid = process.geteuid?.() ?? -1;
  try {
    return process.getBuiltinModule('node:os').userInfo().username;
  } catch {
    return String(uid);
  }
}
