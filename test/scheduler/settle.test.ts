// The settle decision as a table, in the manner of Postfix's *_test.c tables: one row
// per result (cause, phase, reply) and message situation → what the recipient becomes,
// when the message is next due, whether it freezes and when it wakes, which report is
// built, and the log line. Rules: "* * F,2h,15m; G,16h,1h,1.5; F,4d,6h"; limits:
// timeout_frozen_after 7d, ignore_bounce_errors_after 2d, delay_warning 1h.
import { describe, expect, it } from 'vitest';
import type { MessageRecord, Outcome, RecipientRecord } from '../../src/core/types.js';
import { renderText } from '../../src/log/mainlog.js';
import { parseRetryRules } from '../../src/scheduler/retry-rules.js';
import { decideSettle, frozenAction, type SettleLimits } from '../../src/scheduler/settle.js';

const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const M = 60_000;
const H = 60 * M;
const D = 24 * H;
const HUB = { name: 'hub.example.org', ip: '192.0.2.1', port: 25 };
const RULES = parseRetryRules(['* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']);
const LIMITS: SettleLimits = { timeoutFrozenAfter: 7 * D, ignoreBounceErrorsAfter: 2 * D, delayWarning: [H] };
const ROUTE = { router: 'smarthost', transport: 'remote_smtp' };

const OK: Partial<Outcome> = { kind: 'delivered', cause: 'reply', phase: 'dot', reply: { code: 250, enhanced: '2.0.0', text: 'OK id=1' }, host: HUB };
const R550: Partial<Outcome> = { kind: 'failed', cause: 'reply', phase: 'rcpt', reply: { code: 550, enhanced: '5.1.1', text: 'no such user' }, host: HUB };
const R451: Partial<Outcome> = { kind: 'deferred', cause: 'reply', phase: 'rcpt', reply: { code: 451, enhanced: '4.0.0', text: 'later', derived: true }, host: HUB };
const MAIL452: Partial<Outcome> = { kind: 'deferred', cause: 'reply', phase: 'mail', reply: { code: 452, enhanced: '4.3.1', text: 'full' }, host: HUB };
const DOT552: Partial<Outcome> = { kind: 'failed', cause: 'reply', phase: 'dot', reply: { code: 552, enhanced: '5.3.4', text: 'too big' }, host: HUB };
const REFUSED: Partial<Outcome> = { kind: 'deferred', cause: 'refused', phase: 'connect' };
const TIMEOUT: Partial<Outcome> = { kind: 'deferred', cause: 'timeout', phase: 'connect' };
const AUTH: Partial<Outcome> = { kind: 'deferred', cause: 'auth', phase: 'auth', reply: { code: 535, enhanced: '5.7.8', text: 'bad' } };
const UNROUTABLE: Partial<Outcome> = { kind: 'failed', cause: 'unroutable', note: 'Unrouteable address' };
const SPOOL: Partial<Outcome> = { kind: 'deferred', cause: 'local', note: 'spool read error: gone' };

interface Row {
  name: string;
  outcome: Partial<Outcome>;
  /** Message age at this attempt (default 0). */
  age?: number;
  sender?: string;
  /** The recipient's first failure, as age of the message (a retry). */
  firstFailure?: number;
  lastChance?: boolean;
  warningsSent?: number;
  headers?: string;
  want: {
    state: RecipientRecord['state'];
    /** Next attempt, ms after this attempt; null: frozen. */
    next: number | null;
    freeze?: 'bounce' | 'retry_timeout';
    /** Wake time of a frozen message, as message age. */
    wake?: number;
    report?: 'bounce' | 'warning';
    log: string;
  };
}

const ROWS: Row[] = [
  { name: 'delivered', outcome: OK,
    want: { state: 'delivered', next: M, log: '=> a@example.org R=smarthost T=remote_smtp H=hub.example.org [192.0.2.1] C="250 2.0.0 OK id=1"' } },
  { name: 'RCPT 550 5.1.1: failed, bounced', outcome: R550,
    want: { state: 'failed', next: M, report: 'bounce',
      log: '** a@example.org R=smarthost T=remote_smtp H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 550 5.1.1 no such user' } },
  { name: 'end of data 552: failed, bounced', outcome: DOT552,
    want: { state: 'failed', next: M, report: 'bounce',
      log: '** a@example.org R=smarthost T=remote_smtp H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after end of data: 552 5.3.4 too big' } },
  { name: 'unroutable: failed, bounced', outcome: UNROUTABLE,
    want: { state: 'failed', next: M, report: 'bounce', log: '** a@example.org R=smarthost T=remote_smtp: Unrouteable address' } },
  { name: 'RCPT 451, first failure: 15 min (F,2h,15m)', outcome: R451,
    want: { state: 'pending', next: 15 * M,
      log: '== a@example.org R=smarthost T=remote_smtp defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 later' } },
  { name: 'MAIL 452: 15 min', outcome: MAIL452,
    want: { state: 'pending', next: 15 * M,
      log: '== a@example.org R=smarthost T=remote_smtp defer (-45) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after MAIL FROM:<s@example.org>: 452 4.3.1 full' } },
  { name: 'connection refused: 15 min', outcome: REFUSED,
    want: { state: 'pending', next: 15 * M, log: '== a@example.org R=smarthost T=remote_smtp defer (111): Connection refused' } },
  { name: 'connect timeout: 15 min', outcome: TIMEOUT,
    want: { state: 'pending', next: 15 * M, log: '== a@example.org R=smarthost T=remote_smtp defer (110): Connection timed out' } },
  { name: 'AUTH 535 (a host error): deferred, never failed', outcome: AUTH,
    want: { state: 'pending', next: 15 * M, log: '== a@example.org R=smarthost T=remote_smtp defer (-42): authentication failed: 535 5.7.8 bad' } },
  { name: 'spool read error: deferred', outcome: SPOOL,
    want: { state: 'pending', next: 15 * M, log: '== a@example.org R=smarthost T=remote_smtp defer (-1): spool read error: gone' } },
  { name: 'refused, failing for 3 h, last gap 1 h: the G rule (1 h × 1.5)', outcome: REFUSED, age: 3 * H, firstFailure: 0, warningsSent: 3,
    want: { state: 'pending', next: 1.5 * H, log: '== a@example.org R=smarthost T=remote_smtp defer (111): Connection refused' } },
  { name: 'refused, failing for 2 d: F,4d,6h', outcome: REFUSED, age: 2 * D, firstFailure: 0, warningsSent: 48,
    want: { state: 'pending', next: 6 * H, log: '== a@example.org R=smarthost T=remote_smtp defer (111): Connection refused' } },
  { name: 'refused past the last cutoff (4 d): frozen, woken at timeout_frozen_after', outcome: REFUSED, age: 4 * D + 1, firstFailure: 0,
    want: { state: 'pending', next: null, freeze: 'retry_timeout', wake: 7 * D,
      log: 'Frozen (retry timeout exceeded for a@example.org: Connection refused)' } },
  { name: 'a bounce refused 550: frozen, not bounced, woken at ignore_bounce_errors_after', outcome: R550, sender: '',
    want: { state: 'pending', next: null, freeze: 'bounce', wake: 2 * D, log: 'Frozen (delivery error message)' } },
  { name: 'a bounce deferred: 15 min, no warning', outcome: R451, sender: '', age: 2 * H,
    want: { state: 'pending', next: 15 * M,
      log: '== a@example.org R=smarthost T=remote_smtp defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 later' } },
  { name: 'a frozen bounce on its last chance, 451: failed, discarded', outcome: R451, sender: '', age: 2 * D, lastChance: true,
    want: { state: 'failed', next: M, log: 'bounce message discarded: undeliverable for longer than ignore_bounce_errors_after' } },
  { name: 'a frozen bounce on its last chance, delivered', outcome: OK, sender: '', age: 2 * D, lastChance: true,
    want: { state: 'delivered', next: M, log: '=> a@example.org R=smarthost T=remote_smtp H=hub.example.org [192.0.2.1] C="250 2.0.0 OK id=1"' } },
  { name: 'deferred past delay_warning (1 h): a warning', outcome: R451, age: H + 1,
    want: { state: 'pending', next: 15 * M, report: 'warning',
      log: '== a@example.org R=smarthost T=remote_smtp defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 later' } },
  { name: 'deferred past delay_warning, already warned: none', outcome: R451, age: H + 1, warningsSent: 1,
    want: { state: 'pending', next: 15 * M,
      log: '== a@example.org R=smarthost T=remote_smtp defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 later' } },
  { name: 'deferred past delay_warning, list mail: none', outcome: R451, age: H + 1, headers: 'List-Id: <x.example.org>\n',
    want: { state: 'pending', next: 15 * M,
      log: '== a@example.org R=smarthost T=remote_smtp defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 later' } },
];

function record(row: Row): MessageRecord {
  const rc: RecipientRecord = { address: 'a@example.org', state: 'pending', tries: row.firstFailure !== undefined ? 1 : 0 };
  if (row.firstFailure !== undefined) Object.assign(rc, { firstFailure: T0 + row.firstFailure, lastTry: T0 + (row.age ?? 0) - H });
  return { v: 1, id: '1abcde-fghijk-AB', sender: row.sender ?? 's@example.org', arrival: T0, protocol: 'local', size: 10,
    frozen: row.lastChance ?? false, recipients: [rc], nextAttempt: T0 + (row.age ?? 0), attempts: rc.tries,
    warningsSent: row.warningsSent ?? 0, bodySize: 2, chunks: 1 };
}

describe('settle decision', () => {
  for (const row of ROWS) {
    it(row.name, () => {
      const now = T0 + (row.age ?? 0);
      const d = decideSettle({ record: record(row), outcomes: [{ rcpt: 'a@example.org', ...row.outcome } as Outcome], route: ROUTE,
        rules: RULES, now, limits: LIMITS, headers: row.headers ?? 'Subject: x\n', ...(row.lastChance ? { lastChance: true } : {}) });
      const w = row.want;
      expect(d.recipients[0]?.state).toBe(w.state);
      if (w.next === null) expect(d.freeze).toBeDefined();
      else {
        expect(d.freeze).toBeUndefined();
        expect(d.nextAttempt - now).toBe(w.next);
      }
      expect(d.events.find((e) => e.type === 'frozen')?.reason).toBe(w.freeze);
      expect(d.freeze?.wakeAt === undefined ? undefined : d.freeze.wakeAt - T0).toBe(w.wake);
      const report = d.bounce ? 'bounce' : d.warning ? 'warning' : undefined;
      expect(report).toBe(w.report);
      expect(d.events.map((e) => renderText(e))).toContain(w.log);
      expect(d.attempt.results).toEqual([{ rcpt: 'a@example.org', kind: row.outcome.kind, cause: row.outcome.cause,
        ...(row.outcome.phase ? { phase: row.outcome.phase } : {}), ...(row.outcome.reply ? { reply: row.outcome.reply } : {}),
        ...(row.outcome.note ? { note: row.outcome.note } : {}) }]);
    });
  }

  it('the bounce names the hub\'s reply, so its Status is 5.1.1', () => {
    const d = decideSettle({ record: record({ name: '', outcome: R550, want: {} as Row['want'] }),
      outcomes: [{ rcpt: 'a@example.org', ...R550 } as Outcome], route: ROUTE, rules: RULES, now: T0, limits: LIMITS, headers: '' });
    expect(d.bounce).toEqual([{ rcpt: 'a@example.org', host: HUB, reply: R550.reply,
      detail: 'SMTP error from remote mail server after RCPT TO:<a@example.org>: 550 5.1.1 no such user' }]);
  });

  it('one delivered and one deferred: the first => line, the deferred one sets the next attempt', () => {
    const rec = record({ name: '', outcome: OK, want: {} as Row['want'] });
    rec.recipients.push({ address: 'b@example.org', state: 'pending', tries: 0 });
    const d = decideSettle({ record: rec, outcomes: [{ rcpt: 'a@example.org', ...OK } as Outcome, { rcpt: 'b@example.org', ...R451 } as Outcome],
      route: ROUTE, rules: RULES, now: T0, limits: LIMITS, headers: '' });
    expect(d.events.map((e) => e.type)).toEqual(['delivered', 'deferred']);
    expect(d.nextAttempt).toBe(T0 + 15 * M);
    expect(d.lastError).toMatch(/451 later$/);
  });
});

describe('a frozen message that comes due', () => {
  const frozen = (sender: string): MessageRecord => ({ ...record({ name: '', outcome: OK, want: {} as Row['want'] }), sender, frozen: true });
  it.each([
    ['s@example.org', 6 * D, 'wait'],
    ['s@example.org', 7 * D, 'cancel'], // timeout_frozen_after
    ['', D, 'wait'],
    ['', 2 * D, 'lastChance'], // ignore_bounce_errors_after comes first for a bounce
  ] as const)('sender <%s> at age %i: %s', (sender, age, action) => {
    expect(frozenAction(frozen(sender), LIMITS, T0 + age)).toBe(action);
  });
  it('a bounce when timeout_frozen_after comes first is cancelled', () => {
    expect(frozenAction(frozen(''), { ...LIMITS, timeoutFrozenAfter: D }, T0 + D)).toBe('cancel');
  });
});
