// Property tests for src/scheduler/retry-rules.ts: parsing any text either gives a rule
// or throws a plain Error naming the rule (never a TypeError or similar); nextAttempt
// over generated rules and failure histories never schedules before now, never more
// than Exim's 24 h retry_interval_max ahead, never less than the applicable interval
// (capped), keeps the first failure, and times out exactly when the last cutoff passed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextAttempt, parseRetryRule, type RetryRule, type RetryState } from '../../src/scheduler/retry-rules.js';

const RUNS = 3000;
const MAX = 24 * 3_600_000;
const T0 = Date.UTC(2026, 0, 1);

const unit = fc.constantFrom('s', 'm', 'h', 'd', 'w', '');
const dur = fc.tuple(fc.integer({ min: 0, max: 500 }), unit).map(([n, u]) => `${n}${u}`);
const set = fc.oneof(
  fc.tuple(dur, dur).map(([c, i]) => `F,${c},${i}`),
  fc.tuple(fc.constantFrom('G', 'H'), dur, dur, fc.constantFrom('1', '1.5', '2', '10', '0.5', 'x', '')).map(([k, c, i, m]) => `${k},${c},${i},${m}`),
  fc.string({ maxLength: 12 }),
);
const ruleText = fc.oneof(
  fc.tuple(fc.constantFrom('*', 'example.org', '*@x.test'), fc.constantFrom('*', 'rcpt_4xx', 'timeout'), fc.array(set, { maxLength: 4 }))
    .map(([p, e, sets]) => `${p} ${e} ${sets.join('; ')}`),
  fc.string({ unit: 'binary', maxLength: 50 }),
);

function parsed(text: string): RetryRule | undefined {
  try {
    return parseRetryRule(text);
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expect(err!.constructor).toBe(Error);
    expect((err as Error).message).toMatch(/retry rule/);
    return undefined;
  }
}

describe('retry rules (property)', () => {
  it('parsing any text gives a rule or a plain Error naming the rule; a rule has positive intervals', () => {
    fc.assert(fc.property(ruleText, (text) => {
      const rule = parsed(text);
      if (!rule) return;
      for (const p of rule.params) {
        expect(p.interval).toBeGreaterThan(0);
        expect(p.multiplier).toBeGreaterThanOrEqual(1);
        expect(Number.isFinite(p.cutoff)).toBe(true);
      }
    }), { numRuns: RUNS });
  });

  it('nextAttempt: never before now, at most 24 h ahead, at least the applicable interval; null exactly after the last cutoff', () => {
    // Each step: how long after the previous attempt time (or before it: -M, a clock step) the next failure happens.
    const steps = fc.array(fc.oneof(fc.integer({ min: 0, max: 3 * MAX }), fc.integer({ min: -3_600_000, max: 0 })), { minLength: 1, maxLength: 30 });
    const rules = ruleText.map(parsed).filter((r): r is RetryRule => r !== undefined);
    fc.assert(fc.property(rules, steps, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (rule, deltas, rnd) => {
      let prev: RetryState | undefined;
      let now = T0;
      for (const d of deltas) {
        now = prev ? prev.nextTry + d : now;
        const next = nextAttempt(rule, prev, now, () => rnd);
        const first = prev?.firstFailure ?? now;
        const age = now - first;
        const applicable = rule.params.find((p) => age < p.cutoff);
        if (!applicable) {
          expect(next).toBeNull();
          return;
        }
        expect(next).not.toBeNull();
        expect(next!.firstFailure).toBe(first);
        expect(next!.lastTry).toBe(now);
        expect(next!.nextTry).toBeGreaterThan(now);
        expect(next!.nextTry - now).toBeLessThanOrEqual(MAX);
        expect(next!.nextTry - now).toBeGreaterThanOrEqual(Math.min(applicable.interval, MAX));
        // Failing at (or after) the time it was due pushes the next time later, never back.
        if (prev && d >= 0) expect(next!.nextTry).toBeGreaterThan(prev.nextTry);
        prev = next!;
      }
    }), { numRuns: RUNS });
  });
});
