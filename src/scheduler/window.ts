// scheduler/window.ts: the active window, Postfix's active queue: at most activeLimit
// messages in memory, fed from new mail kicked by ID (the incoming set), mail whose
// host is back (flushed) and the spool's due index read after a cursor, never a scan;
// the single due-timer; delivery concurrency (p-queue: one transport slot per
// attempt, the settle step run outside it). Knows when it is idle (nothing in flight,
// no look at the due index pending), for queue runs and tests.
import PQueue from 'p-queue';
import type { Timer } from '../core/clock.js';
import type { DueKey } from '../spool/spool.js';
import type { SchedulerState } from './options.js';

/** One attempt (in a transport slot); resolves with its settle step, run after the slot is freed. */
export type RunAttempt = (id: string, early: boolean) => Promise<(() => Promise<void>) | undefined>;

export class ActiveWindow {
  private readonly active = new Set<string>();
  private readonly queue: PQueue;
  /** Messages due at once whatever their due key says: their host is back. */
  private readonly flushed = new Set<string>();
  /** New mail, admitted by ID without reading the due index (Postfix's incoming queue). */
  private readonly incoming = new Set<string>();
  /** Where the last look at the due index stopped; reset by the timer and forced runs. */
  private cursor: DueKey | undefined;
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private started = false;
  private kicked = false;
  private filling = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly s: SchedulerState, private readonly run: RunAttempt) {
    this.queue = new PQueue({ concurrency: s.o.concurrency });
  }

  has(id: string): boolean {
    return this.active.has(id);
  }

  get size(): number {
    return this.active.size;
  }

  /** New settings (SIGHUP): the concurrency, and the due index read again from its start. */
  reconfigure(): void {
    this.queue.concurrency = this.s.o.concurrency;
    this.cursor = undefined;
  }

  start(): void {
    this.started = true;
    this.cursor = undefined;
    this.fill();
  }

  /** New mail (`id`), or "look at the due index now"; `rescan`: from its start. */
  kick(opts: { id?: string; rescan?: boolean } = {}): void {
    if (opts.rescan) this.cursor = undefined;
    if (opts.id !== undefined) {
      // Bounded: past the limit new mail is found through the due index instead.
      if (this.incoming.size < this.s.o.activeLimit * 4) this.incoming.add(opts.id);
      else this.cursor = undefined;
    }
    // Arrivals of one event-loop turn share one look at the due index.
    if (this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      this.fill();
      this.wakeIfIdle();
    });
  }

  /** Makes these due at once, whatever their due keys say (their host is back). */
  flush(ids: Iterable<string>): void {
    for (const id of ids) this.flushed.add(id);
    this.kick({ rescan: true });
  }

  /** Resolves when nothing is in flight and no look at the due index is pending (queue runs; tests after moving a manual clock). */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.timer?.cancel();
  }

  private idle(): boolean {
    return this.active.size === 0 && !this.kicked;
  }

  private wakeIfIdle(): void {
    if (this.idle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private fill(): void {
    if (!this.started || this.s.stopping || this.filling) return;
    this.filling = true;
    const o = this.s.o;
    try {
      const now = o.clock.now();
      // First what was held back for a host that is back (due now, whatever its key).
      // While every host is down, mail whose turn comes is still admitted: the attempt
      // defers it to the hosts' retry time with Exim's -54 line, not left silent.
      for (const id of this.flushed) {
        if (this.active.size >= o.activeLimit) break;
        if (this.active.has(id)) continue; // its settle is not written yet: after it
        this.flushed.delete(id);
        this.admit(id, true);
      }
      for (const id of this.incoming) {
        if (this.active.size >= o.activeLimit) break;
        this.incoming.delete(id);
        if (!this.active.has(id)) this.admit(id);
      }
      // The backlog: due mail after the cursor, so the active window is not read again
      // and again. Everything that becomes due later is ahead of the cursor, except
      // what the timer and forced runs catch by resetting it.
      const free = o.activeLimit - this.active.size;
      if (free > 0) {
        for (const key of o.spool.dueAfter(this.cursor, now, free, this.active)) {
          this.admit(key.id);
          this.cursor = key;
        }
      }
      if (this.active.size < o.activeLimit) {
        const next = o.spool.nextDueAfter(now);
        this.arm(Math.min(next ?? Infinity, now + o.queueInterval));
      }
    } catch (err) {
      o.events.emit({ type: 'notice', text: `queue manager: cannot read the spool: ${(err as Error).message}` });
      this.arm(o.clock.now() + 5000);
    } finally {
      this.filling = false;
    }
  }

  private arm(at: number): void {
    // Never move an armed timer later: under steady traffic it would never fire.
    if (this.timer && at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.s.o.clock.at(at, () => {
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
    void this.queue.add(() => this.run(id, early)).then((settle) => settle?.()).catch((err: Error) => {
      const events = this.s.o.events;
      // Stopping (the spool may be closing under a delivery that outlived the grace):
      // the result is not recorded, the message stays due, nothing more to do.
      if (this.s.stopping) {
        events.emit({ type: 'notice', id, text: `delivery result not recorded while stopping: ${err.message}` });
        return;
      }
      // A bug or a spool that cannot record a result: carrying on could send this
      // message again and again. Stop (Postfix's panic); the spool says what is left.
      events.emit({ type: 'notice', id, text: `delivery attempt failed internally: ${err.stack ?? err.message}` });
      this.s.stopping = true;
      queueMicrotask(() => {
        throw err;
      });
    }).finally(() => {
      this.active.delete(id);
      // What this attempt made (a bounce, a warning) is admitted before anyone is told
      // the queue is idle: a queue run ends only when nothing it can do is left.
      this.fill();
      this.wakeIfIdle();
    });
  }
}
