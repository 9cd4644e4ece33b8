// scheduler/scheduler.ts: the queue manager, put together from its nouns: the active
// window (window.ts: what is in memory, fed from the due index, the due-timer,
// delivery concurrency), an attempt (attempt.ts: route, deliver, settle as one
// Change), the host watch (host-watch.ts: host retry state, probes, mail held for a
// host) and reports (reports.ts: bounces and delay warnings). This file owns their
// wiring, the settings a reload changes, stopping, and -Mg between attempts. Does not
// talk SMTP or rewrite addresses (transports/) or decide routes (router/).
import type { MessageRecord } from '../core/types.js';
import { Attempts } from './attempt.js';
import { giveUp, type GiveUpContext } from './give-up.js';
import { HostWatch } from './host-watch.js';
import { ActiveWindow } from './window.js';

import type { SchedulerOptions, SchedulerSettings, SchedulerState } from './options.js';

export type { SchedulerOptions, SchedulerSettings };

export class Scheduler {
  private readonly s: SchedulerState;
  private readonly window: ActiveWindow;
  private readonly watch: HostWatch;

  constructor(options: SchedulerOptions) {
    this.s = { o: { ...options }, stopping: false };
    this.watch = new HostWatch(this.s, { has: (id) => this.window.has(id), flush: (ids) => this.window.flush(ids) });
    const attempts = new Attempts(this.s, this.watch, {
      kick: (id) => this.kick({ id }),
      cancelFrozen: (record) => this.cancelFrozen(record),
    });
    this.window = new ActiveWindow(this.s, (id, early) => attempts.run(id, early));
  }

  /**
   * New settings in place (SIGHUP). The same scheduler keeps its active window, so a
   * message in flight is never picked up a second time; the old transport finishes
   * what it carries and closes.
   */
  reconfigure(next: SchedulerSettings): void {
    const old = this.s.o.transport;
    this.s.o = { ...this.s.o, ...next };
    this.window.reconfigure();
    // Retry data is kept for the hosts that are still smarthosts (same name and port).
    this.watch.reconfigure();
    if (old !== next.transport) void old.close();
    this.kick();
  }

  /** -Mg from the local socket: done between attempts, never during one. */
  async giveUp(id: string, user: string): Promise<'done' | 'gone' | 'locked'> {
    if (this.window.has(id)) return 'locked';
    const bounce = await giveUp(this.giveUpContext(), id, user);
    if (bounce === undefined) return 'gone';
    if (bounce) this.kick({ id: bounce });
    return 'done';
  }

  /** Messages in the active window now (the metrics' `active`). */
  activeCount(): number {
    return this.window.size;
  }

  /** Each smarthost (name:port) and whether it is up: not failed as a host since it last answered. */
  hostStates(): { host: string; up: boolean }[] {
    return this.watch.states();
  }

  /** Whether a message is being delivered now (operator actions answer `locked` for it). */
  isActive(id: string): boolean {
    return this.window.has(id);
  }

  start(): void {
    this.window.start();
  }

  /**
   * New mail (`id`), or "look at the due index now". `force` (-qf, -M) also forgets host
   * retry times and looks at the due index from its start.
   */
  kick(opts: { id?: string; force?: boolean } = {}): void {
    if (opts.force) this.watch.forget();
    this.window.kick({ ...(opts.id !== undefined ? { id: opts.id } : {}), rescan: opts.force === true });
  }

  /**
   * Resolves when nothing is in flight and no look at the due index is pending: a
   * queue run's end; a test's "nothing more happens" after moving a manual clock.
   */
  whenIdle(): Promise<void> {
    return this.window.whenIdle();
  }

  /**
   * Stops admitting; waits (at most graceMs) for every attempt in the window to be
   * delivered and settled, so its log lines are written; then closes the transport.
   * Waiting tasks see `stopping` and end at once.
   */
  async stop(graceMs: number): Promise<void> {
    this.s.stopping = true;
    this.window.stop();
    this.watch.stop();
    const clock = this.s.o.clock;
    let grace: { cancel(): void } | undefined;
    await Promise.race([this.window.whenIdle(), new Promise((r) => { grace = clock.at(clock.now() + graceMs, () => r(undefined)); })]);
    grace?.cancel();
    await this.s.o.transport.close();
  }

  /** timeout_frozen_after: cancelled as -Mg cancels (a bounce is only discarded). */
  private async cancelFrozen(record: MessageRecord): Promise<void> {
    const bounce = await giveUp(this.giveUpContext(), record.id, 'timeout_frozen_after');
    if (bounce) this.kick({ id: bounce });
  }

  /** What -Mg needs of this scheduler: the spool, the log, the one ID generator, the names for the bounce. */
  private giveUpContext(): GiveUpContext {
    const o = this.s.o;
    return { spool: o.spool, events: o.events, ids: o.ids, hostname: o.hostname, qualifyDomain: o.qualifyDomain, now: o.clock.now() };
  }
}
