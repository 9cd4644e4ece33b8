// transports/smtp-errors.ts: the one place that maps nodemailer's SMTPConnection
// errors and per-recipient rejections to postern's outcomes, by scope (host, message,
// recipient) and severity, as Postfix's smtp_trouble.c does. Unknown means temporary.

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
}

export type Classified =
  /** The host is unusable: try the next one; the recipients are untouched. */
  | { scope: 'host'; reason: string; errno: number }
  /** The message was refused on this host (MAIL, DATA, end of data): all recipients share it. */
  | { scope: 'message'; permanent: boolean; reason: string; errno: number }
  /** Every recipient was refused at RCPT: each has its own reply in `rejectedErrors`. */
  | { scope: 'recipients' };

function oneLine(s: string | undefined): string {
  return (s ?? '').replace(/\r?\n/g, ' ').replace(/\s+/g, ' ').trim();
}

function socketReason(err: SmtpClientError): { reason: string; errno: number } {
  const text = `${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`;
  if (/ECONNREFUSED/.test(text)) return { reason: 'Connection refused', errno: 111 };
  if (/ETIMEDOUT|timeout/i.test(text) || err.code === 'ETIMEDOUT') return { reason: 'Connection timed out', errno: 110 };
  if (/EHOSTUNREACH|ENETUNREACH/.test(text)) return { reason: 'No route to host', errno: 113 };
  if (/ECONNRESET|closed unexpectedly|EPIPE/i.test(text)) return { reason: 'Remote host closed connection', errno: -18 };
  return { reason: oneLine(err.message), errno: -1 };
}

/** Classifies an error from connect/login/send. */
export function classifyError(err: SmtpClientError, sender: string): Classified {
  const command = err.command ?? '';
  const code = err.responseCode;
  const reply = oneLine(err.response);
  if (err.code === 'ESTREAM') {
    // Our side could not read the message (removed meanwhile): nothing to do with the host.
    return { scope: 'message', permanent: false, reason: `spool read error: ${oneLine(err.message)}`, errno: -1 };
  }
  if (command === 'RCPT TO' && err.rejectedErrors && err.rejectedErrors.length > 0) return { scope: 'recipients' };
  if (!code && (err.code === 'EENVELOPE' || err.code === 'EMESSAGE')) {
    // Refused by the client library before a byte went out (larger than the hub's
    // SIZE, an address it cannot send): no other host would take it either.
    return { scope: 'message', permanent: true, reason: `message refused before sending: ${oneLine(err.message)}`, errno: -1 };
  }
  if (err.code === 'EAUTH') {
    // A wrong password on the satellite must not bounce everyone's mail: a host error.
    return { scope: 'host', reason: `authentication failed${reply ? `: ${reply}` : `: ${oneLine(err.message)}`}`, errno: -42 };
  }
  if (err.code === 'ETLS' || /certificate|TLS|SSL/i.test(err.message) && !code) {
    return { scope: 'host', reason: `TLS session failure: ${oneLine(err.message)}`, errno: -37 };
  }
  if (code && /^MAIL/.test(command)) {
    return { scope: 'message', permanent: code >= 500, reason: `SMTP error from remote mail server after MAIL FROM:<${sender}>: ${reply}`, errno: -45 };
  }
  if (code && command === 'DATA' && err.code === 'EENVELOPE') {
    return { scope: 'message', permanent: code >= 500, reason: `SMTP error from remote mail server after DATA: ${reply}`, errno: -46 };
  }
  if (code && err.code === 'EMESSAGE') {
    return { scope: 'message', permanent: code >= 500, reason: `SMTP error from remote mail server after end of data: ${reply}`, errno: -46 };
  }
  if (code) {
    // Greeting, EHLO, STARTTLS and the like: the host is not usable now.
    return { scope: 'host', reason: `SMTP error from remote mail server after ${command || 'initial connection'}: ${reply}`, errno: -1 };
  }
  return { scope: 'host', ...socketReason(err) };
}

/** A RCPT rejection: permanent for 5xx, temporary otherwise. */
export function classifyRejection(err: SmtpClientError, rcpt: string): { permanent: boolean; reason: string; errno: number } {
  const code = err.responseCode ?? 451;
  return {
    permanent: code >= 500,
    reason: `SMTP error from remote mail server after RCPT TO:<${rcpt}>: ${oneLine(err.response) || oneLine(err.message)}`,
    errno: -44,
  };
}

/** Trouble while connecting (greeting, EHLO, STARTTLS, AUTH, sockets) is always the host's. */
export function connectTrouble(err: SmtpClientError): { reason: string; errno: number } {
  const c = classifyError(err, '');
  return c.scope === 'recipients' ? { reason: oneLine(err.message), errno: -1 } : { reason: c.reason, errno: c.errno };
}
