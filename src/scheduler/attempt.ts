// scheduler/attempt.ts: one delivery attempt of one message. Its pending recipients
// are routed (router/), the hosts the host watch lets it use are handed to the
// transport with the message as stored (the transport rewrites what it sends), the
// hosts' troubles and answers are told to the watch; then the settle step, run outside
// the transport slot: what the result means (settle.ts, pure), the reports it asks for
// (reports.ts), all committed as one settle Change (tried again while the spool
// cannot be written), the message held for its hosts or not, the events emitted.
import { bounceArrival } from '../bounce/dsn.js';
import type { Settlement } from '../core/change.js';
import type { ChangeResult } from '../core/change.js';
import { hostKey, troubleOf, type HostSpec, type MessageRecord, type Outcome } from '../core/types.js';
import type { JournalEvent, NewJournalEntry } from '../core/journal.js';
import { SpoolWriteError } from '../spool/spool.js';
import type { HostWatch } from './host-watch.js';
import { reportsFor } from './reports.js';
import type { SchedulerState } from './options.js';
import { decideSettle, frozenAction } from './settle.js';

/** The settle step of an attempt, run once its transport slot is free. */
export type SettleStep = () => Promise<void>;

/** What an attempt needs of the scheduler besides its state and the host watch. */
export interface AttemptHooks {
  /** New mail made by an attempt (a bounce, a warning), to be admitted. */
  kick(id: string): void;
  /** timeout_frozen_after has come for a frozen message: cancelled as -Mg cancels. */
  cancelFrozen(record: MessageRecord): Promise<void>;
}

/** The transport's outcomes (keyed by the addresses sent) as outcomes of the spool's recipients. */
function originalsOf(outcomes: Outcome[], routable: string[], redirected: Map<string, { address: string; router: string }>): Outcome[] {
  const bySent = new Map(outcomes.map((o) => [o.rcpt, o]));
  return routable.flatMap((rcpt): Outcome[] => {
    const via = redirected.get(rcpt);
    const o = bySent.get(via?.address ?? rcpt);
    if (!o) return [];
    return [via ? { ...o, rcpt, sentAs: via.address, router: via.router } : { ...o, rcpt }];
  });
}

export class Attempts {
  constructor(private readonly s: SchedulerState, private readonly watch: HostWatch, private readonly hooks: AttemptHooks) {}

  /** One delivery attempt; resolves with the settle step to run outside the slot. */
  async run(id: string, early = false): Promise<SettleStep | undefined> {
    if (this.s.stopping) return undefined;
    const o = this.s.o;
    const record = o.spool.load(id);
    const now = o.clock.now();
    // Gone, frozen, or (for kicked new mail) not due yet, e.g. sendmail -odq; `early`:
    // held back for a host that is back, due now whatever its key says.
    if (!record || record.nextAttempt === null || (record.nextAttempt > now && !(early && !record.frozen))) return undefined;
    // A frozen message is due only when one of its frozen-time limits has come.
    let lastChance = false;
    if (record.frozen) {
      const action = frozenAction(record, o, now);
      if (action === 'wait') return undefined;
      if (action === 'cancel') return () => this.hooks.cancelFrozen(record);
      lastChance = true; // ignore_bounce_errors_after: thawed, tried once more, then discarded
      o.events.emit({ type: 'notice', id, text: 'Unfrozen by errmsg timer' });
    }
    const outcomes: Outcome[] = [];
    const routable: string[] = [];
    // Recipients a router redirected (hub_user): original → the address sent and that router.
    const redirected = new Map<string, { address: string; router: string }>();
    let route: { router: string; transport: string; hosts: HostSpec[] } = { router: 'smarthost', transport: o.transport.name, hosts: [] };
    for (const r of record.recipients) {
      if (r.state !== 'pending') continue;
      const routing = o.router.route(r.address);
      if (routing.ok) {
        routable.push(r.address);
        const { address, ...rest } = routing.route;
        if (address !== undefined) redirected.set(r.address, { address, router: rest.router });
        // One set of hosts for the message; a redirected recipient names its own router.
        route = address === undefined ? rest : { ...rest, router: route.router };
      } else {
        outcomes.push({ rcpt: r.address, kind: 'failed', cause: 'unroutable', note: routing.reason });
      }
    }
    const logged: JournalEvent[] = [];
    let headers = '';
    let hostWait: number | undefined;
    const hosts = this.watch.usable(route.hosts, now);
    if (routable.length > 0 && hosts.length === 0) {
      // Every host waits for its retry time (Exim's -54): no connection, the message
      // waits for the hosts, and their return (a probe) makes it due at once.
      for (const rcpt of routable) {
        const via = redirected.get(rcpt);
        outcomes.push({ rcpt, kind: 'deferred', cause: 'retry_time', note: 'retry time not reached for any host', ...(via ? { sentAs: via.address, router: via.router } : {}) });
      }
      hostWait = this.watch.allWaitUntil(route.hosts, now);
    } else if (routable.length > 0) {
      headers = o.spool.headers(id) ?? '';
      const spool = o.spool;
      const result = await o.transport.deliver({
        id,
        sender: record.sender,
        // What the hub is given: each redirected address once (two originals may meet in one).
        recipients: [...new Set(routable.map((a) => redirected.get(a)?.address ?? a))],
        hosts,
        size: record.size,
        headers,
        body: () => spool.body(id, record.chunks),
        ...(record.chunks > 0 ? { bodyChunks: () => spool.bodyChunks(id, record.chunks) } : {}),
      });
      const after = o.clock.now();
      // An address of a host that then answered on another address is not a host down.
      const answered = new Set(result.healthy.map(hostKey));
      for (const t of result.troubles) {
        if (!answered.has(hostKey(t.host))) this.watch.failed(t, after);
        const e = { type: 'hostError', id, host: t.host, result: troubleOf(t) } as const;
        o.events.emit(e);
        logged.push({ at: after, event: e });
      }
      for (const n of result.notes ?? []) {
        const e = { type: 'hostError', id, host: n.host, result: troubleOf(n), ...(n.fellBack ? { fellBack: true as const } : {}) } as const;
        o.events.emit(e);
        logged.push({ at: after, event: e });
      }
      for (const h of result.healthy) {
        // A host back from its retry wait: mail held back for it is due now.
        const label = result.outcomes.find((x) => x.host?.name === h.name && x.host.port === h.port)?.host;
        this.watch.answered(h, label ?? { name: h.name, ip: h.name, port: h.port });
      }
      outcomes.push(...(redirected.size === 0 ? result.outcomes : originalsOf(result.outcomes, routable, redirected)));
      if (result.healthy.length === 0) hostWait = this.watch.allWaitUntil(route.hosts, after);
    }
    const held = hostWait !== undefined ? route.hosts : undefined;
    return () => this.settle(record, outcomes, route, logged, headers || (o.spool.headers(id) ?? ''), lastChance, hostWait, held);
  }

  private async settle(record: MessageRecord, outcomes: Outcome[], route: { router: string; transport: string },
    logged: JournalEvent[], headers: string, lastChance = false, hostWait?: number, held?: HostSpec[]): Promise<void> {
    const o = this.s.o;
    const now = o.clock.now();
    const d = decideSettle({ record, outcomes, route, rules: o.retryRules, now, limits: o, headers, lastChance,
      jitter: Math.random(), ...(hostWait !== undefined ? { hostWait } : {}) });
    const waitsForHost = held !== undefined && d.freeze === undefined && outcomes.some((x) => x.kind === 'deferred' && x.host === undefined);
    const reports = reportsFor(o, record, d, headers, now);
    const entry: NewJournalEntry = { v: 1, type: 'attempt', ...d.attempt, events: [...logged, ...d.events.map((event) => ({ at: now, event }))] };
    const result = await this.recorded(record.id, {
      recipients: d.recipients,
      nextAttempt: d.nextAttempt,
      ...(d.lastError !== undefined ? { lastError: d.lastError } : {}),
      ...(d.freeze ? { freeze: true, ...(d.freeze.wakeAt !== undefined ? { wakeAt: d.freeze.wakeAt } : {}) } : {}),
      // The errmsg timer's thaw is journaled with the attempt it allowed (its notice was logged as it started).
      journal: lastChance ? [{ v: 1, type: 'timer', at: now, action: 'unfrozen' }, entry] : [entry],
      ...(reports.length > 0 ? { enqueue: reports } : {}),
      ...(d.warning ? { warningsSent: d.warning.warningsSent } : {}),
    });
    this.watch.hold(record.id, waitsForHost && result.kind === 'changed' ? held : undefined);
    for (const e of d.events) o.events.emit(e);
    if (result.kind !== 'gone') {
      for (const m of reports) {
        o.events.emit(bounceArrival(m));
        this.hooks.kick(m.id);
      }
    }
    if (result.kind === 'completed') o.events.emit({ type: 'completed', id: record.id });
  }

  /**
   * The settle Change, again and again while the spool cannot be written (a full disk):
   * the message stays in the active window meanwhile, so what was delivered is never
   * sent again; deliveries go on, and the one that frees space lets this through.
   */
  private async recorded(id: string, settlement: Settlement): Promise<ChangeResult> {
    for (let wait = 1000; ; wait = Math.min(wait * 2, 30_000)) {
      try {
        const [result] = await this.s.o.spool.apply([{ kind: 'settle', id, settlement }]);
        return result ?? { kind: 'gone' };
      } catch (err) {
        if (!(err instanceof SpoolWriteError) || this.s.stopping) throw err;
        await new Promise<void>((resolve) => this.s.o.clock.at(this.s.o.clock.now() + wait, resolve));
      }
    }
  }
}
