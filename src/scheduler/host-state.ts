// scheduler/host-state.ts: host retry state (Exim's host retry records, kept in
// memory): when each smarthost failed as a host and when it may be tried again. A
// host that answers SMTP properly is forgotten. Pure bookkeeping: the caller gives the
// time and the rules; nothing here talks to the network or the spool.
import type { HostLabel, HostSpec } from '../core/types.js';
import { findRule, nextAttempt, type RetryRule, type RetryState } from './retry-rules.js';

const key = (h: { name: string; port: number }) => `${h.name}:${h.port}`;

/** How long a host waits when no retry rule gives it a time (its rule has timed out). */
export const HOST_FALLBACK_RETRY = 15 * 60_000;

export class HostRetryState {
  private readonly state = new Map<string, RetryState>();

  /** The hosts whose retry time has come, in the given order. */
  usable(hosts: HostSpec[], now: number): HostSpec[] {
    return hosts.filter((h) => (this.state.get(key(h))?.nextTry ?? 0) <= now);
  }

  /** When every one of `hosts` waits for its retry time: the earliest of those times; else undefined. */
  allWaitUntil(hosts: HostSpec[], now: number): number | undefined {
    if (hosts.length === 0 || this.usable(hosts, now).length > 0) return undefined;
    return Math.min(...hosts.map((h) => this.state.get(key(h))?.nextTry ?? now));
  }

  /** A host failed as a host at `now`: its next retry time by the rule that matches its name. */
  failed(host: HostLabel | HostSpec, rules: RetryRule[], now: number): RetryState {
    const next = nextAttempt(findRule(rules, host.name), this.state.get(key(host)), now)
      ?? { firstFailure: now, lastTry: now, nextTry: now + HOST_FALLBACK_RETRY };
    this.state.set(key(host), next);
    return next;
  }

  /** A host answered properly; true when it had been waiting (mail held back may now be due). */
  succeeded(host: HostSpec): boolean {
    return this.state.delete(key(host));
  }

  get(host: HostSpec): RetryState | undefined {
    return this.state.get(key(host));
  }

  clear(): void {
    this.state.clear();
  }
}
