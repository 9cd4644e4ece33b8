// limits.per_client on the real SMTP listener and a real LMDB spool, with time driven by
// hand: every message gets 250; those past the rate are admitted frozen (off the due
// index, with their journal entry) in the commit that admits them; one `limited` event
// per episode however many follow; an hour of quiet ends it, and the sender relays again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import { SenderLimits } from '../../src/limits/sender-limits.js';
import { renderText } from '../../src/log/mainlog.js';
import { SmtpReceiver } from '../../src/receive/smtp.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { sendOne } from '../helpers/smtp-client.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 11, 7, 10);

describe('limits.per_client on the SMTP listener', () => {
  let dir: string | undefined;
  let spool: LmdbSpool | undefined;
  let receiver: SmtpReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    await spool?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    receiver = spool = dir = undefined;
  });

  it('accepts every message, freezes those past the rate in their own commit, one event per episode', async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-limits-'));
    spool = LmdbSpool.open(join(dir, 'spool'));
    const clock = new ManualClock(T0);
    const events = new EventBus();
    const seen: MtaEvent[] = [];
    events.on((e) => seen.push(e));
    const kicked: string[] = [];
    const limits = new SenderLimits({ per_user: { count: 1, period: HOUR }, per_client: { count: 3, period: HOUR } }, { clock, events });
    receiver = new SmtpReceiver({
      hostname: 'web1.example.org', qualifyDomain: 'example.org', relayFrom: ['127.0.0.0/8'], maxMessageSize: 1 << 20,
      maxRecipients: 10, maxConnections: 10, spool, events, clock, ids: new MessageIdGenerator(), kick: (id) => kicked.push(id), limits,
    });
    const bound = await receiver.listen('127.0.0.1', 0);
    const port = Number(bound.slice(bound.lastIndexOf(':') + 1));
    const send = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const reply = await sendOne(port, 'app@example.org', ['ops@example.org'], `Subject: ${i}\n\nbody\n`);
        expect(reply).toMatch(/^250 2\.0\.0 OK id=/);
        ids.push(/id=(\S+)/.exec(reply)![1]!);
      }
      return ids;
    };
    const limited = () => seen.filter((e) => e.type === 'limited');

    const relayed = await send(3);
    const held = await send(7);
    for (const id of relayed) {
      expect(spool.load(id)).toMatchObject({ frozen: false, nextAttempt: T0 });
      expect(spool.journal(id)).toEqual([]);
    }
    for (const id of held) {
      expect(spool.load(id)).toMatchObject({ frozen: true, nextAttempt: null });
      expect(spool.journal(id)).toEqual([{ v: 1, type: 'limit', at: T0, limit: 'per_client', key: '127.0.0.1', rate: '3/1h' }]);
    }
    // Nothing held is due: the scheduler's index never offers it.
    expect(spool.due(T0 + 365 * 24 * HOUR, 100).sort()).toEqual([...relayed].sort());
    expect(spool.stats()).toMatchObject({ messages: 10, frozen: 7, due: 3 });
    expect(limited()).toEqual([{ type: 'limited', id: held[0], limit: 'per_client', key: '127.0.0.1', rate: '3/1h' }]);
    // Logged after the message's own arrival line, once.
    const lines = seen.map((e) => `${'id' in e ? `${e.id} ` : ''}${renderText(e)}`);
    const at = lines.findIndex((l) => l.startsWith(`${held[0]} frozen: sender over limits.per_client (127.0.0.1: 3/1h); `));
    expect(at).toBeGreaterThan(lines.findIndex((l) => l.startsWith(`${held[0]} <= `)));
    expect(lines.filter((l) => l.includes('frozen: sender over'))).toHaveLength(1);

    // Still going half an hour later: the same episode, no new event.
    clock.advance(HOUR / 2);
    const still = await send(2);
    for (const id of still) expect(spool.load(id)?.frozen).toBe(true);
    expect(limited()).toHaveLength(1);

    // Quiet for two hours: back under the rate, relayed again; over it again, a new episode.
    clock.advance(2 * HOUR);
    const again = await send(3);
    for (const id of again) expect(spool.load(id)?.frozen).toBe(false);
    const [next] = await send(1);
    expect(spool.load(next!)?.frozen).toBe(true);
    expect(limited()).toHaveLength(2);
    expect(limited()[1]).toMatchObject({ id: next });
  });
});
