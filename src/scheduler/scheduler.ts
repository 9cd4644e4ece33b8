// scheduler/scheduler.ts: the queue manager. Owns the active window (at most
// activeLimit messages in memory, fed from the spool's due index, never a scan), the
// single due-timer and dispatch: delivery concurrency (p-queue), one attempt per
// message, its result committed as one spool.settle(). The decision what a result
// means is settle.ts's (pure); host retry state is host-state.ts's. While a smarthost
// is down it probes it every probe_interval and, when it answers, makes the messages
// held back for it due at once (found through heldFor, never a scan). Does not talk
// SMTP (transports/) or decide routes (router/).
import { Readable } from 'node:stream';
import PQueue from 'p-queue';
import type { Clock, Timer } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import { hostKey, troubleOf, type HostLabel, type HostSpec, type MessageRecord, type NewMessage, type Outcome } from '../core/types.js';
import type { JournalEvent, NewJournalEntry } from '../core/journal.js';
import type { Router } from '../router/router.js';
import { SpoolWriteError, type DueKey, type Settlement, type SettleResult, type Spool } from '../spool/spool.js';
import type { ProbeResult, Transport } from '../transports/transport.js';
import type { RetryRule } from './retry-rules.js';
import { bounceArrival, failureReport, RETURN_SIZE_LIMIT, type FailedRecipient } from '../bounce/dsn.js';
import { delayReport } from '../bounce/delay-warning.js';
import { HostRetryState } from './host-state.js';
import { decideSettle, frozenAction, type SettleDecision } from './settle.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import { giveUp, type GiveUpContext } from './give-up.js';
import { rewriteHeaders, rewriteSender, type RewriteRules } from '../rewrite/rewriter.js';

export interface SchedulerOptions {
  spool: Spool;
  router: Router;
  transport: Transport;
  clock: Clock;
  events: EventBus;
  retryRules: RetryRule[];
  /** retry.timeout_frozen_after, ms after arrival: a frozen message is then cancelled (0: never). */
  timeoutFrozenAfter: number;
  /** retry.ignore_bounce_errors_after, ms after arrival: a frozen bounce gets one last try, then is discarded. */
  ignoreBounceErrorsAfter: number;
  /** retry.delay_warning, ms after arrival. */
  delayWarning: number[];
  activeLimit: number;
  concurrency: number;
  /** -q<interval>: the longest a due message waits for a look, ms. */
  queueInterval: number;
  /** smarthost.probe_interval, ms: how often a host that is down is probed (0: never). */
  probeInterval?: number;
  /** [rewrite]: sender rewriting on the way out (rewrite/); the spool keeps the original. */
  rewrite?: RewriteRules;
  /** For bounces: names, and this process's one ID generator (shared with receiving). */
  hostname: string;
  qualifyDomain: string;
  ids: MessageIdGenerator;
  user?: string;
}

/** What a configuration reload (SIGHUP) may change while the scheduler runs. */
export type SchedulerSettings = Pick<SchedulerOptions, 'router' | 'transport' | 'retryRules' | 'delayWarning' | 'activeLimit' | 'concurrency'
  | 'timeoutFrozenAfter' | 'ignoreBounceErrorsAfter'> & Partial<Pick<SchedulerOptions, 'probeInterval' | 'rewrite'>>;


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

export class Scheduler {
  private readonly active = new Set<string>();
  private readonly queue: PQueue;
  private readonly hostRetry = new HostRetryState();
  /** Messages deferred only because every host of their route was down: host → IDs (what its return makes due). */
  private readonly heldFor = new Map<string, Set<string>>();
  /** Messages due at once whatever their due key says: their host is back. */
  private readonly flushed = new Set<string>();
  /** The armed probe of each host that is down. */
  private readonly probes = new Map<string, Timer>();
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private started = false;
  private kicked = false;
  /** New mail, admitted by ID without reading the due index (Postfix's incoming queue). */
  private readonly incoming = new Set<string>();
  /** Where the last look at the due index stopped; reset by the timer and forced runs. */
  private cursor: DueKey | undefined;
  private stopping = false;
  private filling = false;
  private idleWaiters: (() => void)[] = [];

  private o: SchedulerOptions;

  constructor(options: SchedulerOptions) {
    this.o = { ...options };
    this.queue = new PQueue({ concurrency: options.concurrency });
  }

  /**
   * New settings in place (SIGHUP). The same scheduler keeps its active window, so a
   * message in flight is never picked up a second time; the old transport finishes
   * what it carries and closes.
   */
  reconfigure(next: SchedulerSettings): void {
    const old = this.o.transport;
    this.o = { ...this.o, ...next };
    this.queue.concurrency = next.concurrency;
    // Retry data is kept for the hosts that are still smarthosts (same name and port).
    const kept = next.router.destinations();
    this.hostRetry.clear(kept);
    const keys = new Set(kept.map(hostKey));
    for (const [k, t] of this.probes) if (!keys.has(k)) { t.cancel(); this.probes.delete(k); }
    for (const k of [...this.heldFor.keys()]) if (!keys.has(k)) for (const id of this.heldFor.get(k) ?? []) this.flushed.add(id);
    for (const k of [...this.heldFor.keys()]) if (!keys.has(k)) this.heldFor.delete(k);
    this.cursor = undefined;
    if (old !== next.transport) void old.close();
    this.kick();
  }

  /** -Mg from the local socket: done between attempts, never during one. */
  async giveUp(id: string, user: string): Promise<'done' | 'gone' | 'locked'> {
    if (this.active.has(id)) return 'locked';
    const bounce = await giveUp(this.giveUpContext(), id, user);
    if (bounce === undefined) return 'gone';
    if (bounce) this.kick({ id: bounce });
    return 'done';
  }

  /** Messages in the active window now (the metrics' `active`). */
  activeCount(): number {
    return this.active.size;
  }

  /** Each smarthost (name:port) and whether it is up: not failed as a host since it last answered. */
  hostStates(): { host: string; up: boolean }[] {
    return this.o.router.destinations().map((h) => ({ host: hostKey(h), up: !this.hostRetry.has(h) }));
  }

  /** Whether a message is being delivered now (postern-qgrep's bulk actions leave it alone). */
  isActive(id: string): boolean {
    return this.active.has(id);
  }

  start(): void {
    this.started = true;
    this.cursor = undefined;
    this.fill();
  }

  /**
   * New mail (`id`), or "look at the due index now". `force` (-qf, -M) also forgets host
   * retry times and looks at the due index from its start.
   */
  kick(opts: { id?: string; force?: boolean } = {}): void {
    if (opts.force) {
      this.hostRetry.clear();
      this.cursor = undefined;
    }
    if (opts.id !== undefined) {
      // Bounded: past the limit new mail is found through the due index instead.
      if (this.incoming.size < this.o.activeLimit * 4) this.incoming.add(opts.id);
      else this.cursor = undefined;
    }
    // Arrivals of one event-loop turn share one look at the due index.
    if (this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      this.fill();
    });
  }

  /** Resolves when nothing due remains and nothing is in flight (for queue runs). */
  whenIdle(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops admitting; waits (at most graceMs) for every attempt in the window to be
   * delivered and settled, so its log lines are written; then closes the transport.
   * Waiting tasks see `stopping` and end at once.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.timer?.cancel();
    for (const t of this.probes.values()) t.cancel();
    this.probes.clear();
    let grace: { cancel(): void } | undefined;
    await Promise.race([this.whenIdle(), new Promise((r) => { grace = this.o.clock.at(this.o.clock.now() + graceMs, () => r(undefined)); })]);
    grace?.cancel();
    await this.o.transport.close();
  }

  private fill(): void {
    if (!this.started || this.stopping || this.filling) return;
    this.filling = true;
    try {
      const now = this.o.clock.now();
      // First what was held back for a host that is back (due now, whatever its key).
      // While every host is down, mail whose turn comes is still admitted: the attempt
      // defers it to the hosts' retry time with Exim's -54 line, not left silent.
      for (const id of this.flushed) {
        if (this.active.size >= this.o.activeLimit) break;
        if (this.active.has(id)) continue; // its settle is not written yet: after it
        this.flushed.delete(id);
        this.admit(id, true);
      }
      for (const id of this.incoming) {
        if (this.active.size >= this.o.activeLimit) break;
        this.incoming.delete(id);
        if (!this.active.has(id)) this.admit(id);
      }
      // The backlog: due mail after the cursor, so the active window is not read again
      // and again. Everything that becomes due later is ahead of the cursor, except
      // what the timer and forced runs catch by resetting it.
      const free = this.o.activeLimit - this.active.size;
      if (free > 0) {
        for (const key of this.o.spool.dueAfter(this.cursor, now, free, this.active)) {
          this.admit(key.id);
          this.cursor = key;
        }
      }
      if (this.active.size < this.o.activeLimit) {
        const next = this.o.spool.nextDueAfter(now);
        this.arm(Math.min(next ?? Infinity, now + this.o.queueInterval));
      }
    } catch (err) {
      this.o.events.emit({ type: 'notice', text: `queue manager: cannot read the spool: ${(err as Error).message}` });
      this.arm(this.o.clock.now() + 5000);
    } finally {
      this.filling = false;
    }
  }

  private arm(at: number): void {
    // Never move an armed timer later: under steady traffic it would never fire.
    if (this.timer && at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.o.clock.at(at, () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.cursor = undefined;
      this.fill();
    });
  }

  private admit(id: string, early = false): void {
    this.active.add(id);
    // The delivery holds a transport slot; writing its result does not, so the next
    // delivery starts while this one's settle waits for its sync.
    void this.queue.add(() => this.attempt(id, early)).then((settle) => settle?.()).catch((err: Error) => {
      // Stopping (the spool may be closing under a delivery that outlived the grace):
      // the result is not recorded, the message stays due, nothing more to do.
      if (this.stopping) {
        this.o.events.emit({ type: 'notice', id, text: `delivery result not recorded while stopping: ${err.message}` });
        return;
      }
      // A bug or a spool that cannot record a result: carrying on could send this
      // message again and again. Stop (Postfix's panic); the spool says what is left.
      this.o.events.emit({ type: 'notice', id, text: `delivery attempt failed internally: ${err.stack ?? err.message}` });
      this.stopping = true;
      queueMicrotask(() => {
        throw err;
      });
    }).finally(() => {
      this.active.delete(id);
      // What this attempt made (a bounce, a warning) is admitted before anyone is told
      // the queue is idle: a queue run ends only when nothing it can do is left.
      this.fill();
      if (this.active.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  /** One delivery attempt; resolves with the settle step to run outside the slot. */
  private async attempt(id: string, early = false): Promise<(() => Promise<void>) | undefined> {
    if (this.stopping) return undefined;
    const record = this.o.spool.load(id);
    const now = this.o.clock.now();
    // Gone, frozen, or (for kicked new mail) not due yet, e.g. sendmail -odq; `early`:
    // held back for a host that is back, due now whatever its key says.
    if (!record || record.nextAttempt === null || (record.nextAttempt > now && !(early && !record.frozen))) return undefined;
    // A frozen message is due only when one of its frozen-time limits has come.
    let lastChance = false;
    if (record.frozen) {
      const action = frozenAction(record, this.o, now);
      if (action === 'wait') return undefined;
      if (action === 'cancel') return () => this.cancelFrozen(record);
      lastChance = true; // ignore_bounce_errors_after: thawed, tried once more, then discarded
      this.o.events.emit({ type: 'notice', id, text: 'Unfrozen by errmsg timer' });
    }
    const pending = record.recipients.filter((r) => r.state === 'pending');
    const outcomes: Outcome[] = [];
    const routable: string[] = [];
    // Recipients a router redirected (hub_user): original → the address sent and that router.
    const redirected = new Map<string, { address: string; router: string }>();
    let route: { router: string; transport: string; hosts: HostSpec[] } = { router: 'smarthost', transport: this.o.transport.name, hosts: [] };
    for (const r of pending) {
      const routing = this.o.router.route(r.address);
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
    const hosts = this.hostRetry.usable(route.hosts, now);
    if (routable.length > 0 && hosts.length === 0) {
      // Every host waits for its retry time (Exim's -54): no connection, the message
      // waits for the hosts, and their return (a probe) makes it due at once.
      for (const rcpt of routable) {
        const via = redirected.get(rcpt);
        outcomes.push({ rcpt, kind: 'deferred', cause: 'retry_time', note: 'retry time not reached for any host', ...(via ? { sentAs: via.address, router: via.router } : {}) });
      }
      hostWait = this.hostRetry.allWaitUntil(route.hosts, now);
    } else if (routable.length > 0) {
      headers = this.o.spool.headers(id) ?? '';
      // Rewritten as it leaves (Debian's headers_rewrite and return_path on the
      // smarthost transport): the envelope sender and the address headers; the body
      // streams past untouched, and the spool (and any bounce) keeps the original.
      const rw = this.o.rewrite;
      const outgoing = rw ? rewriteHeaders(headers, rw) : headers;
      // What the hub is given: each redirected address once (two originals may meet in one).
      const wire = [...new Set(routable.map((a) => redirected.get(a)?.address ?? a))];
      const result = await this.o.transport.deliver({
        id,
        sender: rw ? rewriteSender(record.sender, rw) : record.sender,
        recipients: wire,
        hosts,
        size: record.size + outgoing.length - headers.length,
        message: () => this.messageStream(id, outgoing, record.chunks),
        // headers are byte strings, as the body text is
        ...(record.chunks > 0 ? { messageText: () => `${outgoing}\n${this.o.spool.bodyText(id, record.chunks)}` } : {}),
      });
      const after = this.o.clock.now();
      // An address of a host that then answered on another address is not a host down.
      const answered = new Set(result.healthy.map(hostKey));
      for (const t of result.troubles) {
        if (!answered.has(hostKey(t.host))) {
          this.hostRetry.failed(t.host, t, this.o.retryRules, after);
          this.probeLater(t.host);
        }
        const e = { type: 'hostError', id, host: t.host, result: troubleOf(t) } as const;
        this.o.events.emit(e);
        logged.push({ at: after, event: e });
      }
      for (const n of result.notes ?? []) {
        const e = { type: 'hostError', id, host: n.host, result: troubleOf(n), ...(n.fellBack ? { fellBack: true as const } : {}) } as const;
        this.o.events.emit(e);
        logged.push({ at: after, event: e });
      }
      for (const h of result.healthy) {
        // A host back from its retry wait: mail held back for it is due now.
        if (this.hostRetry.succeeded(h)) {
          const label = result.outcomes.find((o) => o.host?.name === h.name && o.host.port === h.port)?.host;
          this.hostBack(h, label ?? { name: h.name, ip: h.name, port: h.port });
        }
      }
      outcomes.push(...(redirected.size === 0 ? result.outcomes : originalsOf(result.outcomes, routable, redirected)));
      if (result.healthy.length === 0) hostWait = this.hostRetry.allWaitUntil(route.hosts, after);
    }
    const held = hostWait !== undefined ? route.hosts : undefined;
    return () => this.settle(record, outcomes, route, logged, headers || (this.o.spool.headers(id) ?? ''), lastChance, hostWait, held);
  }

  /** Arms a probe of a host that failed, probe_interval from now (one per host). */
  private probeLater(host: { name: string; port: number }): void {
    const k = hostKey(host);
    const every = this.o.probeInterval ?? 0;
    if (!this.o.transport.probe || every <= 0 || this.probes.has(k) || this.stopping) return;
    if (!this.o.router.destinations().some((d) => hostKey(d) === k)) return;
    this.probes.set(k, this.o.clock.at(this.o.clock.now() + every, () => void this.probe({ name: host.name, port: host.port })));
  }

  /** Connect, EHLO (TLS, AUTH), QUIT: back means up again; else another probe later. */
  private async probe(host: HostSpec): Promise<void> {
    const k = hostKey(host);
    const transport = this.o.transport;
    if (this.stopping || !this.hostRetry.has(host) || !transport.probe) {
      this.probes.delete(k);
      return;
    }
    let r: ProbeResult;
    try {
      r = await transport.probe(host);
    } catch (err) {
      r = { ok: false, host: { name: host.name, ip: host.name, port: host.port }, trouble: { cause: 'local', note: (err as Error).message } };
    }
    this.probes.delete(k);
    if (this.stopping) return;
    if (r.ok) {
      if (this.hostRetry.succeeded(host)) this.hostBack(host, r.host);
    } else if (this.hostRetry.has(host)) {
      this.probeLater(host);
    }
  }

  /** A host answered again: everything held back only for it is due now, in one log line. */
  private hostBack(host: HostSpec, label: HostLabel): void {
    const k = hostKey(host);
    this.probes.get(k)?.cancel();
    this.probes.delete(k);
    const ids = this.heldFor.get(k) ?? new Set<string>();
    this.heldFor.delete(k);
    let due = 0;
    for (const id of ids) {
      for (const other of this.heldFor.values()) other.delete(id);
      // One in the window right now settles on its own (hold() sees the host is back).
      if (this.active.has(id)) continue;
      this.flushed.add(id);
      due++;
    }
    this.cursor = undefined;
    this.o.events.emit({ type: 'hostBack', host: label, due });
    this.kick();
  }

  /** After a settle: is the message held back for its hosts (then their return makes it due), or not any more? */
  private hold(id: string, hosts: HostSpec[] | undefined): void {
    for (const set of this.heldFor.values()) set.delete(id);
    if (hosts === undefined) return;
    if (this.hostRetry.allWaitUntil(hosts, this.o.clock.now()) === undefined) {
      // A host came back while this attempt ran: due again at once.
      this.flushed.add(id);
      return;
    }
    for (const h of hosts) {
      const k = hostKey(h);
      const set = this.heldFor.get(k) ?? new Set<string>();
      set.add(id);
      this.heldFor.set(k, set);
    }
  }

  /** timeout_frozen_after: cancelled as -Mg cancels (a bounce is only discarded). */
  private async cancelFrozen(record: MessageRecord): Promise<void> {
    const bounce = await giveUp(this.giveUpContext(), record.id, 'timeout_frozen_after');
    if (bounce) this.kick({ id: bounce });
  }

  /** What -Mg needs of this scheduler: the spool, the log, the one ID generator, the names for the bounce. */
  private giveUpContext(): GiveUpContext {
    const o = this.o;
    return { spool: o.spool, events: o.events, ids: o.ids, hostname: o.hostname, qualifyDomain: o.qualifyDomain, now: o.clock.now() };
  }

  /**
   * spool.settle, again and again while the spool cannot be written (a full disk): the
   * message stays in the active window meanwhile, so what was delivered is never sent
   * again; deliveries go on, and the one that frees space lets this through.
   */
  private async recorded(id: string, s: Settlement): Promise<SettleResult> {
    for (let wait = 1000; ; wait = Math.min(wait * 2, 30_000)) {
      try {
        return await this.o.spool.settle(id, s);
      } catch (err) {
        if (!(err instanceof SpoolWriteError) || this.stopping) throw err;
        await new Promise<void>((resolve) => this.o.clock.at(this.o.clock.now() + wait, resolve));
      }
    }
  }

  private report(record: MessageRecord, failed: FailedRecipient[], headers: string, now: number): NewMessage {
    return failureReport({
      id: this.o.ids.next(now), now, hostname: this.o.hostname, qualifyDomain: this.o.qualifyDomain,
      ...(this.o.user ? { user: this.o.user } : {}),
      original: record, originalHeaders: headers,
      originalBody: this.o.spool.bodyPrefix(record.id, RETURN_SIZE_LIMIT + 1), failed,
    });
  }

  /** The reports a decision asks for, as messages to commit with the result. */
  private reports(record: MessageRecord, d: SettleDecision, headers: string, now: number): NewMessage[] {
    const out: NewMessage[] = [];
    if (d.bounce) out.push(this.report(record, d.bounce, headers, now));
    if (d.warning) {
      out.push(delayReport({
        id: this.o.ids.next(now), now, hostname: this.o.hostname, qualifyDomain: this.o.qualifyDomain,
        ...(this.o.user ? { user: this.o.user } : {}), original: record, originalHeaders: headers, delay: d.warning.delay,
        delayed: d.warning.delayed,
      }));
    }
    return out;
  }

  /** Headers, the blank line, then the body chunks as the spool streams them. */
  private messageStream(id: string, headers: string, chunks: number): Readable {
    const body = this.o.spool.body(id, chunks);
    async function* all() {
      yield Buffer.from(headers + '\n', 'latin1'); // headers are byte strings
      for await (const chunk of body) yield chunk as Buffer;
    }
    return Readable.from(all(), { objectMode: false });
  }

  private async settle(record: MessageRecord, outcomes: Outcome[], route: { router: string; transport: string },
    logged: JournalEvent[], headers: string, lastChance = false, hostWait?: number, held?: HostSpec[]): Promise<void> {
    const now = this.o.clock.now();
    const d = decideSettle({ record, outcomes, route, rules: this.o.retryRules, now, limits: this.o, headers, lastChance,
      jitter: Math.random(), ...(hostWait !== undefined ? { hostWait } : {}) });
    const waitsForHost = held !== undefined && d.freeze === undefined && outcomes.some((o) => o.kind === 'deferred' && o.host === undefined);
    const reports = this.reports(record, d, headers, now);
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
    this.hold(record.id, waitsForHost && result.kind !== 'gone' && result.kind !== 'completed' ? held : undefined);
    for (const e of d.events) this.o.events.emit(e);
    if (result.kind !== 'gone') {
      for (const m of reports) {
        this.o.events.emit(bounceArrival(m));
        this.kick({ id: m.id });
      }
    }
    if (result.kind === 'completed') this.o.events.emit({ type: 'completed', id: record.id });
  }
}
