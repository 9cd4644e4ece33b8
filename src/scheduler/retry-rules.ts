// scheduler/retry-rules.ts: Exim retry rules ("* * F,2h,15m; G,16h,1h,1.5; F,4d,6h"):
// parsing, and the pure function that gives the next attempt time, or null once the
// last cutoff, measured from the first failure, has passed. No I/O, no clock.
import { parseDuration } from '../core/units.js';

export interface RetryParams {
  kind: 'F' | 'G' | 'H';
  cutoff: number;
  interval: number;
  multiplier: number;
}
export interface RetryRule {
  pattern: string;
  error: string;
  params: RetryParams[];
}
/** What is remembered between failures (Exim's retry record). */
export interface RetryState {
  firstFailure: number;
  lastTry: number;
  nextTry: number;
}

const MAX_INTERVAL = 24 * 3_600_000; // Exim's retry_interval_max

function duration(text: string, rule: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`malformed time "${text}" in retry rule "${rule}"`);
  return ms;
}

export function parseRetryRule(text: string): RetryRule {
  const m = /^\s*(\S+)\s+(\S+)\s+(.*)$/.exec(text);
  if (!m) throw new Error(`retry rule "${text}" needs a pattern, an error type and parameter sets`);
  const params = (m[3] as string).split(';').map((s) => s.trim()).filter(Boolean).map((set) => {
    const f = set.split(',').map((x) => x.trim());
    const kind = f[0];
    // A zero interval would retry in a tight loop.
    if (f.length >= 3 && duration(f[2]!, text) === 0) throw new Error(`zero interval in "${set}" of retry rule "${text}"`);
    if (kind === 'F' && f.length === 3) {
      return { kind, cutoff: duration(f[1]!, text), interval: duration(f[2]!, text), multiplier: 1 } as RetryParams;
    }
    if ((kind === 'G' || kind === 'H') && f.length === 4) {
      const multiplier = Number(f[3]);
      if (!(multiplier >= 1)) throw new Error(`malformed multiplier "${f[3]}" in retry rule "${text}"`);
      return { kind, cutoff: duration(f[1]!, text), interval: duration(f[2]!, text), multiplier } as RetryParams;
    }
    throw new Error(`malformed parameter set "${set}" in retry rule "${text}"`);
  });
  return { pattern: m[1] as string, error: m[2] as string, params };
}

export function parseRetryRules(lines: string[]): RetryRule[] {
  return lines.map(parseRetryRule);
}

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
