// log/mainlog.ts: renders events as Exim main-log lines (or JSON lines) and appends
// them to log.file. Also renders the per-message log text (-Mvl), which is the same
// line without the message ID. The only place that knows the line formats.
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MtaEvent } from '../core/events.js';
import { groupByName } from '../core/users.js';
import type { HostLabel, SessionInfo } from '../core/types.js';
import { fellBackText, reasonText, replyText } from './outcome-text.js';

export type LogFormat = 'exim' | 'json';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Exim's timestamp: local time, `YYYY-MM-DD HH:MM:SS`. */
export function logTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `name [ip]`, with `:port` after the bracket when not 25 (Exim's outgoing_port). */
export function hostField(h: HostLabel): string {
  return `${h.name} [${h.ip}]${h.port === 25 ? '' : `:${h.port}`}`;
}

function clientField(name: string | undefined, helo: string | undefined, ip: string | undefined): string {
  // Exim: H=name [ip] when the name is known, H=(helo) [ip] when only the HELO is.
  const who = name ? (helo && helo !== name ? `${name} (${helo})` : name) : helo ? `(${helo})` : '';
  return `H=${who}${who ? ' ' : ''}[${ip ?? ''}]`;
}

/**
 * Exim's string_printing(): a control character in client-supplied text (HELO,
 * addresses, Message-ID, a hub's reply) must not forge a log line or reach an admin's
 * terminal as an escape sequence. `\n`, `\r`, `\b`, `\v`, `\f`, `\t` by name, every
 * other C0 control, DEL and C1 control as three octal digits (`\033`); U+2028/U+2029
 * (line breaks to some viewers) as `\u2028`. Printable Unicode (IDN, UTF-8 local parts) stays.
 */
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\b': '\\b', '\v': '\\v', '\f': '\\f', '\t': '\\t' };
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    if (code > 0xff) return `\\u${code.toString(16)}`;
    return NAMED[c] ?? `\\${code.toString(8).padStart(3, '0')}`;
  });
}

/** JSON.stringify leaves DEL, C1 controls and U+2028/9 raw: escape them too, as \uXXXX. */
const JSON_UNSAFE = /[\x7f-\x9f\u2028\u2029]/g;
function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The text after "time ID " on a main-log line, with its control characters escaped. */
export function renderText(e: MtaEvent): string {
  return printable(rawText(e));
}

/** Why a message was frozen on arrival (a `[limits]` rate), as -Mwhy, -Mvl and the main log say it. */
export function limitText(e: { limit: string; key: string; rate: string }): string {
  return `frozen: sender over limits.${e.limit} (${e.key}: ${e.rate})`;
}

function rawText(e: MtaEvent): string {
  switch (e.type) {
    case 'received': {
      const parts = [`<= ${e.sender || '<>'}`];
      if (e.bounceOf) parts.push(`R=${e.bounceOf}`);
      if (e.clientIp) parts.push(clientField(e.clientName, e.helo, e.clientIp));
      if (e.user) parts.push(`U=${e.user}`);
      parts.push(`P=${e.protocol}`, `S=${e.size}`);
      if (e.messageIdHeader) parts.push(`id=${e.messageIdHeader}`);
      return parts.join(' ');
    }
    case 'delivered':
      return `${e.first ? '=>' : '->'} ${rcptField(e)} R=${e.router} T=${e.transport} H=${hostField(e.host)}${sessionFields(e.session)} C="${replyText(e.reply).replace(/"/g, "'")}"`;
    case 'deferred': {
      const r = reasonText(e.result, e.rcpt, e.sender);
      return `== ${rcptField(e)} R=${e.router} T=${e.transport} defer (${r.errno})${e.host ? ` H=${hostField(e.host)}` : ''}: ${r.text}`;
    }
    case 'failed':
      return `** ${rcptField(e)} R=${e.router} T=${e.transport}${e.host ? ` H=${hostField(e.host)}` : ''}: ${reasonText(e.result, e.rcpt, e.sender).text}`;
    case 'hostError':
      return `H=${hostField(e.host)} ${e.fellBack ? fellBackText(e.result) : reasonText(e.result).text}`;
    case 'completed':
      return 'Completed';
    case 'frozen':
      return e.reason === 'bounce' ? 'Frozen (delivery error message)'
        : `Frozen (retry timeout exceeded for ${e.rcpt}: ${reasonText(e.result, e.rcpt, e.sender).text})`;
    case 'admin':
      return `${e.action} by ${e.user}`;
    case 'limited':
      return `${limitText(e)}; its mail is accepted and frozen while over the limit, logged again only after ${e.rate.slice(e.rate.indexOf('/') + 1)} under it (review, then postern-qgrep -z --thaw)`;
    case 'rejected': {
      const who = clientField(e.clientName, e.helo, e.clientIp);
      const from = e.sender !== undefined ? ` F=<${e.sender}>` : '';
      const what = e.stage === 'RCPT' ? `rejected RCPT <${e.rcpt ?? ''}>` :
        e.stage === 'MAIL' ? `rejected MAIL FROM:<${e.sender ?? ''}>` :
        e.stage === 'DATA' ? 'rejected after DATA' : 'rejected connection';
      return `${who}${from} ${what}: ${e.reason}`;
    }
    case 'notice':
      return e.text;
    case 'hostBack':
      return `H=${hostField(e.host)} is back: ${e.due} messages due now`;
    case 'smtpError': {
      // Exim's wording for each (smtp_in.c); "from" names the host without H=.
      const who = clientField(undefined, e.helo, e.clientIp);
      const cmd = `"${e.command ?? ''}"`;
      switch (e.kind) {
        case 'syntax': return `SMTP syntax error in ${cmd} ${who} ${e.reason}`;
        case 'protocol': return `SMTP protocol error in ${cmd} ${who} ${e.reason}`;
        case 'dropped': return `SMTP call from ${who.slice(2)} dropped: ${e.reason}${e.command ? ` (last command was ${cmd})` : ''}`;
        case 'timeout': return `SMTP command timeout on connection from ${who.slice(2)}`;
        case 'refused': return `Connection from ${who.slice(2)} refused: ${e.reason}`;
      }
    }
  }
}

/** A recipient as Exim logs it: a redirected one as `new <original>` (deliver.c, the parent in angle brackets). */
function rcptField(e: { rcpt: string; sentAs?: string }): string {
  return e.sentAs !== undefined ? `${e.sentAs} <${e.rcpt}>` : e.rcpt;
}

/** Exim's default tls_cipher and Debian's tls_certificate_verified selectors, then A= (the authenticator). */
function sessionFields(s: SessionInfo | undefined): string {
  if (!s) return '';
  const tls = s.tls ? ` X=${s.tls.version}:${s.tls.cipher}:${s.tls.bits} CV=${s.tls.verified ? 'yes' : 'no'}` : '';
  return `${tls}${s.auth ? ` A=${s.auth}` : ''}`;
}

function eventId(e: MtaEvent): string | undefined {
  return 'id' in e ? e.id : undefined;
}

/**
 * The hub's queue ID from its 250 after the data, so one search follows a message from
 * satellite to hub: Postfix's "queued as 4dL9Xk1Q2Jz7", Exim's "OK id=1tGx2B-000Abc-Xy";
 * undefined for any other wording.
 */
export function hubQueueId(text: string): string | undefined {
  return /\bqueued as ([A-Za-z0-9]+)\b/.exec(text)?.[1] ?? /(?:^|\s)id=([A-Za-z0-9][A-Za-z0-9-]*)\b/.exec(text)?.[1];
}

/** JSON lines keep the data and add Exim's words for it (`reason`, and `errno` for a deferral). */
function jsonWords(e: MtaEvent): Record<string, unknown> {
  if (e.type === 'deferred' || e.type === 'failed') {
    const r = reasonText(e.result, e.rcpt, e.sender);
    return e.type === 'deferred' ? { reason: r.text, errno: r.errno } : { reason: r.text };
  }
  if (e.type === 'hostError') return { reason: e.fellBack ? fellBackText(e.result) : reasonText(e.result).text };
  if (e.type === 'delivered') {
    const hub = hubQueueId(e.reply.text);
    return { confirmation: replyText(e.reply), ...(hub ? { hub_queue_id: hub } : {}) };
  }
  return {};
}

export function renderLine(e: MtaEvent, now: number, format: LogFormat): string {
  if (format === 'json') return jsonLine({ time: new Date(now).toISOString(), ...e, ...jsonWords(e) }) + '\n';
  const id = eventId(e);
  return `${logTime(now)} ${id ? `${printable(id)} ` : ''}${renderText(e)}\n`;
}

/**
 * Opens log.file to append. Root (a daemon or command run without \`user\`) never writes
 * through a link nor into a file with another name or owner: someone who may write the
 * folder could have made log.file a hard link to a file of root's. A log root makes is
 * 0640, group adm where that group exists (Debian's convention: adm reads the logs).
 */
function openLogFile(file: string): number {
  mkdirSync(dirname(file), { recursive: true });
  if ((process.geteuid?.() ?? 1) !== 0) return openSync(file, 'a');
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_CREAT | constants.O_EXCL, 0o640);
    try {
      fchownSync(fd, 0, groupByName('adm') ?? 0);
      fchmodSync(fd, 0o640);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  fd = openSync(file, flags);
  const st = fstatSync(fd);
  const wrong = !st.isFile() ? 'is not a file' : st.nlink !== 1 ? `has ${st.nlink} names (hard links)` : st.uid !== 0 ? `belongs to uid ${st.uid}` : '';
  if (wrong) {
    closeSync(fd);
    throw new Error(`root does not write to it: it ${wrong}`);
  }
  return fd;
}

/** How often at most a log file that cannot be written is reported on stderr. */
const REPORT_EVERY = 60_000;

/**
 * Appends rendered lines to the main log. The lines of one event-loop turn are written
 * together, with one write() to a file opened O_APPEND, after the turn: Exim's log is
 * written with write() too, and a small append to the page cache is cheaper than a trip
 * through the thread pool for every line. Order is kept; nothing is synced.
 */
export class MainLog {
  private fd: number | undefined;
  private pending: string[] = [];
  private scheduled = false;
  private reported = -Infinity;
  constructor(private readonly file: string, private readonly format: LogFormat, private readonly now: () => number) {}

  write(e: MtaEvent): void {
    this.pending.push(renderLine(e, this.now(), this.format));
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes what is pending now. A failure (a full disk) is told on stderr at most once a minute; those lines are lost. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = Buffer.from(this.pending.length === 1 ? this.pending[0] as string : this.pending.join(''));
    this.pending = [];
    try {
      this.fd ??= openLogFile(this.file);
      for (let n = 0; n < text.length;) n += writeSync(this.fd, text, n);
    } catch (err) {
      const t = Date.now();
      if (t - this.reported >= REPORT_EVERY) {
        this.reported = t;
        process.stderr.write(`postern: cannot write ${this.file}: ${(err as Error).message}\n`);
      }
    }
  }

  /**
   * For short-lived commands: append at once, so the line is there when we exit. A
   * user who may not write the log (sendmail from cron) gets no complaint on stderr,
   * which cron would mail: the message is spooled, and the daemon logs its delivery.
   */
  writeSync(e: MtaEvent): boolean {
    try {
      const fd = openLogFile(this.file);
      try {
        const text = Buffer.from(renderLine(e, this.now(), this.format));
        for (let n = 0; n < text.length;) n += writeSync(fd, text, n);
      } finally {
        closeSync(fd);
      }
      return true;
    } catch {
      return false;
    }
  }

  /** After logrotate moved the file: the next line opens log.file anew. */
  reopen(): void {
    this.flush();
    this.closeFile();
  }

  close(): Promise<void> {
    this.flush();
    this.closeFile();
    return Promise.resolve();
  }

  private closeFile(): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch { /* closed is closed */ }
  }
}
