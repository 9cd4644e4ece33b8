// src/limits/rate.ts and src/limits/sender-limits.ts on a hand-driven clock: the count
// over a sliding period, exactly the rate passing and the next one held, episodes (one
// start, ended by a quiet period), keys bounded whatever the number of senders, and
// the rate syntax of core/units.ts.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import { formatRate, parseRate } from '../../src/core/units.js';
import { RateCounter } from '../../src/limits/rate.js';
import { SenderLimits } from '../../src/limits/sender-limits.js';

const HOUR = 3_600_000;
/** The start of a fixed window (windows are aligned on the epoch), so tests know where the boundaries are. */
const T0 = Date.UTC(2026, 11, 7, 10);

describe('rates as the configuration writes them', () => {
  it.each([
    ['200/1h', { count: 200, period: HOUR }],
    ['200/h', { count: 200, period: HOUR }],
    ['50 / 15m', { count: 50, period: 15 * 60_000 }],
    ['1000/1d', { count: 1000, period: 86_400_000 }],
    ['3/90s', { count: 3, period: 90_000 }],
    ['off', null],
    ['OFF', null],
    ['0', null],
  ])('%s', (text, want) => {
    expect(parseRate(text)).toEqual(want);
  });

  it.each(['', '200', '/1h', '200/', '0/1h', '-5/1h', '200/1x', '200/0s', '200/500ms', '2.5/1h', 'lots'])('refuses %j', (text) => {
    expect(parseRate(text)).toBeUndefined();
  });

  it('writes them back', () => {
    expect(['200/1h', '50/15m', '1000/1d', '3/90s', '7/1w'].map((t) => formatRate(parseRate(t)!))).toEqual(['200/1h', '50/15m', '1000/1d', '3/90s', '7/1w']);
  });
});

describe('RateCounter', () => {
  it('lets exactly the rate through in a period and holds the next; one episode start however many follow', () => {
    const c = new RateCounter({ count: 3, period: HOUR });
    const hits = Array.from({ length: 10 }, () => c.hit('root', T0 + 1000));
    expect(hits.map((h) => h.over)).toEqual([false, false, false, true, true, true, true, true, true, true]);
    expect(hits.filter((h) => h.starts)).toHaveLength(1);
    expect(hits[3]!.starts).toBe(true);
  });

  it('counts each key apart', () => {
    const c = new RateCounter({ count: 1, period: HOUR });
    expect(c.hit('a', T0).over).toBe(false);
    expect(c.hit('b', T0).over).toBe(false);
    expect(c.hit('a', T0).over).toBe(true);
    expect(c.hit('b', T0).over).toBe(true);
  });

  it('slides: the last period counts as much as the sliding window still covers of it', () => {
    const c = new RateCounter({ count: 4, period: HOUR });
    for (let i = 0; i < 4; i++) expect(c.hit('k', T0 + 59 * 60_000).over).toBe(false);
    // One minute into the next window the last one still counts nearly whole: held.
    expect(c.hit('k', T0 + HOUR + 60_000).over).toBe(true);
    // Half-way through: 4 * 0.5 + 1 = 3 counted, so one more passes (4 <= 4) and the next does not.
    expect(c.hit('k', T0 + HOUR + HOUR / 2).over).toBe(false);
    expect(c.hit('k', T0 + HOUR + HOUR / 2).over).toBe(true);
    // Two windows on, nothing is left of it.
    const later = Array.from({ length: 5 }, () => c.hit('k', T0 + 3 * HOUR));
    expect(later.map((h) => h.over)).toEqual([false, false, false, false, true]);
  });

  it('counts held messages too: a sender that keeps going stays held until it slows down', () => {
    const c = new RateCounter({ count: 10, period: HOUR });
    // 100 an hour, steadily, for three hours: after the first 10, held, all the way.
    const over: boolean[] = [];
    for (let i = 0; i < 300; i++) over.push(c.hit('cron', T0 + i * 36_000).over);
    expect(over.slice(0, 10).every((o) => !o)).toBe(true);
    expect(over.slice(12).every((o) => o)).toBe(true);
  });

  it('an episode ends after a whole period with nothing over the rate; a sender at its edge gets one episode, not one per message', () => {
    const c = new RateCounter({ count: 2, period: HOUR });
    expect([c.hit('k', T0), c.hit('k', T0), c.hit('k', T0)].map((h) => h.starts)).toEqual([false, false, true]);
    // Over again 30 minutes later: the same episode.
    expect(c.hit('k', T0 + HOUR / 2)).toEqual({ over: true, starts: false });
    // Two periods of quiet: under the rate again, and then over again is a new episode.
    expect(c.hit('k', T0 + 3 * HOUR)).toEqual({ over: false, starts: false });
    expect(c.hit('k', T0 + 3 * HOUR)).toEqual({ over: false, starts: false });
    expect(c.hit('k', T0 + 3 * HOUR)).toEqual({ over: true, starts: true });
  });

  it('a clock stepped back counts as the latest time seen, never as a fresh window', () => {
    const c = new RateCounter({ count: 2, period: HOUR });
    c.hit('k', T0 + HOUR);
    c.hit('k', T0 + HOUR);
    expect(c.hit('k', T0 - 5 * HOUR).over).toBe(true);
  });

  it('keeps at most maxKeys senders, the least recently seen evicted first: memory is bounded whatever the number of senders', () => {
    const c = new RateCounter({ count: 1, period: HOUR }, 100);
    c.hit('busy', T0);
    let biggest = 0;
    let busyKept = true;
    for (let i = 0; i < 100_000; i++) {
      c.hit(`10.0.${i >> 8}.${i & 255}`, T0);
      if (i % 50 === 0) busyKept &&= c.hit('busy', T0).over; // seen often: kept, still over
      biggest = Math.max(biggest, c.size);
    }
    expect(biggest).toBe(100);
    expect(busyKept).toBe(true);
    expect(c.size).toBe(100);
    // One seen long ago was evicted: it starts again from nothing.
    expect(c.hit('10.0.0.0', T0).over).toBe(false);
  });

  it('a new rate of the same period keeps the counts; another period starts again', () => {
    const c = new RateCounter({ count: 2, period: HOUR });
    c.hit('k', T0);
    c.hit('k', T0);
    c.setRate({ count: 3, period: HOUR });
    expect(c.hit('k', T0).over).toBe(false);
    expect(c.hit('k', T0).over).toBe(true);
    c.setRate({ count: 3, period: 2 * HOUR });
    expect(c.hit('k', T0).over).toBe(false);
  });
});

describe('SenderLimits', () => {
  function setup(settings = { per_user: { count: 2, period: HOUR }, per_client: { count: 3, period: HOUR } }) {
    const clock = new ManualClock(T0);
    const events = new EventBus();
    const seen: MtaEvent[] = [];
    events.on((e) => seen.push(e));
    return { clock, seen, limits: new SenderLimits(settings, { clock, events }) };
  }

  it('holds a local user past per_user with a journal entry naming the limit, user and rate; announces the episode once', () => {
    const { limits, seen } = setup();
    expect(limits.check({ user: 'root' })).toBeUndefined();
    expect(limits.check({ user: 'root' })).toBeUndefined();
    const holds = [1, 2, 3].map(() => limits.check({ user: 'root' })!);
    expect(holds[0]!.entry).toEqual({ v: 1, type: 'limit', at: T0, limit: 'per_user', key: 'root', rate: '2/1h' });
    holds.forEach((h, i) => h.announce(`id${i}`));
    expect(seen).toEqual([{ type: 'limited', id: 'id0', limit: 'per_user', key: 'root', rate: '2/1h' }]);
    // Another user is counted apart.
    expect(limits.check({ user: 'www-data' })).toBeUndefined();
  });

  it('holds an SMTP client past per_client by its address (an IPv4 client on a dual-stack socket as IPv4)', () => {
    const { limits } = setup();
    for (let i = 0; i < 3; i++) expect(limits.check({ clientIp: i % 2 ? '::ffff:192.0.2.7' : '192.0.2.7' })).toBeUndefined();
    expect(limits.check({ clientIp: '::ffff:192.0.2.7' })?.entry).toMatchObject({ limit: 'per_client', key: '192.0.2.7', rate: '3/1h' });
    expect(limits.check({ clientIp: '192.0.2.8' })).toBeUndefined();
  });

  it('an off limit holds nothing; a SIGHUP that turns it on or off applies at once', () => {
    const { limits } = setup({ per_user: null as never, per_client: { count: 1, period: HOUR } });
    for (let i = 0; i < 50; i++) expect(limits.check({ user: 'root' })).toBeUndefined();
    limits.reconfigure({ per_user: { count: 1, period: HOUR }, per_client: null });
    expect(limits.check({ user: 'root' })).toBeUndefined();
    expect(limits.check({ user: 'root' })).toBeDefined();
    for (let i = 0; i < 5; i++) expect(limits.check({ clientIp: '127.0.0.1' })).toBeUndefined();
  });

  it('a submitter known by its user and its client counts against both, and names per_user first', () => {
    const { limits } = setup({ per_user: { count: 1, period: HOUR }, per_client: { count: 1, period: HOUR } });
    expect(limits.check({ user: 'root', clientIp: '127.0.0.1' })).toBeUndefined();
    const h = limits.check({ user: 'root', clientIp: '127.0.0.1' });
    expect(h?.entry).toMatchObject({ limit: 'per_user', key: 'root' });
    expect(limits.check({ clientIp: '127.0.0.1' })?.entry).toMatchObject({ limit: 'per_client' });
  });

  it('a message the spool refused (refund) is not counted: a sender retrying through a full disk is not held for it', () => {
    const { limits } = setup();
    for (let i = 0; i < 10; i++) {
      expect(limits.check({ user: 'www-data' })).toBeUndefined();
      limits.refund({ user: 'www-data' });
    }
    for (let i = 0; i < 10; i++) {
      expect(limits.check({ clientIp: '::ffff:127.0.0.1' })).toBeUndefined();
      limits.refund({ clientIp: '127.0.0.1' });
    }
    expect(limits.check({ user: 'www-data' })).toBeUndefined();
    expect(limits.check({ user: 'www-data' })).toBeUndefined();
    expect(limits.check({ user: 'www-data' })?.entry).toMatchObject({ limit: 'per_user', key: 'www-data' });
  });

  it('a refused message that started an episode is taken back with it: the retry announces the episode', () => {
    const { limits, seen } = setup();
    expect(limits.check({ user: 'root' })).toBeUndefined();
    expect(limits.check({ user: 'root' })).toBeUndefined();
    const refused = limits.check({ user: 'root' })!;
    limits.refund({ user: 'root' }, refused); // its commit failed: never announced
    const retried = limits.check({ user: 'root' })!;
    expect(retried.entry).toMatchObject({ limit: 'per_user', key: 'root' });
    retried.announce('id1');
    expect(seen).toEqual([{ type: 'limited', id: 'id1', limit: 'per_user', key: 'root', rate: '2/1h' }]);
  });

  it('a refund after a window boundary takes the message off the window it was counted in', () => {
    const { limits, clock } = setup({ per_user: { count: 3, period: HOUR }, per_client: null as never });
    const boundary = (Math.floor(clock.now() / HOUR) + 1) * HOUR;
    clock.advance(boundary - 4000 - clock.now());
    for (let i = 0; i < 3; i++) expect(limits.check({ user: 'root' })).toBeUndefined();
    const refused = limits.check({ user: 'root' })!; // the fourth in this window: over
    clock.advance(4000 + 0.6 * HOUR); // 60 % into the next window: the last one counts 40 %
    expect(limits.check({ user: 'root' })).toBeUndefined(); // 4 x 0.4 + 1: within 3, counted here
    limits.refund({ user: 'root' }, refused); // the fourth's commit fails now
    // 3 x 0.4 + 1 + 1 = 3.2: over. Had the refund taken the message of this window instead,
    // 4 x 0.4 + 0 + 1 = 2.6 would pass.
    expect(limits.check({ user: 'root' })).toBeDefined();
  });
});
