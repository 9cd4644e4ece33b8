// scheduler/retry-rules.ts: using Exim retry rules (parsed in core/retry-rules.ts when
// the configuration is read): the rule for an address, and the pure function that
// gives the next attempt time, or null once the last cutoff, measured from the first
// failure, has passed. No I/O, no clock.
import type { RetryRule } from '../core/retry-rules.js';
export { parseRetryRule, parseRetryRules, type RetryParams, type RetryRule } from '../core/retry-rules.js';

/** What is remembered between failures (Exim's retry record). */
export interface RetryState {
  firstFailure: number;
  lastTry: number;
  nextTry: number;
}

const MAX_INTERVAL = 24 * 3_600_000; // Exim's retry_interval_max

/** The first rule whose pattern matches the address (`*`, a domain, `*@domain`, or an address). */
export function findRule(rules: RetryRule[], address: string): RetryRule | undefined {
  const a = address.toLowerCase();
  const domain = a.slice(a.lastIndexOf('@') + 1);
  return rules.find((r) => {
    const p = r.pattern.toLowerCase();
    if (p === '*') return true;
    if (p.startsWith('*@')) return domain === p.slice(2);
    if (p.startsWith('*.')) return domain.endsWith(p.slice(1));
    return p.includes('@') ? p === a : p === domain;
  });
}

/**
 * Next attempt after a failure at `now`, or null when the rule's last cutoff has passed
 * (the address times out). `prev` is the state before this failure, if any.
 */
export function nextAttempt(rule: RetryRule | undefined, prev: RetryState | undefined, now: number,
  random: () => number = Math.random): RetryState | null {
  // No rule at all: Exim turns every temporary error into a permanent one.
  if (!rule || rule.params.length === 0) return null;
  const firstFailure = prev?.firstFailure ?? now;
  const age = now - firstFailure;
  const set = rule.params.find((p) => age < p.cutoff);
  if (!set) return null;
  let gap = set.interval;
  if (set.kind !== 'F' && prev) {
    // Exim grows the smaller of the predicted and the actual last gap.
    const last = Math.min(prev.nextTry - prev.lastTry, now - prev.lastTry);
    gap = Math.max(set.interval, last * set.multiplier);
    if (set.kind === 'H') gap = set.interval + random() * (gap - set.interval);
  }
  gap = Math.min(gap, MAX_INTERVAL);
  return { firstFailure, lastTry: now, nextTry: now + Math.round(gap) };
}
