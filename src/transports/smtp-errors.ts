// transports/smtp-errors.ts: the one place that maps nodemailer's SMTPConnection
// errors and per-recipient rejections to postern's outcomes, by scope (host, message,
// recipient), cause and phase, as Postfix's smtp_trouble.c does. The mapping is the
// table ERROR_TABLE, read top to bottom, first match wins. No sentences are built
// here: log/outcome-text.ts renders what this returns. Unknown means temporary.
import type { Cause, Phase, RemoteReply, Trouble } from '../core/types.js';

/** The error shape nodemailer's SMTPConnection produces (lib/errors). */
export interface SmtpClientError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpClientError[];
  errno?: number;
  syscall?: string;
  /** nodemailer's kind of timeout: CONNECT_TIMEOUT, GREETING_TIMEOUT, UPGRADE_TIMEOUT, SOCKET_TIMEOUT. */
  timeoutType?: string;
}

export type Classified =
  /** The host is unusable: try the next one; the recipients are untouched. */
  | { scope: 'host'; trouble: Trouble }
  /** The message was refused on this host (MAIL, DATA, end of data): all recipients share it. */
  | { scope: 'message'; permanent: boolean; trouble: Trouble }
  /** Every recipient was refused at RCPT: each has its own reply in `rejectedErrors`. */
  | { scope: 'recipients' };

export function oneLine(s: string | undefined): string {
  return (s ?? '').replace(/\r?\n/g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * A server's reply as data. A multi-line reply becomes one line: the code (and the
 * enhanced code, when repeated) of each continuation line is dropped. Without an
 * enhanced code in the text, it is derived from the basic code as class.0.0.
 */
export function parseReply(response: string, fallbackCode = 451): RemoteReply {
  const lines = response.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const code = Number(/^(\d{3})/.exec(lines[0] ?? '')?.[1] ?? fallbackCode);
  const parts = lines.map((l) => l.replace(/^\d{3}(?:[ -]|$)/, ''));
  const enhanced = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/.exec(parts[0] ?? '')?.[1];
  const text = parts.map((p, i) => (i > 0 && enhanced && p.startsWith(`${enhanced} `) ? p.slice(enhanced.length + 1) : p))
    .map((p, i) => (i === 0 && enhanced ? p.slice(enhanced.length).trimStart() : p));
  const one = oneLine(text.join(' '));
  return enhanced ? { code, enhanced, text: one } : { code, enhanced: `${Math.floor(code / 100)}.0.0`, text: one, derived: true };
}

/** The command nodemailer names on an error, as a phase of the session. */
function phaseOf(command: string | undefined): Phase | undefined {
  if (!command || command === 'CONN') return 'greeting';
  if (/^(EHLO|HELO|LHLO)$/.test(command)) return 'ehlo';
  if (command === 'STARTTLS') return 'starttls';
  if (command.startsWith('AUTH')) return 'auth';
  if (command.startsWith('MAIL')) return 'mail';
  if (command.startsWith('RCPT')) return 'rcpt';
  if (command === 'DATA') return 'data';
  return undefined;
}

function timeoutPhase(e: SmtpClientError): Phase | undefined {
  switch (e.timeoutType) {
    case 'CONNECT_TIMEOUT': return 'connect';
    case 'GREETING_TIMEOUT': return 'greeting';
    case 'UPGRADE_TIMEOUT': return 'starttls';
    default: return undefined;
  }
}

/** The error text with the cause's (a system error's code is often only there). */
function fullText(e: SmtpClientError): string {
  return `${e.message} ${(e as { cause?: Error }).cause?.message ?? ''} ${e.code ?? ''}`;
}

const replyOf = (e: SmtpClientError): RemoteReply | undefined => (e.responseCode && e.response ? parseReply(e.response) : undefined);
const hasCode = (e: SmtpClientError) => !!e.responseCode;

interface Row {
  /** What the row recognises, in words. */
  when: string;
  match: (e: SmtpClientError) => boolean;
  scope: 'host' | 'message' | 'recipients';
  cause: Cause;
  /** The phase, when the row fixes it; else from nodemailer's command. */
  phase?: Phase | ((e: SmtpClientError) => Phase | undefined);
  /** 'code': permanent for a 5xx reply; true: always; false: never (message scope only). */
  permanent?: 'code' | boolean;
  /** A short reason kept when there is no reply to show. */
  note?: (e: SmtpClientError) => string | undefined;
}

/**
 * nodemailer error → scope, cause, phase. A wrong password or a TLS problem on the
 * satellite is the host's (it must not bounce everyone's mail); a refusal of the
 * message itself is shared by all its recipients; RCPT rejections are per recipient.
 */
const ERROR_TABLE: Row[] = [
  { when: 'our own message stream failed (ESTREAM: removed meanwhile)', match: (e) => e.code === 'ESTREAM',
    scope: 'message', cause: 'local', permanent: false, note: (e) => `spool read error: ${oneLine(e.message)}` },
  { when: 'every recipient refused at RCPT', match: (e) => e.command === 'RCPT TO' && (e.rejectedErrors?.length ?? 0) > 0,
    scope: 'recipients', cause: 'reply', phase: 'rcpt' },
  { when: 'refused by the client library before a byte went out (over SIZE, bad address)',
    match: (e) => !hasCode(e) && (e.code === 'EENVELOPE' || e.code === 'EMESSAGE'),
    scope: 'message', cause: 'local', permanent: true, note: (e) => `message refused before sending: ${oneLine(e.message)}` },
  { when: 'AUTH failed (EAUTH; a connection lost during AUTH counts as one)', match: (e) => e.code === 'EAUTH',
    scope: 'host', cause: 'auth', phase: 'auth', note: (e) => (replyOf(e) ? undefined : oneLine(e.message)) },
  { when: 'TLS failed (ETLS, or a certificate/TLS/SSL error without a reply)',
    match: (e) => e.code === 'ETLS' || (/certificate|TLS|SSL/i.test(e.message) && !hasCode(e)),
    scope: 'host', cause: 'tls', phase: 'starttls', note: (e) => oneLine(e.message) },
  { when: 'a reply to MAIL FROM', match: (e) => hasCode(e) && /^MAIL/.test(e.command ?? ''),
    scope: 'message', cause: 'reply', phase: 'mail', permanent: 'code' },
  { when: 'a reply to DATA', match: (e) => hasCode(e) && e.command === 'DATA' && e.code === 'EENVELOPE',
    scope: 'message', cause: 'reply', phase: 'data', permanent: 'code' },
  { when: 'a reply after the final dot', match: (e) => hasCode(e) && e.code === 'EMESSAGE',
    scope: 'message', cause: 'reply', phase: 'dot', permanent: 'code' },
  { when: 'any other reply (greeting, EHLO, STARTTLS): the host is not usable now', match: hasCode,
    scope: 'host', cause: 'reply', phase: (e) => phaseOf(e.command) },
  { when: 'connection refused', match: (e) => /ECONNREFUSED/.test(fullText(e)),
    scope: 'host', cause: 'refused', phase: 'connect' },
  { when: 'a timeout (connect, greeting, TLS upgrade or a silent hub)', match: (e) => e.code === 'ETIMEDOUT' || /ETIMEDOUT|timeout/i.test(fullText(e)),
    scope: 'host', cause: 'timeout', phase: timeoutPhase },
  { when: 'no route to the host', match: (e) => /EHOSTUNREACH|ENETUNREACH/.test(fullText(e)),
    scope: 'host', cause: 'unreachable', phase: 'connect' },
  { when: 'the connection was closed or reset', match: (e) => /ECONNRESET|closed unexpectedly|EPIPE/i.test(fullText(e)),
    scope: 'host', cause: 'lost_connection' },
  { when: 'anything else: the host, temporarily, with the library\'s words', match: () => true,
    scope: 'host', cause: 'lost_connection', note: (e) => oneLine(e.message) },
];

/** Classifies an error from connect/login/send by the first matching row of ERROR_TABLE. */
export function classifyError(err: SmtpClientError): Classified {
  const row = ERROR_TABLE.find((r) => r.match(err)) as Row;
  if (row.scope === 'recipients') return { scope: 'recipients' };
  const phase = typeof row.phase === 'function' ? row.phase(err) : row.phase;
  const reply = replyOf(err);
  const note = row.note?.(err);
  const trouble: Trouble = { cause: row.cause, ...(phase ? { phase } : {}), ...(reply ? { reply } : {}), ...(note ? { note } : {}) };
  if (row.scope === 'host') return { scope: 'host', trouble };
  const permanent = row.permanent === 'code' ? (err.responseCode ?? 0) >= 500 : row.permanent === true;
  return { scope: 'message', permanent, trouble };
}

/** A RCPT rejection: permanent for 5xx, temporary otherwise. */
export function classifyRejection(err: SmtpClientError): { permanent: boolean; trouble: Trouble } {
  const code = err.responseCode ?? 451;
  const reply = parseReply(err.response || `${code} ${oneLine(err.message)}`, code);
  return { permanent: code >= 500, trouble: { cause: 'reply', phase: 'rcpt', reply } };
}

/** Trouble while connecting (greeting, EHLO, STARTTLS, AUTH, sockets) is always the host's. */
export function connectTrouble(err: SmtpClientError): Trouble {
  const c = classifyError(err);
  return c.scope === 'recipients' ? { cause: 'lost_connection', note: oneLine(err.message) } : c.trouble;
}
