// Error-scoped retry rules as the policy table: one row per attempt error (cause,
// phase, reply) → Exim's error name → the rule that applies → the next attempt, under
// one configuration that gives each error its own rule. Then -brt's rule choice and
// printing, the parser's refusals, and the host retry records (per host and address,
// kept across a reload for hosts that stay).
import { describe, expect, it } from 'vitest';
import { formatRetryRule, parseRetryRule, parseRetryRules } from '../../src/core/retry-rules.js';
import type { MessageRecord, Outcome } from '../../src/core/types.js';
import { renderText } from '../../src/log/mainlog.js';
import { HostRetryState } from '../../src/scheduler/host-state.js';
import { errorMatches, errorType, findRule } from '../../src/scheduler/retry-rules.js';
import { decideSettle, type SettleLimits } from '../../src/scheduler/settle.js';

const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const M = 60_000;
const H = 60 * M;
const D = 24 * H;
const HUB = { name: 'hub.example.org', ip: '192.0.2.1', port: 25 };
const LIMITS: SettleLimits = { timeoutFrozenAfter: 7 * D, ignoreBounceErrorsAfter: 2 * D, delayWarning: [] };

/** Each error its own interval, so the row shows which rule applied. */
const RULES = parseRetryRules([
  '* refused F,4d,1m',
  '* timeout_connect F,4d,2m',
  '* timeout F,4d,3m',
  '* lost_connection F,4d,4m',
  '* tls_required F,4d,5m',
  '* auth_failed F,4d,6m',
  '* rcpt_452 F,4d,7m',
  '* rcpt_45x F,4d,8m',
  '* rcpt_4xx F,4d,9m',
  '* mail_4xx F,4d,10m',
  '* data_4xx F,4d,11m',
  '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h',
]);

const reply = (code: number, enhanced: string, text: string) => ({ code, enhanced, text });

interface Row {
  outcome: Partial<Outcome>;
  error: string | undefined;
  rule: string;
  next: number;
  log: string;
}

const ROWS: Row[] = [
  { outcome: { cause: 'refused', phase: 'connect' }, error: 'refused', rule: '* refused F,4d,1m', next: 1 * M,
    log: 'defer (111): Connection refused' },
  { outcome: { cause: 'timeout', phase: 'connect' }, error: 'timeout_connect', rule: '* timeout_connect F,4d,2m', next: 2 * M,
    log: 'defer (110): Connection timed out' },
  { outcome: { cause: 'timeout', phase: 'greeting' }, error: 'timeout', rule: '* timeout F,4d,3m', next: 3 * M,
    log: 'defer (110): Connection timed out' },
  { outcome: { cause: 'lost_connection' }, error: 'lost_connection', rule: '* lost_connection F,4d,4m', next: 4 * M,
    log: 'defer (-18): Remote host closed connection' },
  { outcome: { cause: 'tls', phase: 'starttls', note: 'certificate has expired' }, error: 'tls_required', rule: '* tls_required F,4d,5m',
    next: 5 * M, log: 'defer (-37): TLS session failure: certificate has expired' },
  { outcome: { cause: 'auth', phase: 'auth', reply: reply(535, '5.7.8', 'bad credentials') }, error: 'auth_failed',
    rule: '* auth_failed F,4d,6m', next: 6 * M, log: 'defer (-42): authentication failed: 535 5.7.8 bad credentials' },
  { outcome: { cause: 'reply', phase: 'rcpt', reply: reply(452, '4.2.2', 'mailbox full'), host: HUB }, error: 'rcpt_452',
    rule: '* rcpt_452 F,4d,7m', next: 7 * M,
    log: 'defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 452 4.2.2 mailbox full' },
  { outcome: { cause: 'reply', phase: 'rcpt', reply: reply(451, '4.3.0', 'try later'), host: HUB }, error: 'rcpt_451',
    rule: '* rcpt_45x F,4d,8m', next: 8 * M,
    log: 'defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 451 4.3.0 try later' },
  { outcome: { cause: 'reply', phase: 'rcpt', reply: reply(421, '4.7.0', 'slow down'), host: HUB }, error: 'rcpt_421',
    rule: '* rcpt_4xx F,4d,9m', next: 9 * M,
    log: 'defer (-44) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after RCPT TO:<a@example.org>: 421 4.7.0 slow down' },
  { outcome: { cause: 'reply', phase: 'mail', reply: reply(452, '4.3.1', 'full'), host: HUB }, error: 'mail_452',
    rule: '* mail_4xx F,4d,10m', next: 10 * M,
    log: 'defer (-45) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after MAIL FROM:<s@example.org>: 452 4.3.1 full' },
  { outcome: { cause: 'reply', phase: 'data', reply: reply(451, '4.3.0', 'not now'), host: HUB }, error: 'data_451',
    rule: '* data_4xx F,4d,11m', next: 11 * M,
    log: 'defer (-46) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after DATA: 451 4.3.0 not now' },
  { outcome: { cause: 'reply', phase: 'dot', reply: reply(451, '4.3.0', 'queue full'), host: HUB }, error: 'data_451',
    rule: '* data_4xx F,4d,11m', next: 11 * M,
    log: 'defer (-46) H=hub.example.org [192.0.2.1]: SMTP error from remote mail server after end of data: 451 4.3.0 queue full' },
  { outcome: { cause: 'reply', phase: 'greeting', reply: reply(421, '4.3.2', 'shutting down') }, error: undefined,
    rule: '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h', next: 15 * M,
    log: 'defer (-1): SMTP error from remote mail server after initial connection: 421 4.3.2 shutting down' },
  { outcome: { cause: 'local', note: 'spool read error: gone' }, error: undefined,
    rule: '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h', next: 15 * M, log: 'defer (-1): spool read error: gone' },
];

function record(): MessageRecord {
  return { v: 1, id: '1abcde-fghijk-AB', sender: 's@example.org', arrival: T0, protocol: 'local', size: 10, frozen: false,
    recipients: [{ address: 'a@example.org', state: 'pending', tries: 0 }], nextAttempt: T0, attempts: 0, warningsSent: 0,
    bodySize: 2, chunks: 1 };
}

describe('each error chooses its own rule (first match of pattern and error)', () => {
  for (const row of ROWS) {
    const what = `${row.outcome.cause}${row.outcome.phase ? `/${row.outcome.phase}` : ''}${row.outcome.reply ? ` ${row.outcome.reply.code}` : ''}`;
    it(`${what} → ${row.error ?? '(no name)'} → ${row.rule} → +${row.next / M} min`, () => {
      const o = { rcpt: 'a@example.org', kind: 'deferred', ...row.outcome } as Outcome;
      expect(errorType(o)).toBe(row.error);
      expect(formatRetryRule(findRule(RULES, o.rcpt, errorType(o))!)).toBe(row.rule);
      const d = decideSettle({ record: record(), outcomes: [o], route: { router: 'smarthost', transport: 'remote_smtp' },
        rules: RULES, now: T0, limits: LIMITS, headers: '' });
      expect(d.nextAttempt - T0).toBe(row.next);
      expect(d.events.map((e) => renderText(e))).toContain(`== a@example.org R=smarthost T=remote_smtp ${row.log}`);
    });
  }

  it('a message held back for its hosts (-54) waits for the hosts\' retry time, logged as Exim logs it', () => {
    const o: Outcome = { rcpt: 'a@example.org', kind: 'deferred', cause: 'retry_time', note: 'retry time not reached for any host' };
    const d = decideSettle({ record: record(), outcomes: [o], route: { router: 'smarthost', transport: 'remote_smtp' },
      rules: RULES, now: T0, limits: LIMITS, headers: '', hostWait: T0 + 37 * M });
    expect(d.nextAttempt).toBe(T0 + 37 * M);
    expect(d.events.map((e) => renderText(e)))
      .toContain('== a@example.org R=smarthost T=remote_smtp defer (-54): retry time not reached for any host');
  });

  it('a host error waits for the host\'s retry time; a recipient\'s own error keeps its own rule', () => {
    const refused: Outcome = { rcpt: 'a@example.org', kind: 'deferred', cause: 'refused', phase: 'connect' };
    const rcpt: Outcome = { rcpt: 'a@example.org', kind: 'deferred', cause: 'reply', phase: 'rcpt', reply: reply(452, '4.2.2', 'full'), host: HUB };
    const base = { record: record(), route: { router: 'smarthost', transport: 'remote_smtp' }, rules: RULES, now: T0, limits: LIMITS, headers: '', hostWait: T0 + 20 * M };
    expect(decideSettle({ ...base, outcomes: [refused] }).nextAttempt).toBe(T0 + 20 * M);
    expect(decideSettle({ ...base, outcomes: [rcpt] }).nextAttempt).toBe(T0 + 7 * M);
  });
});

describe('error field matching', () => {
  it.each([
    ['*', 'refused', true], ['*', undefined, true], ['refused', undefined, false],
    ['refused', 'refused', true], ['refused_A', 'refused', true], ['refused_MX', 'refused', false],
    ['timeout', 'timeout_connect', true], ['timeout_connect', 'timeout', false], ['timeout_connect_A', 'timeout_connect', true],
    ['rcpt_4xx', 'rcpt_452', true], ['rcpt_45x', 'rcpt_452', true], ['rcpt_45x', 'rcpt_421', false], ['rcpt_452', 'rcpt_451', false],
    ['rcpt_4xx', 'mail_452', false], ['mail_4xx', 'mail_421', true], ['data_4xx', 'data_451', true],
    ['auth_failed', 'auth_failed', true], ['tls_required', 'auth_failed', false],
  ] as const)('rule error %s covers %s: %s', (rule, actual, want) => {
    expect(errorMatches(rule, actual)).toBe(want);
  });
});

describe('-brt\'s choice and words', () => {
  const rules = parseRetryRules(['hub.example.org refused F,4d,1m', '*@example.net * F,1d,30m', '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']);
  it.each([
    ['a@example.org', undefined, '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h'],
    ['hub.example.org', undefined, '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h'], // no ERROR: only * rules
    ['hub.example.org', 'refused', 'hub.example.org refused F,4d,1m'],
    ['hub.example.org', 'timeout', '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h'],
    ['b@example.net', 'rcpt_452', '*@example.net * F,1d,30m'],
  ] as const)('%s %s → %s', (addr, error, want) => {
    expect(formatRetryRule(findRule(rules, addr, error)!)).toBe(want);
  });
  it('nothing matches: undefined (No retry information found)', () => {
    expect(findRule(parseRetryRules(['hub.example.org refused F,4d,1m']), 'hub.example.org')).toBeUndefined();
  });
  it('prints times in Exim\'s units', () => {
    expect(formatRetryRule(parseRetryRule('* * F,90m,30s; H,2w,1d,2'))).toBe('* * F,1h30m,30s; H,2w,1d,2');
  });
});

describe('the parser refuses a malformed rule', () => {
  it.each([
    ['* refusd F,1h,1m', /unknown error type "refusd"/],
    ['* rcpt_5xx F,1h,1m', /unknown error type "rcpt_5xx"/],
    ['* rcpt_4x F,1h,1m', /unknown error type "rcpt_4x"/],
    ['* * F,1h', /malformed parameter set/],
    ['*', /needs a pattern, an error type/],
  ])('%s', (text, want) => {
    expect(() => parseRetryRules(['* * F,1h,1m', text])).toThrow(want);
    expect(() => parseRetryRules(['* * F,1h,1m', text])).toThrow(/^rule 2: /);
  });
});

describe('host retry records', () => {
  const hub = { name: 'hub.example.org', port: 25 };
  const a = { ...hub, ip: '192.0.2.1' };
  const b = { ...hub, ip: '192.0.2.2' };
  const rules = parseRetryRules(['hub.example.org refused F,4d,1m', '* * F,2h,15m']);
  it('are kept per host and address, with the rule the error chose', () => {
    const s = new HostRetryState();
    s.failed(a, { cause: 'refused', phase: 'connect' }, rules, T0);
    s.failed(b, { cause: 'timeout', phase: 'connect' }, rules, T0);
    expect(s.records(hub).map((r) => [r.ip, r.error, r.nextTry - T0])).toEqual([['192.0.2.1', 'refused', M], ['192.0.2.2', 'timeout_connect', 15 * M]]);
    expect(s.waitsUntil(hub, T0)).toBe(T0 + M);
    expect(s.usable([hub], T0 + M)).toEqual([hub]);
  });
  it('a reload keeps the hosts that stay and forgets the others', () => {
    const s = new HostRetryState();
    const other = { name: 'old.example.org', port: 587 };
    s.failed(a, { cause: 'refused' }, rules, T0);
    s.failed({ ...other, ip: '192.0.2.9' }, { cause: 'refused' }, rules, T0);
    s.clear([hub, { name: 'new.example.org', port: 25 }]);
    expect(s.has(hub)).toBe(true);
    expect(s.has(other)).toBe(false);
  });
});

describe('a malformed rule in the configuration', () => {
  it('is a configuration error naming file, line and key', async () => {
    const { parseConfig } = await import('../../src/config/validate.js');
    const text = '[smarthost]\nhosts = ["hub.example.org"]\n\n[retry]\nrules = [\n  "* refused F,4d,1m",\n  "* refusd F,4d,1m",\n]\n';
    expect(() => parseConfig(text, '/etc/postern/postern.toml')).toThrow(
      'configuration error in /etc/postern/postern.toml line 7: retry.rules: rule 2: unknown error type "refusd"');
  });
});
