// bounce/dsn.ts: RFC 3464 delivery status notifications in Exim's shape: the failure
// report ("Mail delivery failed: returning message to sender") with a text part, a
// message/delivery-status part and the original message (cut at 100 KB). Pure: the
// caller gives the original and the failed recipients and commits what comes back.
import { rfc5322Date } from '../core/date.js';
import type { MtaEvent } from '../core/events.js';
import type { HostLabel, MessageRecord, NewMessage, RemoteReply } from '../core/types.js';

export const RETURN_SIZE_LIMIT = 100 * 1024;

export interface FailedRecipient {
  rcpt: string;
  /** The reason in Exim's words (log/outcome-text.ts); absent for -Mg (no reason, as in Exim). */
  detail?: string;
  /** The hub's reply, when there was one: Status and Diagnostic-Code come from it. */
  reply?: RemoteReply;
  host?: HostLabel;
}

/** What every report (failure or delay warning) is made from. */
export interface ReportBase {
  id: string;
  now: number;
  hostname: string;
  qualifyDomain: string;
  user?: string;
  original: MessageRecord;
  /** The original header block as a byte string. */
  originalHeaders: string;
}

export interface BounceInput extends ReportBase {
  /** The start of the original body (at most RETURN_SIZE_LIMIT bytes are used). */
  originalBody: Buffer;
  failed: FailedRecipient[];
}

export function reportBoundary(r: ReportBase): string {
  return `${Math.floor(r.now / 1000)}-posterndsn-${r.id}`;
}

/**
 * A report as a new message: Mailer-Daemon's headers (after `leading`, such as
 * X-Failed-Recipients), the null sender, the original's sender as recipient, and
 * `bounceOf` set so the log says `<= <> R=<original ID>`.
 */
export function reportMessage(r: ReportBase, leading: string[], subject: string, body: Buffer[]): NewMessage {
  const o = r.original;
  const ref = referenceOf(r.originalHeaders);
  const lines = [
    `Received: from ${r.user ?? 'postern'} by ${r.hostname} with local (postern)\n\tid ${r.id};\n\t${rfc5322Date(r.now)}`,
    ...leading,
    'Auto-Submitted: auto-replied',
    `From: Mail Delivery System <Mailer-Daemon@${r.qualifyDomain}>`,
    `To: ${o.sender}`,
    ...(ref ? [`References: ${ref}`] : []),
    `Content-Type: multipart/report; report-type=delivery-status; boundary=${reportBoundary(r)}`,
    'MIME-Version: 1.0',
    `Subject: ${subject}`,
    `Message-Id: <E${r.id}@${r.hostname}>`,
    `Date: ${rfc5322Date(r.now)}`,
  ];
  return {
    id: r.id, sender: '', recipients: [o.sender], arrival: r.now, protocol: 'local',
    ...(r.user ? { user: r.user } : {}), bounceOf: o.id,
    headers: Buffer.from(lines.join('\n') + '\n', 'utf8').toString('latin1'),
    body,
  };
}

/** Folds a reason into lines of about 70 characters, indented as Exim's report does. */
function wrap(text: string, indent: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > 70) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.map((l) => indent + l).join('\n');
}

/**
 * RFC 3464 Status: the reply's enhanced code (5.1.1), in the class the action needs (a
 * temporary reply that ended in a failure is reported as 5.x.x, as Postfix does);
 * 5.0.0 / 4.0.0 only when no reply is known.
 */
export function statusOf(action: 'failed' | 'delayed', reply: RemoteReply | undefined): string {
  const cls = action === 'failed' ? '5' : '4';
  const m = reply ? /^[245](\.\d{1,3}\.\d{1,3})$/.exec(reply.enhanced) : null;
  return m ? `${cls}${m[1]}` : `${cls}.0.0`;
}

/** RFC 3464 Diagnostic-Code: the reply as the hub sent it (`smtp; 550 5.1.1 text`). */
export function diagnosticCode(reply: RemoteReply): string {
  return `smtp; ${[String(reply.code), reply.derived ? '' : reply.enhanced, reply.text].filter(Boolean).join(' ')}`;
}

/** Builds the failure report for the original's sender; the caller commits it. */
export function failureReport(b: BounceInput): NewMessage {
  const o = b.original;
  const boundary = reportBoundary(b);

  const text: string[] = [
    `--${boundary}`,
    'Content-type: text/plain; charset=us-ascii',
    '',
    'This message was created automatically by mail delivery software.',
    '',
    'A message that you sent could not be delivered to one or more of its',
    'recipients. This is a permanent error. The following address(es) failed:',
    '',
  ];
  for (const f of b.failed) {
    text.push(`  ${f.rcpt}`);
    if (f.host) text.push(`    host ${f.host.name} [${f.host.ip}]`);
    if (f.detail) text.push(wrap(f.detail, '    '));
  }
  text.push('', ...deliveryStatus(boundary, b.hostname, 'failed', b.failed), `--${boundary}`, 'Content-type: message/rfc822', '', '');
  const returned = Buffer.concat([
    Buffer.from(`Return-path: <${o.sender}>\n`, 'utf8'),
    Buffer.from(b.originalHeaders, 'latin1'),
    Buffer.from('\n'),
    b.originalBody.subarray(0, RETURN_SIZE_LIMIT),
  ]);
  const cut = b.originalBody.length > RETURN_SIZE_LIMIT
    ? Buffer.from(`\n------ This is a copy of the message, cut at ${RETURN_SIZE_LIMIT / 1024}K ------\n`) : Buffer.alloc(0);
  // X-Failed-Recipients folded, as Exim does, so a long list stays within RFC 5322's line limit.
  return reportMessage(b, [`X-Failed-Recipients: ${b.failed.map((f) => f.rcpt).join(',\n  ')}`],
    'Mail delivery failed: returning message to sender',
    [Buffer.from(text.join('\n'), 'utf8'), returned, cut, Buffer.from(`\n--${boundary}--\n`)]);
}

/** The `<= <> R=ID` event of a bounce just committed. */
export function bounceArrival(m: NewMessage): MtaEvent {
  const size = Buffer.byteLength(m.headers, 'latin1') + 1 + m.body.reduce((n, b) => n + b.length, 0);
  return { type: 'received', id: m.id, sender: '', protocol: 'local', size, ...(m.user ? { user: m.user } : {}),
    ...(m.bounceOf ? { bounceOf: m.bounceOf } : {}) };
}

/** The original's Message-ID, whether the sender wrote it or postern added it. */
function referenceOf(headers: string): string | undefined {
  const id = /^message-id:[ \t]*(<[^>\n]+>)/im.exec(headers)?.[1];
  return id ? Buffer.from(id, 'latin1').toString('utf8') : undefined;
}

/** The message/delivery-status part (RFC 3464): per-message fields, then one block per recipient. */
export function deliveryStatus(boundary: string, hostname: string, action: 'failed' | 'delayed', rcpts: FailedRecipient[]): string[] {
  const out = [`--${boundary}`, 'Content-type: message/delivery-status', '', `Reporting-MTA: dns; ${hostname}`, ''];
  for (const f of rcpts) {
    out.push(`Action: ${action}`, `Final-Recipient: rfc822;${f.rcpt}`, `Status: ${statusOf(action, f.reply)}`);
    if (f.host) out.push(`Remote-MTA: dns; ${f.host.name}`);
    if (f.reply) out.push(`Diagnostic-Code: ${diagnosticCode(f.reply)}`);
    out.push('');
  }
  return out;
}
