// Unit tests for src/core/conn-guard.ts with a manual clock and stand-in sockets: who
// gives way at the cap (the oldest waiting connection of the peer holding the most,
// never one being answered), when a newcomer is refused, and the first-byte, request
// and answer deadlines.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { ConnectionGuard } from '../../src/core/conn-guard.js';

/** Enough of a net.Socket for the guard: destroy() closes it, as a socket's 'close' follows. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly name: string) {
    super();
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.emit('close');
    }
    return this;
  }
}

function setup(max = 3, firstByte = 2_000, request = 5_000) {
  const clock = new ManualClock(0);
  const guard = new ConnectionGuard({ max, firstByte, request }, clock);
  const admit = (name: string, peer = '') => {
    const s = new FakeSocket(name);
    guard.admit(s as unknown as Socket, peer);
    clock.advance(10);
    return s;
  };
  return { clock, guard, admit, sock: (s: FakeSocket) => s as unknown as Socket };
}

describe('ConnectionGuard', () => {
  it('at the cap, the oldest waiting connection of the peer holding the most gives way', () => {
    const { guard, admit } = setup(3);
    const a1 = admit('a1', 'A');
    const a2 = admit('a2', 'A');
    const b1 = admit('b1', 'B');
    const a3 = admit('a3', 'A'); // A holds 2 of 3: its oldest goes
    expect([a1.destroyed, a2.destroyed, b1.destroyed, a3.destroyed]).toEqual([true, false, false, false]);
    const b2 = admit('b2', 'B'); // A still holds the most (a2, a3), though b1 is older than a2
    expect([a2.destroyed, b1.destroyed, b2.destroyed]).toEqual([true, false, false]);
    expect(guard.size).toBe(3);
    expect(guard.counts).toEqual({ evicted: 2, refused: 0, timedOut: 0 });
  });

  it('never evicts a connection being answered; with every slot busy a newcomer is refused', () => {
    const { guard, admit, sock } = setup(2);
    const x = admit('x');
    const y = admit('y');
    guard.busy(sock(x));
    const z = admit('z'); // y is the only waiting one
    expect([x.destroyed, y.destroyed, z.destroyed]).toEqual([false, true, false]);
    guard.busy(sock(z));
    const w = admit('w');
    expect(w.destroyed).toBe(true);
    expect(guard.counts.refused).toBe(1);
    // Answered and waiting for a next request (HTTP keep-alive): it may give way again.
    guard.idle(sock(x));
    const v = admit('v');
    expect([x.destroyed, v.destroyed]).toEqual([true, false]);
  });

  it('closes a connection with no first byte at the first-byte deadline, a trickling one at the request deadline', () => {
    const { clock, guard, admit, sock } = setup(10, 2_000, 5_000);
    const silent = admit('silent');
    const slow = admit('slow');
    guard.started(sock(slow));
    clock.advance(2_000);
    expect([silent.destroyed, slow.destroyed]).toEqual([true, false]);
    clock.advance(3_000);
    expect(slow.destroyed).toBe(true);
    expect(guard.counts.timedOut).toBe(2);
    expect(guard.size).toBe(0);
  });

  it('a request being worked on has no deadline; its answer has the one busy() gives', () => {
    const { clock, guard, admit, sock } = setup(10, 2_000, 5_000);
    const s = admit('s');
    guard.started(sock(s));
    guard.busy(sock(s));
    clock.advance(60_000);
    expect(s.destroyed).toBe(false);
    guard.busy(sock(s), 5_000);
    clock.advance(4_999);
    expect(s.destroyed).toBe(false);
    clock.advance(1);
    expect(s.destroyed).toBe(true);
  });
});
