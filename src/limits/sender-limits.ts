// limits/sender-limits.ts: limits.per_user and limits.per_client applied to new mail.
// Asked by the receivers just before a message's commit: a message past its sender's
// rate is accepted all the same, frozen in the commit that admits it, with a journal
// entry saying which limit held it (-Mwhy, -Mvl); the first of an episode is announced
// once (one main-log line, one metric) after its commit. A local submission is counted
// against its user (the maildrop file's owner, as the kernel reports it), an SMTP
// session against its client's address.
import type { Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { NewJournalEntry } from '../core/journal.js';
import type { LimitName } from '../core/types.js';
import { formatRate, type Rate } from '../core/units.js';
import { MAX_KEYS, RateCounter, type Counted } from './rate.js';

export type { LimitName };

/** The `[limits]` table as the configuration holds it: null is no limit. */
export type LimitSettings = Record<LimitName, Rate | null>;

/** Who sent a message: a local user (sendmail, -bs), an SMTP client's address, or both. */
export interface Submitter {
  user?: string;
  clientIp?: string;
}

/** A message to be admitted frozen. */
export interface Hold {
  /** Its journal entry, written in the transaction that admits it. */
  entry: NewJournalEntry;
  /** After the commit: announces the episodes this message started (logged and counted once each). */
  announce(id: string): void;
  /** What check() counted, for refund(). */
  counted: [LimitName, string, Counted][];
}

export class SenderLimits {
  private readonly counters = new Map<LimitName, RateCounter>();

  constructor(private settings: LimitSettings, private readonly o: { clock: Clock; events: EventBus; maxKeys?: number }) {
    this.reconfigure(settings);
  }

  /** New settings (SIGHUP): counts are kept for a limit whose period is unchanged. */
  reconfigure(settings: LimitSettings): void {
    this.settings = settings;
    for (const name of ['per_user', 'per_client'] as const) {
      const rate = settings[name];
      const counter = this.counters.get(name);
      if (!rate) this.counters.delete(name);
      else if (counter) counter.setRate(rate);
      else this.counters.set(name, new RateCounter(rate, this.o.maxKeys ?? MAX_KEYS));
    }
  }

  /** Counts one message of `who`; its hold when it is over a limit (per_user named first). */
  check(who: Submitter): Hold | undefined {
    const now = this.o.clock.now();
    const keys: [LimitName, string | undefined][] = [['per_user', who.user], ['per_client', who.clientIp && plainIp(who.clientIp)]];
    let entry: NewJournalEntry | undefined;
    const started: { limit: LimitName; key: string; rate: string }[] = [];
    const counted: Hold['counted'] = [];
    for (const [limit, key] of keys) {
      const counter = this.counters.get(limit);
      const rate = this.settings[limit];
      if (!counter || !rate || key === undefined) continue;
      const hit = counter.count(key, now);
      counted.push([limit, key, hit.counted]);
      if (!hit.over) continue;
      const text = formatRate(rate);
      entry ??= { v: 1, type: 'limit', at: now, limit, key, rate: text };
      if (hit.starts) started.push({ limit, key, rate: text });
    }
    if (!entry) return undefined;
    const events = this.o.events;
    return { entry, announce: (id) => { for (const s of started) events.emit({ type: 'limited', id, ...s }); }, counted };
  }

  /**
   * A message check() counted whose commit failed (a full disk): its sender, or the
   * pickup, tries again. With its hold, taken back exactly as counted (an episode it
   * started is announced by the retry); else one off each of its counts.
   */
  refund(who: Submitter, hold?: Hold): void {
    if (hold) {
      for (const [limit, key, counted] of hold.counted) this.counters.get(limit)?.unhit(key, counted);
      return;
    }
    if (who.user !== undefined) this.counters.get('per_user')?.unhit(who.user);
    if (who.clientIp !== undefined) this.counters.get('per_client')?.unhit(plainIp(who.clientIp));
  }
}

/** An IPv4 client on a dual-stack listener (`::ffff:192.0.2.7`) as its IPv4 address. */
function plainIp(ip: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? ip.slice(7) : ip;
}
