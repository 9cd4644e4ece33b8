// bounce/delay-warning.ts: Exim's delay warnings. When a delivery attempt defers, the
// sender is told once the message has waited past the next time of retry.delay_warning
// (after the list's last time, warnings repeat at its last interval), unless the
// message is a bounce, automatic, or list/bulk mail (Exim's delay_warning_condition).
// Pure: the scheduler commits the report with the attempt's result.
import type { NewMessage } from '../core/types.js';
import { deliveryStatus, reportBoundary, reportMessage, type FailedRecipient, type ReportBase } from './dsn.js';

/** When warning number `k` (0-based) is due, as message age in ms; undefined: never. */
export function warningAge(list: number[], k: number): number | undefined {
  const times = list.filter((t) => t > 0);
  if (times.length === 0) return undefined;
  if (k < times.length) return times[k];
  const last = times[times.length - 1] as number;
  const step = times.length > 1 ? last - (times[times.length - 2] as number) : last;
  return step > 0 ? last + (k - times.length + 1) * step : undefined;
}

/** Exim's delay_warning_condition: no warnings for list, bulk or automatic mail. */
export function wantsWarnings(headers: string): boolean {
  if (/^(list-id|list-post|list-subscribe):/im.test(headers)) return false;
  if (/^precedence:\s*(bulk|list|junk)/im.test(headers)) return false;
  if (/^auto-submitted:\s*(auto-generated|auto-replied)/im.test(headers)) return false;
  return true;
}

/** As Exim's warning subject says it: minutes under two hours, whole hours after. */
export function delayText(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  return minutes < 120 ? `${minutes} minutes` : `${Math.floor(minutes / 60)} hours`;
}

/** How many warning times a message of this age has passed (Exim keeps this count). */
export function warningsPassed(list: number[], age: number): number {
  let k = 0;
  for (;;) {
    const at = warningAge(list, k);
    if (at === undefined || at > age || k > 10_000) return k;
    k++;
  }
}

export interface WarningInput extends ReportBase {
  /** The threshold that was passed, for the text. */
  delay: number;
  delayed: FailedRecipient[];
}

export function delayReport(w: WarningInput): NewMessage {
  const o = w.original;
  const boundary = reportBoundary(w);
  // Header text is held as bytes; read it as the UTF-8 it usually is.
  const text8 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'latin1').toString('utf8'));
  const subjectLine = text8(/^subject:[ \t]*(.*(?:\n[ \t].*)*)/im.exec(w.originalHeaders)?.[1]?.replace(/\n[ \t]+/g, ' '));
  const dateLine = text8(/^date:[ \t]*(.*)/im.exec(w.originalHeaders)?.[1]);
  const delay = delayText(w.delay);
  const text = [
    `--${boundary}`,
    'Content-type: text/plain; charset=us-ascii',
    '',
    'This message was created automatically by mail delivery software.',
    '',
    'A message that you sent has not yet been delivered to one or more of its',
    `recipients after more than ${delay} on the queue on ${w.hostname}.`,
    '',
    `The message identifier is:     ${o.id}`,
    ...(subjectLine !== undefined ? [`The subject of the message is: ${subjectLine}`] : []),
    ...(dateLine !== undefined ? [`The date of the message is:    ${dateLine}`] : []),
    '',
    `The address${w.delayed.length > 1 ? 'es' : ''} to which the message has not yet been delivered ${w.delayed.length > 1 ? 'are' : 'is'}:`,
    '',
  ];
  for (const d of w.delayed) {
    text.push(`  ${d.rcpt}`);
    if (d.host) text.push(`    host ${d.host.name} [${d.host.ip}]`);
    if (d.detail) text.push(`    Delay reason: ${d.detail}`);
  }
  text.push('', 'No action is required on your part. Delivery attempts will continue for',
    'some time, and this warning may be repeated at intervals if the message',
    'remains undelivered. Eventually the mail delivery software will give up,',
    'and when that happens, the message will be returned to you.', '',
    ...deliveryStatus(boundary, w.hostname, 'delayed', w.delayed),
    `--${boundary}`, 'Content-type: text/rfc822-headers', '', '');
  return reportMessage(w, [], `Warning: message ${o.id} delayed ${delay}`,
    [Buffer.from(text.join('\n'), 'utf8'), Buffer.from(w.originalHeaders, 'latin1'), Buffer.from(`\n--${boundary}--\n`)]);
}
