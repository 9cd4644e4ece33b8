// core/clock.ts: time as a value passed in. The scheduler and the retry logic ask
// a Clock, never Date.now() or setTimeout directly, so tests can drive time by hand.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Call fn at time `at` (ms since epoch) or as soon as possible after it. */
  at(at: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  at(at, fn) {
    // setTimeout's limit is 2^31-1 ms; re-arm for far-off times.
    const max = 2 ** 31 - 1;
    let handle: NodeJS.Timeout;
    const arm = () => {
      const delay = at - Date.now();
      handle = setTimeout(delay > max ? arm : fn, Math.max(0, Math.min(delay, max)));
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock that moves only when told to: for scheduler and retry tests. */
export class ManualClock implements Clock {
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  at(at: number, fn: () => void): Timer {
    const timer = { at, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => { timer.live = false; } };
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.live && x.at <= this.t);
    this.timers = this.timers.filter((x) => x.live && x.at > this.t);
    for (const x of due) x.fn();
  }
}
