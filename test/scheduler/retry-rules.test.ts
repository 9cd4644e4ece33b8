// Unit tests for src/scheduler/retry-rules.ts: parsing Exim retry rules, matching an
// address to a rule, and the retry schedule walked with explicit times.
import { describe, expect, it } from 'vitest';
import {
  findRule, nextAttempt, parseRetryRule, parseRetryRules, type RetryRule, type RetryState,
} from '../../src/scheduler/retry-rules.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const DEBIAN = '* * F,2h,15m; G,16h,1h,1.5; F,4d,6h';
const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);

describe('parseRetryRule', () => {
  it("parses Debian's rule", () => {
    expect(parseRetryRule(DEBIAN)).toEqual({
      pattern: '*',
      error: '*',
      params: [
        { kind: 'F', cutoff: 2 * H, interval: 15 * M, multiplier: 1 },
        { kind: 'G', cutoff: 16 * H, interval: 1 * H, multiplier: 1.5 },
        { kind: 'F', cutoff: 4 * D, interval: 6 * H, multiplier: 1 },
      ],
    });
  });

  it.each([
    ['example.org  rcpt_4xx  F,1h,10m', { pattern: 'example.org', error: 'rcpt_4xx', params: [{ kind: 'F', cutoff: H, interval: 10 * M, multiplier: 1 }] }],
    ['*@example.org * H,1d,30m,2', { pattern: '*@example.org', error: '*', params: [{ kind: 'H', cutoff: D, interval: 30 * M, multiplier: 2 }] }],
    ['  * *   F, 2h , 15m ;  ', { pattern: '*', error: '*', params: [{ kind: 'F', cutoff: 2 * H, interval: 15 * M, multiplier: 1 }] }],
    ['* * G,16h,90s,1.5', { pattern: '*', error: '*', params: [{ kind: 'G', cutoff: 16 * H, interval: 90 * S, multiplier: 1.5 }] }],
    ['* * F,1w,1d', { pattern: '*', error: '*', params: [{ kind: 'F', cutoff: 7 * D, interval: D, multiplier: 1 }] }],
  ])('parses %j', (text, rule) => {
    expect(parseRetryRule(text)).toEqual(rule);
  });

  it.each([
    ['', /needs a pattern/],
    ['*', /needs a pattern/],
    ['* *', /needs a pattern/],
    ['* * F,2h', /malformed parameter set "F,2h"/],
    ['* * F,2h,15m,3', /malformed parameter set/],
    ['* * G,16h,1h', /malformed parameter set "G,16h,1h"/],
    ['* * X,2h,15m', /malformed parameter set "X,2h,15m"/],
    ['* * f,2h,15m', /malformed parameter set/],
    ['* * F,2x,15m', /malformed time "2x"/],
    ['* * F,2h,soon', /malformed time "soon"/],
    ['* * F,-2h,15m', /malformed time "-2h"/],
    ['* * G,16h,1h,0.5', /malformed multiplier "0.5"/],
    ['* * G,16h,1h,abc', /malformed multiplier "abc"/],
    ['* * F,2h,15m; G,16h,1h', /malformed parameter set "G,16h,1h"/],
  ])('rejects %j', (text, message) => {
    expect(() => parseRetryRule(text)).toThrow(message);
  });

  it('parseRetryRules parses each line and throws on the first bad one', () => {
    expect(parseRetryRules([DEBIAN, 'example.org * F,1h,5m']).map((r) => r.pattern)).toEqual(['*', 'example.org']);
    expect(() => parseRetryRules([DEBIAN, 'bad'])).toThrow(/"bad"/);
  });
});

describe('findRule', () => {
  const rules = parseRetryRules([
    'ops@example.org * F,1h,1m',
    '*@lists.example.org * F,2h,2m',
    '*.example.net * F,3h,3m',
    'example.com * F,4h,4m',
    '* * F,5h,5m',
  ]);
  it.each([
    ['ops@example.org', 'ops@example.org'],
    ['OPS@Example.ORG', 'ops@example.org'],
    ['dev@example.org', '*'],
    ['a@lists.example.org', '*@lists.example.org'],
    ['a@sub.lists.example.org', '*'],
    ['a@mx.example.net', '*.example.net'],
    ['a@deep.mx.example.net', '*.example.net'],
    ['a@example.net', '*'],
    ['a@example.com', 'example.com'],
    ['a@EXAMPLE.COM', 'example.com'],
    ['a@www.example.com', '*'],
    ['a@elsewhere.test', '*'],
  ])('%s uses rule %s', (address, pattern) => {
    expect(findRule(rules, address)?.pattern).toBe(pattern);
  });

  it('takes the first matching rule in order', () => {
    const r = parseRetryRules(['* * F,1h,1m', 'example.com * F,4h,4m']);
    expect(findRule(r, 'a@example.com')?.params[0]?.cutoff).toBe(H);
  });

  it('finds nothing when no pattern matches or there are no rules', () => {
    expect(findRule(parseRetryRules(['example.com * F,1h,1m']), 'a@example.org')).toBeUndefined();
    expect(findRule([], 'a@example.org')).toBeUndefined();
  });
});

describe('nextAttempt with Debian\'s rule', () => {
  const rule = parseRetryRule(DEBIAN);

  it('first failure: +15m', () => {
    expect(nextAttempt(rule, undefined, T0)).toEqual({ firstFailure: T0, lastTry: T0, nextTry: T0 + 15 * M });
  });

  it('walks the whole schedule: F every 15m, then G 1h, 1.5h, 2.25h..., then F 6h, then gives up after 4d', () => {
    const gaps: number[] = [];
    let state: RetryState | undefined;
    let now = T0;
    for (;;) {
      const next = nextAttempt(rule, state, now);
      if (!next) break;
      expect(next.firstFailure).toBe(T0);
      expect(next.lastTry).toBe(now);
      gaps.push(next.nextTry - now);
      state = next;
      now = next.nextTry;
      if (gaps.length > 200) throw new Error('never gave up');
    }
    // F,2h,15m: failures at 0, 15m, ..., 1h45m give 15m gaps (8 of them).
    expect(gaps.slice(0, 8)).toEqual(Array(8).fill(15 * M));
    // At 2h the G phase starts: 1h (15m*1.5 is less), then 1.5h, then 2.25h, ...
    expect(gaps.slice(8, 11)).toEqual([1 * H, 1.5 * H, 2.25 * H]);
    // 2h + 1h + 1.5h + 2.25h = 6.75h; + 3.375h = 10.125h; + 5.0625h = 15.1875h (< 16h); then 7.59375h.
    expect(gaps.slice(11, 14)).toEqual([3.375 * H, 5.0625 * H, Math.round(7.59375 * H)]);
    // Next failure at 22.78125h: past 16h, so F,4d,6h.
    const lastG = 2 * H + 1 * H + 1.5 * H + 2.25 * H + 3.375 * H + 5.0625 * H + Math.round(7.59375 * H);
    expect(lastG).toBeGreaterThan(16 * H);
    const fCount = gaps.length - 14;
    expect(gaps.slice(14)).toEqual(Array(fCount).fill(6 * H));
    // The last try happened before the 4d cutoff; the one after it is past it.
    expect(now - T0).toBeGreaterThanOrEqual(4 * D);
    expect(now - 6 * H - T0).toBeLessThan(4 * D);
  });

  it.each<[string, RetryState | undefined, number, number | null]>([
    ['first failure', undefined, T0, T0 + 15 * M],
    ['still in F,2h at 1h59m', { firstFailure: T0, lastTry: T0 + 104 * M, nextTry: T0 + 119 * M }, T0 + 119 * M, T0 + 134 * M],
    ['G at exactly 2h: max(1h, 15m*1.5)', { firstFailure: T0, lastTry: T0 + 105 * M, nextTry: T0 + 2 * H }, T0 + 2 * H, T0 + 3 * H],
    ['G after a 1h gap: 1.5h', { firstFailure: T0, lastTry: T0 + 2 * H, nextTry: T0 + 3 * H }, T0 + 3 * H, T0 + 4.5 * H],
    ['G after a 1.5h gap: 2.25h', { firstFailure: T0, lastTry: T0 + 3 * H, nextTry: T0 + 4.5 * H }, T0 + 4.5 * H, T0 + 6.75 * H],
    // A late queue run: the gap grown is the smaller of predicted (1h) and actual (3h).
    ['G grows the predicted gap when the try was late', { firstFailure: T0, lastTry: T0 + 2 * H, nextTry: T0 + 3 * H }, T0 + 5 * H, T0 + 6.5 * H],
    // An early try (-M): grows the actual gap (30m), floored at the 1h interval.
    ['G grows the actual gap when the try was early', { firstFailure: T0, lastTry: T0 + 4 * H, nextTry: T0 + 7 * H }, T0 + 4.5 * H, T0 + 5.5 * H],
    ['F,6h at exactly 16h', { firstFailure: T0, lastTry: T0 + 10 * H, nextTry: T0 + 16 * H }, T0 + 16 * H, T0 + 22 * H],
    ['F,6h just before 4d', { firstFailure: T0, lastTry: T0 + 4 * D - 6 * H - 1, nextTry: T0 + 4 * D - 1 }, T0 + 4 * D - 1, T0 + 4 * D - 1 + 6 * H],
    ['gives up at exactly 4d', { firstFailure: T0, lastTry: T0 + 4 * D - 6 * H, nextTry: T0 + 4 * D }, T0 + 4 * D, null],
    ['gives up after 4d', { firstFailure: T0, lastTry: T0 + 4 * D, nextTry: T0 + 4 * D + 6 * H }, T0 + 5 * D, null],
  ])('%s', (_name, prev, now, expected) => {
    const next = nextAttempt(rule, prev, now);
    if (expected === null) {
      expect(next).toBeNull();
    } else {
      expect(next).toEqual({ firstFailure: prev?.firstFailure ?? now, lastTry: now, nextTry: expected });
    }
  });
});

describe('nextAttempt, other rules', () => {
  it('no rule (or a rule without parameter sets) turns a temporary error into a permanent one', () => {
    expect(nextAttempt(undefined, undefined, T0)).toBeNull();
    expect(nextAttempt(parseRetryRule('* * '), undefined, T0)).toBeNull();
  });

  it('caps the interval at 24h (retry_interval_max)', () => {
    const rule = parseRetryRule('* * G,30d,20h,2');
    const prev: RetryState = { firstFailure: T0, lastTry: T0 + D, nextTry: T0 + D + 20 * H };
    expect(nextAttempt(rule, prev, T0 + D + 20 * H)?.nextTry).toBe(T0 + D + 20 * H + 24 * H);
    expect(nextAttempt(parseRetryRule('* * F,30d,2d'), undefined, T0)?.nextTry).toBe(T0 + 24 * H);
  });

  it('H picks a random gap between the interval and the geometric one', () => {
    const rule: RetryRule = parseRetryRule('* * H,1d,1h,2');
    const prev: RetryState = { firstFailure: T0, lastTry: T0, nextTry: T0 + 2 * H };
    const at = T0 + 2 * H;
    expect(nextAttempt(rule, prev, at, () => 0)?.nextTry).toBe(at + 1 * H);
    expect(nextAttempt(rule, prev, at, () => 0.5)?.nextTry).toBe(at + 2.5 * H);
    expect(nextAttempt(rule, prev, at, () => 1)?.nextTry).toBe(at + 4 * H);
    // The first failure has nothing to grow: the plain interval.
    expect(nextAttempt(rule, undefined, T0, () => 1)?.nextTry).toBe(T0 + 1 * H);
  });
});
