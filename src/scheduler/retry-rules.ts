// scheduler/retry-rules.ts: using Exim retry rules (parsed in core/retry-rules.ts when
// the configuration is read): the rule for an address, and the pure function that
// gives the next attempt time, or null once the last cutoff, measured from the first
// failure, has passed. No I/O, no clock.
import type { RetryRule } from '../core/retry-rules.js';
import type { Trouble } from '../core/types.js';
export { formatRetryRule, parseRetryRule, parseRetryRules, type RetryRule } from '../core/retry-rules.js';

/** What is remembered between failures (Exim's retry record). */
export interface RetryState {
  firstFailure: number;
  lastTry: number;
  nextTry: number;
}

const MAX_INTERVAL = 24 * 3_600_000; // Exim's retry_interval_max

/**
 * Exim's name for what went wrong in an attempt, as a retry rule's error field names
 * it: `refused`, `timeout_connect` (no connection in time), `timeout` (any other),
 * `lost_connection`, `tls_required`, `auth_failed`, `mail_451` / `rcpt_452` /
 * `data_421` for a 4xx reply to MAIL, RCPT, DATA or the final dot. Undefined for the
 * rest (a bad greeting, a local problem): only a `*` rule matches those.
 */
export function errorType(t: Trouble): string | undefined {
  switch (t.cause) {
    case 'refused': return 'refused';
    case 'timeout': return t.phase === 'connect' ? 'timeout_connect' : 'timeout';
    case 'lost_connection': return 'lost_connection';
    case 'tls': return 'tls_required';
    case 'auth': return 'auth_failed';
    case 'reply': {
      const code = t.reply?.code ?? 0;
      if (code < 400 || code > 499) return undefined;
      const cmd = t.phase === 'mail' ? 'mail' : t.phase === 'rcpt' ? 'rcpt' : t.phase === 'data' || t.phase === 'dot' ? 'data' : undefined;
      return cmd ? `${cmd}_${code}` : undefined;
    }
    default: return undefined;
  }
}

/**
 * Does a rule's error field cover an attempt's error? `*` covers all; `timeout` covers
 * `timeout_connect`; `_A` forms are the plain names; `rcpt_4xx`, `rcpt_45x`, `rcpt_452`
 * cover RCPT replies digit by digit (x: any digit). With no error (Exim's -brt without
 * one) only `*` applies.
 */
export function errorMatches(ruleError: string, actual: string | undefined): boolean {
  if (ruleError === '*') return true;
  if (actual === undefined) return false;
  const want = ruleError.replace(/_A$/, '');
  if (want === actual) return true;
  if (want === 'timeout' && actual.startsWith('timeout')) return true;
  const r = /^(mail|rcpt|data)_(4[0-9x][0-9x])$/.exec(want);
  const a = /^(mail|rcpt|data)_(\d{3})$/.exec(actual);
  if (r && a && r[1] === a[1]) return [...(r[2] as string)].every((d, i) => d === 'x' || d === (a[2] as string)[i]);
  return false;
}

/** Does a rule's pattern match the address or domain (`*`, a domain, `*@domain`, `*.domain`, or an address)? */
function patternMatches(pattern: string, address: string): boolean {
  const a = address.toLowerCase();
  const domain = a.slice(a.lastIndexOf('@') + 1);
  const p = pattern.toLowerCase();
  if (p === '*') return true;
  if (p.startsWith('*@')) return domain === p.slice(2);
  if (p.startsWith('*.')) return domain.endsWith(p.slice(1));
  return p.includes('@') ? p === a : p === domain;
}

/**
 * The first rule whose pattern matches the address and whose error field covers the
 * error (Exim's order). `error` undefined: only `*` rules; `'any'`: the error is not
 * known (a message held back for its host's retry time), the first rule for the address.
 */
export function findRule(rules: RetryRule[], address: string, error?: string): RetryRule | undefined {
  return rules.find((r) => patternMatches(r.pattern, address) && (error === 'any' || errorMatches(r.error, error)));
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
