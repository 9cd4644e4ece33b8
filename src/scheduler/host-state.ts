// scheduler/host-state.ts: host retry state (Exim's T:host:ip:port retry records, kept
// in memory): when each smarthost address failed as a host, by which error, and when
// it may be tried again. A host that answers SMTP properly is forgotten (all its
// addresses). Pure bookkeeping: the caller gives the time and the rules; nothing here
// talks to the network or the spool.
import { hostKey, type HostLabel, type HostSpec, type Trouble } from '../core/types.js';
import { errorType, findRule, nextAttempt, type RetryRule, type RetryState } from './retry-rules.js';


/** How long a host waits when no retry rule gives it a time (its rule has timed out). */
const HOST_FALLBACK_RETRY = 15 * 60_000;

/** One address of a host that failed: Exim's retry record plus the error that chose its rule. */
export interface HostRecord extends RetryState {
  ip: string;
  error?: string;
  rule?: RetryRule;
}

export class HostRetryState {
  /** name:port → ip → record. */
  private readonly state = new Map<string, Map<string, HostRecord>>();

  /** When a host waits: the earliest retry time of its failed addresses; undefined when it may be tried. */
  waitsUntil(host: HostSpec, now: number): number | undefined {
    const ips = this.state.get(hostKey(host));
    if (!ips || ips.size === 0) return undefined;
    const next = Math.min(...[...ips.values()].map((r) => r.nextTry));
    return next <= now ? undefined : next;
  }

  /** The hosts whose retry time has come, in the given order. */
  usable(hosts: HostSpec[], now: number): HostSpec[] {
    return hosts.filter((h) => this.waitsUntil(h, now) === undefined);
  }

  /** When every one of `hosts` waits for its retry time: the earliest of those times; else undefined. */
  allWaitUntil(hosts: HostSpec[], now: number): number | undefined {
    if (hosts.length === 0) return undefined;
    let first = Infinity;
    for (const h of hosts) {
      const t = this.waitsUntil(h, now);
      if (t === undefined) return undefined;
      first = Math.min(first, t);
    }
    return first;
  }

  /**
   * A host address failed as a host at `now`: its next retry time by the first rule that
   * matches the host's name and the error (Exim looks host errors up by host name).
   */
  failed(host: HostLabel, trouble: Trouble, rules: RetryRule[], now: number): HostRecord {
    const error = errorType(trouble);
    const rule = findRule(rules, host.name, error);
    const ips = this.state.get(hostKey(host)) ?? new Map<string, HostRecord>();
    const next = nextAttempt(rule, ips.get(host.ip), now) ?? { firstFailure: now, lastTry: now, nextTry: now + HOST_FALLBACK_RETRY };
    const record: HostRecord = { ...next, ip: host.ip, ...(error ? { error } : {}), ...(rule ? { rule } : {}) };
    ips.set(host.ip, record);
    this.state.set(hostKey(host), ips);
    return record;
  }

  /** A host answered properly; true when it had been waiting (mail held back may now be due). */
  succeeded(host: HostSpec): boolean {
    return this.state.delete(hostKey(host));
  }

  /** Is anything known about this host (it failed and has not answered since)? */
  has(host: HostSpec): boolean {
    return this.state.has(hostKey(host));
  }

  records(host: HostSpec): HostRecord[] {
    return [...(this.state.get(hostKey(host))?.values() ?? [])];
  }

  /** Forgets the hosts not in `keep` (a reload changed the smarthost list); all when omitted. */
  clear(keep: HostSpec[] = []): void {
    const kept = new Set(keep.map(hostKey));
    for (const k of [...this.state.keys()]) if (!kept.has(k)) this.state.delete(k);
  }
}
