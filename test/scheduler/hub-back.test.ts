// The smarthost that goes away and comes back, on the injected clock with a real LMDB
// spool and a scripted transport: while it is down, mail whose turn comes is deferred
// with Exim's -54 line and no connection; it is probed every probe_interval; when a
// probe answers, exactly the messages held back for it are due at once (one "is back"
// line), long before the host's retry time; a reload keeps what is known of hosts
// that stay.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import type { HostSpec, Outcome } from '../../src/core/types.js';
import { renderText } from '../../src/log/mainlog.js';
import { Router } from '../../src/router/router.js';
import { parseRetryRules } from '../../src/scheduler/retry-rules.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { DeliveryJob, DeliveryResult, ProbeResult, Transport } from '../../src/transports/transport.js';

const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const M = 60_000;
const DAY = 86_400_000;
const HOST = { name: '127.0.0.1', port: 2599 };
const LABEL = { name: '127.0.0.1', ip: '127.0.0.1', port: 2599 };
const OK = { code: 250, enhanced: '2.0.0', text: 'OK', derived: true as const };
const LATER = { code: 451, enhanced: '4.0.0', text: 'later', derived: true as const };

class HubTransport implements Transport {
  readonly name = 'remote_smtp';
  down = false;
  jobs = 0;
  probes = 0;
  /** Probes answered: the scheduler has taken each answer in by the next macrotask. */
  answered = 0;
  delivered: string[] = [];
  later = new Set<string>();
  async deliver(job: DeliveryJob): Promise<DeliveryResult> {
    this.jobs++;
    await new Promise((r) => setImmediate(r));
    if (this.down) {
      return { outcomes: job.recipients.map((rcpt): Outcome => ({ rcpt, kind: 'deferred', cause: 'refused', phase: 'connect' })),
        troubles: [{ host: LABEL, cause: 'refused', phase: 'connect' }], healthy: [] };
    }
    return {
      outcomes: job.recipients.map((rcpt): Outcome => {
        if (this.later.has(rcpt)) return { rcpt, kind: 'deferred', cause: 'reply', phase: 'rcpt', reply: LATER, host: LABEL };
        this.delivered.push(job.id);
        return { rcpt, kind: 'delivered', cause: 'reply', phase: 'dot', reply: OK, host: LABEL };
      }),
      troubles: [], healthy: [HOST],
    };
  }
  async probe(_host: HostSpec): Promise<ProbeResult> {
    this.probes++;
    await new Promise((r) => setImmediate(r));
    this.answered++;
    return this.down ? { ok: false, host: LABEL, trouble: { cause: 'refused', phase: 'connect' } } : { ok: true, host: LABEL };
  }
  async close(): Promise<void> {}
}

let dir: string;
let spool: LmdbSpool;
let clock: ManualClock;
let transport: HubTransport;
let events: MtaEvent[];
let scheduler: Scheduler;
const ids = new MessageIdGenerator(71);

function settings(hosts: HostSpec[] = [HOST]) {
  return {
    router: new Router(hosts), transport, retryRules: parseRetryRules(['* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']),
    activeLimit: 50, concurrency: 3, timeoutFrozenAfter: 7 * DAY, ignoreBounceErrorsAfter: 2 * DAY, delayWarning: [], probeInterval: M,
  };
}

function build(): Scheduler {
  const bus = new EventBus();
  bus.on((e) => events.push(e));
  return new Scheduler({ spool, clock, events: bus, queueInterval: 30 * M, hostname: 'web1.example.org', qualifyDomain: 'example.org',
    ids: new MessageIdGenerator(72), ...settings() });
}

async function queue(n: number, rcpt = 'a@example.org'): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = ids.next(clock.now());
    await spool.admit({ id, sender: 's@example.org', recipients: [rcpt], arrival: clock.now(), protocol: 'local',
      headers: 'Subject: x\n', body: [Buffer.from('body\n')] });
    out.push(id);
  }
  return out;
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 4000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`never happened: ${what}`);
}

const lines = () => events.map((e) => renderText(e));
const count = (type: MtaEvent['type']) => events.filter((e) => e.type === type).length;

/** The hub is down: the first message finds it refusing, `n` more are held with -54. */
async function hubDownWith(n: number): Promise<string[]> {
  transport.down = true;
  scheduler = build();
  scheduler.start();
  const [first] = await queue(1);
  scheduler.kick({ id: first as string });
  await until('refused and deferred', () => count('deferred') === 1);
  const held = await queue(n);
  for (const id of held) scheduler.kick({ id });
  await until('all deferred', () => count('deferred') === n + 1);
  return [first as string, ...held];
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-hubback-'));
  spool = LmdbSpool.open(dir);
  clock = new ManualClock(T0);
  transport = new HubTransport();
  events = [];
});
afterEach(async () => {
  await scheduler.stop(0);
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a smarthost that is down', () => {
  it('holds new mail with Exim\'s -54 line and no connection, until the host\'s retry time', async () => {
    const all = await hubDownWith(9);
    expect(transport.jobs).toBe(1);
    expect(lines()).toContain('H=127.0.0.1 [127.0.0.1]:2599 Connection refused');
    expect(lines().filter((l) => l === '== a@example.org R=smarthost T=remote_smtp defer (-54): retry time not reached for any host'))
      .toHaveLength(9);
    // Every message waits for the host's retry time (15 min by F,2h,15m), not a time of its own.
    for (const id of all) expect(spool.load(id)?.nextAttempt).toBe(T0 + 15 * M);
  });

  it('is probed every probe_interval; when it answers, the held mail is due at once, in one line', async () => {
    const all = await hubDownWith(9);
    expect(transport.probes).toBe(0);
    clock.advance(M); // a probe: still down
    await until('the first probe answered', () => transport.answered === 1);
    expect(count('hostBack')).toBe(0);
    expect(scheduler.hostStates()).toEqual([{ host: '127.0.0.1:2599', up: false }]);
    transport.down = false;
    clock.advance(M); // the next probe answers
    await until('all delivered', () => transport.delivered.length === 10);
    expect(transport.probes).toBe(2);
    expect(lines()).toContain('H=127.0.0.1 [127.0.0.1]:2599 is back: 10 messages due now');
    expect(clock.now() - T0).toBe(2 * M); // long before the host's retry time (15 min)
    expect(new Set(transport.delivered)).toEqual(new Set(all));
    await until('all completed', () => count('completed') === 10);
  });

  it('makes due only the mail held back for it, not mail deferred for its own reasons', async () => {
    transport.later.add('slow@example.org');
    scheduler = build();
    scheduler.start();
    const [own] = await queue(1, 'slow@example.org');
    scheduler.kick({ id: own as string });
    await until('451', () => count('deferred') === 1);
    transport.down = true;
    const [held] = await queue(1);
    scheduler.kick({ id: held as string });
    await until('refused', () => count('deferred') === 2);
    transport.down = false;
    clock.advance(M);
    await until('held delivered', () => transport.delivered.length === 1);
    expect(lines()).toContain('H=127.0.0.1 [127.0.0.1]:2599 is back: 1 messages due now');
    expect(transport.delivered).toEqual([held]);
    expect(spool.load(own as string)?.nextAttempt).toBe(T0 + 15 * M);
  });

  it('one address of the host refusing while another answers is not the host down', async () => {
    const deliver = transport.deliver.bind(transport);
    transport.deliver = async (job) => {
      const r = await deliver(job);
      return { ...r, troubles: [{ host: { ...LABEL, ip: '127.0.0.9' }, cause: 'refused', phase: 'connect' }] };
    };
    await queue(2);
    scheduler = build();
    scheduler.start();
    await until('both delivered', () => transport.delivered.length === 2);
    expect(lines()).toContain('H=127.0.0.1 [127.0.0.9]:2599 Connection refused');
    expect(count('hostBack')).toBe(0);
    expect(lines().some((l) => l.includes('(-54)'))).toBe(false);
  });

  it('a reload keeps the retry data of a host that stays, and forgets one that goes', async () => {
    await hubDownWith(0);
    scheduler.reconfigure(settings());
    const [a] = await queue(1);
    scheduler.kick({ id: a as string });
    await until('-54', () => lines().some((l) => l.includes('defer (-54)')));
    expect(transport.jobs).toBe(1);
    const other = { name: '127.0.0.2', port: 2599 };
    scheduler.reconfigure(settings([other]));
    transport.down = false;
    const [b] = await queue(1);
    scheduler.kick({ id: b as string });
    await until('delivered to the new host', () => transport.delivered.includes(b as string));
  });
});
