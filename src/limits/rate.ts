// limits/rate.ts: how fast each sender (a local user, an SMTP client address) has sent,
// against one Rate, and its episodes over it. The count over the last period is the
// sliding-window estimate (this fixed window's count plus the last one's, weighted by
// how much of it the sliding window still covers): O(1) time and a few numbers per key.
// Every message counts, held or not, so a sender that keeps going stays held until it
// slows down. An episode over the rate ends once a whole period has passed with no
// message over it: a sender at the edge of its rate gets one episode, not one per
// message. The keys are bounded (least recently seen evicted first), so no number of
// clients or users can grow it; it lives in memory only (a restart forgets it).
import type { Rate } from '../core/units.js';

/** Keys kept per counter: about 100 bytes each. */
export const MAX_KEYS = 10_000;

/** What one message did to its sender's count. */
export interface Hit {
  /** The message is over the rate: hold it. */
  over: boolean;
  /** It is the first over the rate for a whole period: an episode starts. */
  starts: boolean;
}

/** Where hit() counted a message, and what it changed: the window, the time, the last time over before. */
export interface Counted { window: number; at: number; lastOver: number }

interface Entry {
  /** Index of the fixed window `cur` counts (time / period). */
  window: number;
  cur: number;
  prev: number;
  /** When a message of it was last over the rate (-Infinity: never). */
  lastOver: number;
  /** Latest time seen: a time before it (a clock stepped back) counts as it. */
  last: number;
}

export class RateCounter {
  private readonly keys = new Map<string, Entry>();

  constructor(private rate: Rate, private readonly maxKeys = MAX_KEYS) {}

  /** A new rate: counts of another period mean nothing under it and are dropped. */
  setRate(rate: Rate): void {
    if (rate.period !== this.rate.period) this.keys.clear();
    this.rate = rate;
  }

  get size(): number {
    return this.keys.size;
  }

  /** Counts one message of `key` at `now`. */
  hit(key: string, now: number): Hit {
    const { over, starts } = this.count(key, now);
    return { over, starts };
  }

  /** hit(), with what unhit() needs to take exactly this message back. */
  count(key: string, now: number): Hit & { counted: Counted } {
    const { count, period } = this.rate;
    let e = this.keys.get(key);
    if (e) this.keys.delete(key); // re-inserted last: the Map's order is the order of use
    const t = Math.max(now, e?.last ?? now);
    const window = Math.floor(t / period);
    if (!e) e = { window, cur: 0, prev: 0, lastOver: -Infinity, last: t };
    if (window !== e.window) {
      e.prev = window === e.window + 1 ? e.cur : 0;
      e.cur = 0;
      e.window = window;
    }
    e.last = t;
    const covered = 1 - (t - window * period) / period;
    const before = e.prev * covered + e.cur;
    e.cur++;
    const over = before + 1 > count;
    const starts = over && t - e.lastOver >= period;
    const counted = { window, at: t, lastOver: e.lastOver };
    if (over) e.lastOver = t;
    this.keys.set(key, e);
    if (this.keys.size > this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    return { over, starts, counted };
  }

  /**
   * Takes back one message of `key` that hit() counted (`counted`, what it said) and the
   * spool then refused: from the window it was counted in, and an episode it started is
   * started again by the next message over. Without `counted`, one off the current window.
   */
  unhit(key: string, counted?: Counted): void {
    const e = this.keys.get(key);
    if (!e) return;
    if (!counted || counted.window === e.window) {
      if (e.cur > 0) e.cur--;
    } else if (counted.window === e.window - 1 && e.prev > 0) {
      e.prev--;
    }
    if (counted && e.lastOver === counted.at) e.lastOver = counted.lastOver;
  }
}
