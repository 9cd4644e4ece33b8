// scheduler/settle.ts: the settle decision as a pure function, as Postfix's qmgr and
// OpenSMTPD's scheduler keep policy apart from I/O. Given a message, the outcomes of
// one attempt, the retry rules, the time and the limits, it says what each recipient
// becomes, when the message is next due, whether it freezes (and when a frozen-time
// limit wakes it), which reports to build and which events to log. No clock, no spool,
// no randomness (the caller passes H-rule jitter): the scheduler reads, calls this,
// builds the reports and commits.
import type { MtaEvent } from '../core/events.js';
import { troubleOf, type AttemptRecord, type MessageRecord, type Outcome, type RecipientRecord } from '../core/types.js';
import type { FailedRecipient } from '../bounce/dsn.js';
import { wantsWarnings, warningAge, warningsPassed } from '../bounce/delay-warning.js';
import { reasonText } from '../log/outcome-text.js';
import { errorType, findRule, nextAttempt, type RetryRule } from './retry-rules.js';

/** The time limits the decision needs, all in ms (0: off). */
export interface SettleLimits {
  /** retry.timeout_frozen_after, after arrival: a frozen message is then cancelled. */
  timeoutFrozenAfter: number;
  /** retry.ignore_bounce_errors_after, after arrival: a frozen bounce gets one last try, then is discarded. */
  ignoreBounceErrorsAfter: number;
  /** retry.delay_warning, ages after arrival. */
  delayWarning: number[];
}

export interface SettleInput {
  record: MessageRecord;
  outcomes: Outcome[];
  route: { router: string; transport: string };
  rules: RetryRule[];
  now: number;
  limits: SettleLimits;
  /** The message's header block, for delay_warning_condition (list and bulk mail get no warning). */
  headers: string;
  /** A frozen bounce past ignore_bounce_errors_after: whatever happens now is final. */
  lastChance?: boolean;
  /** Where in its range an H-style retry interval falls, 0..1 (the scheduler draws it; default the middle). */
  jitter?: number;
  /**
   * Every host of the route waits for its retry time until then (host errors, or no
   * host tried at all): recipients deferred without a host of their own wait for it,
   * as Exim holds mail for a host until the host's retry time.
   */
  hostWait?: number;
}

/**
 * The rule that decides a deferred recipient's next attempt: the first whose pattern
 * matches the address and whose error field covers the error (the outcome's cause,
 * phase and reply); a message held back for its host's retry time (-54) has no error
 * of its own: the first rule for the address.
 */
export function ruleFor(rules: RetryRule[], o: Outcome): RetryRule | undefined {
  return findRule(rules, o.rcpt, o.cause === 'retry_time' ? 'any' : errorType(o));
}

export interface SettleDecision {
  /** New state of the recipients that were tried. */
  recipients: RecipientRecord[];
  /** When the message is next due if it stays pending and unfrozen. */
  nextAttempt: number;
  lastError?: string;
  /** Freeze it; `wakeAt`: when a frozen-time limit needs a look (absent: never). */
  freeze?: { wakeAt?: number };
  /** Recipients to report to the sender in a failure report (none for a bounce). */
  bounce?: FailedRecipient[];
  /** A delay warning to send: the threshold passed, who is delayed, and the new count of thresholds passed. */
  warning?: { delay: number; delayed: FailedRecipient[]; warningsSent: number };
  /** The attempt as the message's history keeps it. */
  attempt: AttemptRecord;
  /** What to log, in order (the reports' arrival lines come from the scheduler once they exist). */
  events: MtaEvent[];
}

/** How long an attempt without any deferral waits before a look, should something stay pending. */
const DEFAULT_RETRY = 60_000;

/** Does ignore_bounce_errors_after come before timeout_frozen_after? */
function bounceErrorsFirst(limits: SettleLimits): boolean {
  const t = limits.timeoutFrozenAfter;
  return limits.ignoreBounceErrorsAfter > 0 && (t === 0 || limits.ignoreBounceErrorsAfter <= t);
}

/** When a frozen message next needs a look (its due key while frozen); Infinity: never. */
export function frozenLimit(record: MessageRecord, limits: SettleLimits): number {
  const all = [limits.timeoutFrozenAfter];
  if (record.sender === '') all.push(limits.ignoreBounceErrorsAfter);
  const ms = Math.min(...all.filter((x) => x > 0));
  return ms === Infinity ? Infinity : record.arrival + ms;
}

/**
 * What to do with a frozen message that came due: `wait` (no limit reached yet),
 * `cancel` (timeout_frozen_after: as -Mg), or `lastChance` (a bounce past
 * ignore_bounce_errors_after: thawed, tried once more, then discarded).
 */
export function frozenAction(record: MessageRecord, limits: SettleLimits, now: number): 'wait' | 'cancel' | 'lastChance' {
  if (frozenLimit(record, limits) > now) return 'wait';
  return record.sender === '' && bounceErrorsFirst(limits) ? 'lastChance' : 'cancel';
}

/** A recipient as a report names it: Exim's words for the human part, the reply for Status and Diagnostic-Code. */
function reported(o: Outcome, sender: string): FailedRecipient {
  return { rcpt: o.rcpt, detail: reasonText(o, o.rcpt, sender).text, ...(o.reply ? { reply: o.reply } : {}), ...(o.host ? { host: o.host } : {}) };
}

export function decideSettle(input: SettleInput): SettleDecision {
  const { record, outcomes, route, now, limits } = input;
  const lastChance = input.lastChance ?? false;
  const recipients: RecipientRecord[] = [];
  const events: MtaEvent[] = [];
  let first = true;
  let next = Infinity;
  let lastError: string | undefined;
  let freeze: Extract<MtaEvent, { type: 'frozen' }> | undefined;
  for (const o of outcomes) {
    const prev = record.recipients.find((r) => r.address === o.rcpt);
    if (!prev) continue;
    const r: RecipientRecord = { ...prev, tries: prev.tries + 1, lastTry: now };
    const words = reasonText(o, o.rcpt, record.sender).text;
    const router = o.router ?? route.router;
    const sentAs = o.sentAs !== undefined ? { sentAs: o.sentAs } : {};
    const result = { id: record.id, rcpt: o.rcpt, router, transport: route.transport, sender: record.sender,
      result: troubleOf(o), ...(o.host ? { host: o.host } : {}), ...sentAs };
    if (o.kind === 'delivered') {
      r.state = 'delivered';
      events.push({ type: 'delivered', id: record.id, rcpt: o.rcpt, first, router, transport: route.transport,
        host: o.host!, reply: o.reply ?? { code: 250, enhanced: '2.0.0', text: '', derived: true }, ...(o.session ? { session: o.session } : {}), ...sentAs });
      first = false;
    } else if (o.kind === 'failed' && record.sender === '' && !lastChance) {
      // A bounce nobody takes is frozen, never dropped, so the postmaster sees it
      // (Exim); timeout_frozen_after / ignore_bounce_errors_after end it later.
      r.lastError = lastError = words;
      freeze = { type: 'frozen', id: record.id, reason: 'bounce' };
      events.push({ type: 'failed', ...result });
    } else if (o.kind === 'failed' || lastChance) {
      r.state = 'failed';
      r.lastError = lastError = words;
      events.push({ type: 'failed', ...result });
    } else {
      const prevState = prev.firstFailure !== undefined
        ? { firstFailure: prev.firstFailure, lastTry: prev.lastTry ?? prev.firstFailure, nextTry: record.nextAttempt ?? now } : undefined;
      const state = nextAttempt(ruleFor(input.rules, o), prevState, now, () => input.jitter ?? 0.5);
      r.lastError = lastError = words;
      if (state === null) {
        // Past the rule's last cutoff Exim bounces. postern freezes instead, so a long
        // hub outage or a wrong AUTH password cannot bounce everyone's mail; the
        // operator sees it in -bp and decides (-Mt retries, -Mg bounces).
        freeze = { type: 'frozen', id: record.id, reason: 'retry_timeout', rcpt: o.rcpt, sender: record.sender, result: troubleOf(o) };
      } else {
        r.firstFailure = state.firstFailure;
        const heldByHost = input.hostWait !== undefined && o.host === undefined;
        next = Math.min(next, heldByHost ? input.hostWait as number : state.nextTry);
      }
      events.push({ type: 'deferred', ...result });
    }
    recipients.push(r);
  }
  if (freeze !== undefined) events.push(freeze);
  if (lastChance && outcomes.some((o) => o.kind !== 'delivered')) {
    events.push({ type: 'notice', id: record.id, text: 'bounce message discarded: undeliverable for longer than ignore_bounce_errors_after' });
  }
  // Failed recipients are reported to the sender in the same transaction; a bounce
  // (null sender) that fails is not bounced again.
  const failed = outcomes.filter((o) => o.kind === 'failed').map((o) => reported(o, record.sender));
  const host = outcomes.find((o) => o.host)?.host;
  const wakeAt = freeze !== undefined ? frozenLimit(record, limits) : Infinity;
  const warning = freeze === undefined ? delayWarning(input) : undefined;
  return {
    recipients,
    nextAttempt: next === Infinity ? now + DEFAULT_RETRY : next,
    ...(lastError !== undefined ? { lastError } : {}),
    ...(freeze !== undefined ? { freeze: wakeAt === Infinity ? {} : { wakeAt } } : {}),
    ...(failed.length > 0 && record.sender !== '' ? { bounce: failed } : {}),
    ...(warning ? { warning } : {}),
    attempt: { at: now, ...(host ? { host } : {}), results: outcomes.map((o) => ({ rcpt: o.rcpt, kind: o.kind, ...troubleOf(o) })) },
    events,
  };
}

/** A delay warning, if this deferral passes the next delay_warning time. */
function delayWarning(input: SettleInput): SettleDecision['warning'] {
  const { record, outcomes, now, limits } = input;
  const delayed = outcomes.filter((o) => o.kind === 'deferred');
  if (delayed.length === 0 || record.sender === '') return undefined;
  // One warning however many times were passed (a message first tried late does not
  // get a burst), naming the latest; the count of times passed is what is kept.
  const passed = warningsPassed(limits.delayWarning, now - record.arrival);
  if (passed <= record.warningsSent) return undefined;
  if (!wantsWarnings(input.headers)) return undefined;
  return { delay: warningAge(limits.delayWarning, passed - 1) as number, delayed: delayed.map((o) => reported(o, record.sender)), warningsSent: passed };
}
