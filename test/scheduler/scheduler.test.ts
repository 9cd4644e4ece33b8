// The queue manager's logic with a real LMDB spool in a temp folder, a manual clock and
// a scripted in-process transport (the SMTP transport itself is tested end to end):
// a backlog larger than the active window goes out exactly once, deferred recipients
// wait for their retry time, and a dead smarthost holds mail in the spool.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import type { Outcome } from '../../src/core/types.js';
import { Router } from '../../src/router/router.js';
import { parseRetryRules } from '../../src/scheduler/retry-rules.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { LmdbSpool, QUEUE_ONLY_DELAY } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { DeliveryJob, DeliveryResult, Transport } from '../../src/transports/transport.js';

const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const DAY = 86_400_000;
const HOST = { name: '127.0.0.1', port: 2599 };
const LABEL = { name: '127.0.0.1', ip: '127.0.0.1', port: 2599 };
const OK = { code: 250, enhanced: '2.0.0', text: 'OK', derived: true as const };
const LATER = { code: 451, enhanced: '4.0.0', text: 'later', derived: true as const };
const GONE = { code: 550, enhanced: '5.1.1', text: 'no such user' };

/** Answers each recipient as `answer` says; counts what it was given. */
class ScriptedTransport implements Transport {
  readonly name = 'remote_smtp';
  delivered: string[] = [];
  jobs = 0;
  hostDown = false;
  answer: (rcpt: string) => Outcome['kind'] = () => 'delivered';
  async deliver(job: DeliveryJob): Promise<DeliveryResult> {
    this.jobs++;
    await new Promise((r) => setImmediate(r));
    if (this.hostDown) {
      return { outcomes: job.recipients.map((rcpt): Outcome => ({ rcpt, kind: 'deferred', cause: 'refused', phase: 'connect' })),
        troubles: [{ host: LABEL, cause: 'refused', phase: 'connect' }], healthy: [] };
    }
    const outcomes = job.recipients.map((rcpt): Outcome => {
      const kind = this.answer(rcpt);
      if (kind === 'delivered') this.delivered.push(`${job.id} ${rcpt}`);
      return { rcpt, kind, cause: 'reply', phase: kind === 'delivered' ? 'dot' : 'rcpt', host: LABEL,
        reply: kind === 'delivered' ? OK : kind === 'failed' ? GONE : LATER };
    });
    return { outcomes, troubles: [], healthy: [HOST] };
  }
  async close(): Promise<void> {}
}

let dir: string;
let spool: LmdbSpool;
let clock: ManualClock;
let transport: ScriptedTransport;
let events: MtaEvent[];
let scheduler: Scheduler;
const ids = new MessageIdGenerator(77);

function build(activeLimit: number, delayWarning: number[] = []): Scheduler {
  const bus = new EventBus();
  bus.on((e) => events.push(e));
  return new Scheduler({
    spool, router: new Router([HOST]), transport, clock, events: bus,
    retryRules: parseRetryRules(['* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']),
    activeLimit, concurrency: 3, queueInterval: 30 * 60_000, timeoutFrozenAfter: 7 * DAY, ignoreBounceErrorsAfter: 2 * DAY,
    hostname: 'web1.example.org', qualifyDomain: 'example.org', ids: new MessageIdGenerator(78), delayWarning,
  });
}

async function queue(n: number, rcpts = ['a@example.org'], sender = 's@example.org'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = ids.next(clock.now());
    await spool.admit({ id, sender, recipients: rcpts, arrival: clock.now(), protocol: 'local',
      headers: 'Subject: x\n', body: [Buffer.from('body\n')] });
    out.push(id);
  }
  return out;
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`never happened: ${what}`);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-sched-'));
  spool = LmdbSpool.open(dir);
  clock = new ManualClock(T0);
  transport = new ScriptedTransport();
  events = [];
});
afterEach(async () => {
  await scheduler.stop(0);
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('scheduler', () => {
  it('delivers a backlog ten times the active window exactly once', async () => {
    const queued = await queue(200);
    scheduler = build(20);
    scheduler.start();
    await until('all completed', () => events.filter((e) => e.type === 'completed').length === 200);
    expect(spool.count()).toBe(0);
    expect(transport.delivered).toHaveLength(200);
    expect(new Set(transport.delivered).size).toBe(200);
    expect(events.filter((e) => e.type === 'completed').map((e) => (e as { id: string }).id).sort()).toEqual(queued.sort());
  });

  it('admits new mail by ID as it is kicked, without waiting for the timer; kicked -odq mail waits for a queue run', async () => {
    scheduler = build(5);
    scheduler.start();
    const [id] = await queue(1);
    const odq = ids.next(clock.now());
    await spool.admit({ id: odq, sender: 's@example.org', recipients: ['b@example.org'], arrival: clock.now(), protocol: 'local',
      headers: 'Subject: x\n', body: [Buffer.from('body\n')], queueOnly: true });
    scheduler.kick({ id: id as string });
    scheduler.kick({ id: odq });
    await until('delivered', () => transport.delivered.length === 1);
    await scheduler.whenIdle();
    expect(clock.now()).toBe(T0); // no timer fired: the clock never moved
    expect(transport.delivered).toEqual([`${id} a@example.org`]);
    expect(spool.load(id as string)).toBeUndefined();
    expect(spool.load(odq)?.nextAttempt).toBe(T0 + QUEUE_ONLY_DELAY);
    expect(transport.jobs).toBe(1);
  });

  it('keeps a deferred recipient until its retry time, then delivers only it', async () => {
    transport.answer = (r) => (r.startsWith('tmp') ? 'deferred' : 'delivered');
    const [id] = await queue(1, ['ok@example.org', 'tmp@example.org']);
    scheduler = build(5);
    scheduler.start();
    await until('first attempt settled', () => events.some((e) => e.type === 'deferred'));
    expect(spool.load(id as string)?.nextAttempt).toBe(T0 + 15 * 60_000);
    // The attempt is in the message's history, per recipient.
    expect(spool.journal(id as string)).toMatchObject([{ v: 1, type: 'attempt', at: T0, host: LABEL, results: [
      { rcpt: 'ok@example.org', kind: 'delivered', cause: 'reply', phase: 'dot', reply: OK },
      { rcpt: 'tmp@example.org', kind: 'deferred', cause: 'reply', phase: 'rcpt', reply: LATER },
    ] }]);
    transport.answer = () => 'delivered';
    clock.advance(14 * 60_000);
    await scheduler.whenIdle(); // whatever the timer made due has been tried and settled
    expect(transport.jobs).toBe(1);
    clock.advance(60_000);
    await until('retried', () => spool.count() === 0);
    expect(spool.journal(id as string)).toEqual([]); // gone with the message
    expect(transport.delivered).toEqual([`${id} ok@example.org`, `${id} tmp@example.org`]);
  });

  it('freezes, never drops, a message whose recipient passes the last retry cutoff', async () => {
    transport.answer = () => 'deferred';
    const [id] = await queue(1);
    scheduler = build(5);
    scheduler.start();
    for (let day = 0; day < 5 && !events.some((e) => e.type === 'frozen'); day++) {
      for (let step = 0; step < 24 * 4; step++) {
        clock.advance(15 * 60_000);
        await scheduler.whenIdle();
      }
    }
    await until('frozen', () => events.some((e) => e.type === 'frozen'));
    const record = spool.load(id as string);
    expect(record?.frozen).toBe(true);
    expect(record?.recipients[0]?.state).toBe('pending');
    expect(spool.count()).toBe(1);
    expect(events.some((e) => e.type === 'failed' || e.type === 'completed')).toBe(false);
  });

  it('warns the sender once per delay_warning time while a recipient is deferred', async () => {
    transport.answer = (r) => (r === 's@example.org' ? 'delivered' : 'deferred'); // warnings reach the sender
    const [id] = await queue(1, ['tmp@example.org']);
    scheduler = build(5, [3_600_000]); // every hour
    scheduler.start();
    const warnings = () => transport.delivered.filter((d) => d.endsWith(' s@example.org')).length;
    for (let step = 0; step < 9; step++) { // 2 h 15 min of 15-minute retries
      clock.advance(15 * 60_000);
      await scheduler.whenIdle();
    }
    await until('two warnings', () => warnings() === 2);
    expect(spool.load(id as string)?.warningsSent).toBe(2);
    const arrivals = events.filter((e) => e.type === 'received') as { bounceOf?: string; sender: string }[];
    expect(arrivals.map((e) => [e.sender, e.bounceOf])).toEqual([['', id], ['', id]]);
  });

  it('holds mail in the spool while the smarthost waits for its retry time', async () => {
    transport.hostDown = true;
    await queue(10);
    scheduler = build(20);
    scheduler.start();
    await until('first failures', () => events.some((e) => e.type === 'hostError'));
    await until('settled', () => transport.jobs >= 1 && events.filter((e) => e.type === 'deferred').length >= 1);
    const triedWhileDown = transport.jobs;
    expect(triedWhileDown).toBeLessThanOrEqual(3); // the first few in flight at once, not all ten
    const more = await queue(5);
    for (const id of more) scheduler.kick({ id });
    await scheduler.whenIdle(); // the kicked mail admitted, tried (without a connection) and settled
    expect(transport.jobs).toBe(triedWhileDown);
    expect(more.map((id) => spool.load(id)?.nextAttempt)).toEqual(more.map(() => T0 + 15 * 60_000)); // held for the host's retry time
    transport.hostDown = false;
    clock.advance(15 * 60_000); // the host's retry time
    await until('everything delivered', () => spool.count() === 0);
    expect(transport.delivered).toHaveLength(15);
  });

  it('freezes a bounce the hub refuses instead of dropping it, then discards it after ignore_bounce_errors_after', async () => {
    transport.answer = () => 'failed';
    const [id] = await queue(1, ['gone@example.org'], '');
    scheduler = build(5);
    scheduler.start();
    await until('frozen', () => events.some((e) => e.type === 'frozen'));
    expect(events.find((e) => e.type === 'frozen')).toMatchObject({ id, reason: 'bounce' });
    expect(events.some((e) => e.type === 'completed')).toBe(false);
    const held = spool.load(id as string);
    expect(held?.frozen).toBe(true);
    expect(held?.recipients[0]?.state).toBe('pending');
    // Nothing happens before the limit...
    clock.advance(DAY);
    scheduler.kick({ force: true });
    await scheduler.whenIdle();
    expect(transport.jobs).toBe(1);
    // ...then one last try, and the bounce is discarded (no bounce of a bounce); the
    // timer's thaw is journaled in the transaction of the attempt it allowed.
    const journals: unknown[][] = [];
    const apply = spool.apply.bind(spool);
    spool.apply = (changes) => {
      for (const c of changes) if (c.kind === 'settle') journals.push(c.settlement.journal);
      return apply(changes);
    };
    clock.advance(DAY + 1000);
    scheduler.kick({ force: true });
    await until('discarded', () => events.some((e) => e.type === 'completed'));
    expect(transport.jobs).toBe(2);
    expect(events.some((e) => e.type === 'notice' && /Unfrozen by errmsg timer/.test(e.text))).toBe(true);
    expect(journals).toHaveLength(1);
    expect(journals[0]?.[0]).toEqual({ v: 1, type: 'timer', at: clock.now(), action: 'unfrozen' });
    expect(journals[0]?.[1]).toMatchObject({ type: 'attempt' });
    expect(spool.count()).toBe(0);
  });

  it('delivers a frozen bounce that the hub takes on its last try', async () => {
    transport.answer = () => 'failed';
    const [id] = await queue(1, ['back@example.org'], '');
    scheduler = build(5);
    scheduler.start();
    await until('frozen', () => events.some((e) => e.type === 'frozen'));
    transport.answer = () => 'delivered';
    clock.advance(2 * DAY + 1000);
    scheduler.kick({ force: true });
    await until('completed', () => events.some((e) => e.type === 'completed' && e.id === id));
    expect(transport.delivered).toEqual([`${id} back@example.org`]);
  });

  it('cancels a message frozen past its retry cutoff once timeout_frozen_after has passed, bouncing it', async () => {
    transport.answer = () => 'deferred';
    const [id] = await queue(1, ['slow@example.org']);
    scheduler = build(5);
    scheduler.start();
    // Retry until the rule's 4-day cutoff freezes it; each step waits for its attempt to
    // settle, so a slow machine cannot let the clock run past timeout_frozen_after first.
    const settled = () => {
      if (events.some((e) => e.type === 'frozen')) return true;
      const r = spool.load(id as string);
      return r !== undefined && !r.frozen && (r.nextAttempt ?? Infinity) > clock.now();
    };
    for (let i = 0; i < 200 && !events.some((e) => e.type === 'frozen'); i++) {
      clock.advance(6 * 3_600_000);
      scheduler.kick({ force: false });
      await until('the attempt settled', settled);
    }
    await until('frozen', () => events.some((e) => e.type === 'frozen'));
    expect(spool.load(id as string)?.frozen).toBe(true);
    transport.answer = () => 'delivered';
    clock.advance(7 * DAY);
    scheduler.kick({ force: false });
    await until('cancelled', () => events.some((e) => e.type === 'admin' && e.action === 'cancelled' && e.user === 'timeout_frozen_after'));
    await until('bounce delivered', () => transport.delivered.some((d) => d.endsWith(' s@example.org')));
    expect(spool.load(id as string)).toBeUndefined();
  });

  it('a queue run waits for what its attempts produced (a bounce) before it counts as idle', async () => {
    transport.answer = (r) => (r.startsWith('bad') ? 'failed' : 'delivered');
    await queue(1, ['bad@example.org']);
    scheduler = build(5);
    scheduler.start();
    await scheduler.whenIdle();
    // The failure report went out in the same run: the spool is empty, nothing is in flight.
    expect(transport.delivered.some((d) => d.endsWith(' s@example.org'))).toBe(true);
    expect(spool.count()).toBe(0);
  });
});
