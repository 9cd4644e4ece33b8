// log/outcome-text.ts: Exim's words for a delivery result. A transport reports data
// (cause, phase, reply: core/types.ts Trouble); this turns it into the sentence and the
// errno-ish number Exim prints in `defer (N): sentence`, for the main log, the
// per-message log, -bp --json, bounces and delay warnings. The only place that knows them.
import type { Phase, RemoteReply, Trouble } from '../core/types.js';

/** A reply as the hub sent it, on one line: `550 5.1.1 text` (no enhanced code if the hub gave none). */
export function replyText(r: RemoteReply): string {
  return [String(r.code), r.derived ? '' : r.enhanced, r.text].filter(Boolean).join(' ');
}

/** What Exim names after "SMTP error from remote mail server after". */
function command(phase: Phase | undefined, rcpt: string, sender: string): string {
  switch (phase) {
    case 'mail': return `MAIL FROM:<${sender}>`;
    case 'rcpt': return `RCPT TO:<${rcpt}>`;
    case 'data': return 'DATA';
    case 'dot': return 'end of data';
    case 'ehlo': return 'EHLO';
    case 'starttls': return 'STARTTLS';
    case 'auth': return 'AUTH';
    default: return 'initial connection';
  }
}

/** Exim's errno for an SMTP error reply, by the command it answered. */
const REPLY_ERRNO: Partial<Record<Phase, number>> = { rcpt: -44, mail: -45, data: -46, dot: -46 };

/**
 * The sentence and errno of a result: "Connection refused" (111), "Connection timed
 * out" (110), "No route to host" (113), "Remote host closed connection" (-18), "TLS
 * session failure: ..." (-37), "authentication failed: 535 ..." (-42), "SMTP error
 * from remote mail server after RCPT TO:<a@b>: 550 ..." (-44 RCPT, -45 MAIL, -46 DATA
 * and end of data, -1 otherwise), a local note (-1), "no host to try" (-54).
 * `rcpt` and `sender` fill in the RCPT TO and MAIL FROM commands.
 */
export function reasonText(t: Trouble, rcpt = '', sender = ''): { text: string; errno: number } {
  const reply = t.reply ? replyText(t.reply) : undefined;
  switch (t.cause) {
    case 'refused': return { text: 'Connection refused', errno: 111 };
    case 'timeout': return { text: 'Connection timed out', errno: 110 };
    case 'unreachable': return { text: 'No route to host', errno: 113 };
    case 'lost_connection': return t.note ? { text: t.note, errno: -1 } : { text: 'Remote host closed connection', errno: -18 };
    case 'tls': return { text: `TLS session failure: ${t.note ?? reply ?? ''}`, errno: -37 };
    case 'auth': return { text: `authentication failed: ${reply ?? t.note ?? ''}`, errno: -42 };
    case 'reply': {
      if (reply === undefined) return { text: t.note ?? 'no reply', errno: -1 };
      return { text: `SMTP error from remote mail server after ${command(t.phase, rcpt, sender)}: ${reply}`,
        errno: REPLY_ERRNO[t.phase as Phase] ?? -1 };
    }
    case 'retry_time': return { text: t.note ?? 'no host to try', errno: -54 };
    case 'local':
    case 'unroutable':
      return { text: t.note ?? t.cause, errno: -1 };
  }
}

/** A STARTTLS failure that fell back to cleartext, as the `H=` line says it. */
export function fellBackText(t: Trouble): string {
  return `${reasonText(t).text}; delivering unencrypted (tls = opportunistic)`;
}
