// core/conn-guard.ts: the connection limits of a listener any local user can reach (the
// own-messages socket, the metrics port, and the control socket alike): at most `max`
// connections open at once (each one an open file), a deadline for the first byte and
// one for the whole request, and who gives way at the cap. The servers say when a
// request is in (busy) and when a connection waits for one again (idle); the guard
// knows no protocol and reads no bytes.
import { systemClock, type Clock, type Timer } from './clock.js';
import type { Socket } from 'node:net';

export interface GuardLimits {
  /** Connections open at once. */
  max: number;
  /** ms from accept to the first byte; 0 when the server cannot see bytes (HTTP's parser reads them). */
  firstByte: number;
  /** ms from accept to the whole request. */
  request: number;
}

interface Entry {
  peer: string;
  since: number;
  busy: boolean;
  timers: Timer[];
}

/**
 * Fairness without knowing who connects (a Unix socket tells Node no uid, and every
 * local user comes from 127.0.0.1): only a connection that has not sent its request yet
 * gives way, so holding idle connections takes no slot from anyone. At the cap a
 * newcomer evicts the oldest waiting connection of the peer that holds the most (on a
 * Unix socket all peers are one); it is refused only when every slot is busy. Oldest
 * first, because a real client sends its request at once: the oldest waiting ones are
 * the surest to be idle, and a new client is only evicted if `max` newer connections
 * come before its request does. (Sparing connections younger than a grace period, as
 * tried first, let a flood opening more than `max` connections per grace period keep
 * every newcomer out.) Who the caller is, once its request proves it, is the server's to
 * count (JsonLineServer's per-key claims).
 */
export class ConnectionGuard {
  private readonly conns = new Map<Socket, Entry>();
  /** Counts, for tests and logs: connections evicted at the cap, refused, closed at a deadline. */
  readonly counts = { evicted: 0, refused: 0, timedOut: 0 };

  constructor(readonly limits: GuardLimits, private readonly clock: Clock = systemClock) {}

  /** Connections open now. */
  get size(): number {
    return this.conns.size;
  }

  /** A new connection: kept (true), perhaps in place of an older waiting one, or destroyed (false). */
  admit(sock: Socket, peer = ''): boolean {
    if (this.conns.size >= this.limits.max && !this.evictOne()) {
      this.counts.refused++;
      sock.destroy();
      return false;
    }
    const now = this.clock.now();
    const entry: Entry = { peer, since: now, busy: false, timers: [] };
    this.conns.set(sock, entry);
    sock.once('close', () => this.forget(sock));
    if (this.limits.firstByte > 0) entry.timers.push(this.deadline(sock, now + this.limits.firstByte));
    entry.timers.push(this.deadline(sock, now + this.limits.request));
    return true;
  }

  /** The first byte came: only the request's deadline is left. */
  started(sock: Socket): void {
    const e = this.conns.get(sock);
    if (!e || e.busy || this.limits.firstByte <= 0) return;
    e.timers.shift()?.cancel();
  }

  /**
   * The request is in: no deadline while the server works on it, and never evicted.
   * `within` (ms) bounds what is left (writing the answer to a client that may not read it).
   */
  busy(sock: Socket, within?: number): void {
    const e = this.conns.get(sock);
    if (!e) return;
    e.busy = true;
    for (const t of e.timers) t.cancel();
    e.timers = within === undefined ? [] : [this.deadline(sock, this.clock.now() + within)];
  }

  /** Waiting for another request (HTTP keep-alive; the server's own idle time-out applies): evictable again. */
  idle(sock: Socket): void {
    const e = this.conns.get(sock);
    if (!e) return;
    for (const t of e.timers) t.cancel();
    e.timers = [];
    e.busy = false;
    e.since = this.clock.now();
  }

  /** Closes every connection (the server is stopping). */
  destroyAll(): void {
    for (const sock of [...this.conns.keys()]) sock.destroy();
  }

  private deadline(sock: Socket, at: number): Timer {
    return this.clock.at(at, () => {
      if (!this.conns.has(sock)) return;
      this.counts.timedOut++;
      sock.destroy();
    });
  }

  private forget(sock: Socket): void {
    const e = this.conns.get(sock);
    if (!e) return;
    for (const t of e.timers) t.cancel();
    this.conns.delete(sock);
  }

  /** Evicts the oldest evictable connection of the peer holding the most; false when none may go. */
  private evictOne(): boolean {
    const held = new Map<string, number>();
    for (const e of this.conns.values()) held.set(e.peer, (held.get(e.peer) ?? 0) + 1);
    let victim: Socket | undefined;
    let victimHeld = 0;
    let victimSince = Infinity;
    for (const [sock, e] of this.conns) {
      if (e.busy) continue;
      const n = held.get(e.peer) ?? 0;
      if (n > victimHeld || (n === victimHeld && e.since < victimSince)) {
        victim = sock;
        victimHeld = n;
        victimSince = e.since;
      }
    }
    if (!victim) return false;
    this.counts.evicted++;
    this.forget(victim);
    victim.destroy();
    return true;
  }
}
