// The spool's `frozen` index and stats() (what the metrics read at scrape time): the
// frozen count follows -Mf/-Mt, bulk actions, a freeze by a settlement, removal and
// completion; the oldest arrival is the first ID's; a spool written before the index
// gets it built once when opened.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewMessage } from '../../src/core/types.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { freeze, makeDue, remove, settle } from '../helpers/spool.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const gen = new MessageIdGenerator(4931);
let dir: string;
let spool: LmdbSpool;

function message(arrival: number): NewMessage {
  return { id: gen.next(arrival), sender: 'a@example.org', recipients: ['ops@example.org'], arrival, protocol: 'local',
    headers: 'Subject: t\n', body: [Buffer.from('x\n')] };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-frozen-test-'));
  spool = LmdbSpool.open(dir);
});
afterEach(async () => {
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('frozen index and stats', () => {
  it('counts frozen messages through every way a message is frozen, thawed or goes', async () => {
    expect(spool.stats()).toEqual({ messages: 0, frozen: 0, due: 0, oldestArrival: undefined });
    const [a, b, c] = [await spool.admit(message(T0 + 2000)), await spool.admit(message(T0)), await spool.admit(message(T0 + 1000))];
    expect(spool.stats()).toMatchObject({ messages: 3, frozen: 0, due: 3 });
    await freeze(spool, a.id, 'root', T0);
    expect(spool.stats()).toMatchObject({ messages: 3, frozen: 1, due: 2 });
    await spool.apply([b.id, c.id].map((id) => ({ kind: 'freeze', id, by: { at: T0, user: 'root' } })));
    expect(spool.stats().frozen).toBe(3);
    await makeDue(spool, [b.id], T0, true);
    expect(spool.stats().frozen).toBe(2);
    await spool.apply([{ kind: 'thaw', id: c.id, by: { at: T0, user: 'root' } }]);
    expect(spool.stats().frozen).toBe(1);
    await remove(spool, a.id);
    expect(spool.stats()).toMatchObject({ messages: 2, frozen: 0 });
    // A settlement that freezes (retry timeout), then one that completes the message.
    await settle(spool, b.id, { recipients: [], nextAttempt: null, freeze: true, journal: [] });
    expect(spool.stats().frozen).toBe(1);
    await settle(spool, b.id, { recipients: [{ address: 'ops@example.org', state: 'delivered', tries: 1 }], nextAttempt: null, journal: [] });
    expect(spool.stats()).toMatchObject({ messages: 1, frozen: 0, due: 1 });
  });

  it('gives the arrival of the oldest message (IDs sort by arrival)', async () => {
    // Another process's ID (a sendmail run) for the earlier arrival.
    await spool.admit(message(T0 + 5000));
    await spool.admit({ ...message(T0), id: new MessageIdGenerator(77).next(T0) });
    expect(spool.stats().oldestArrival).toBe(T0);
  });

  it('builds the index once for a spool written before it', async () => {
    const m = await spool.admit(message(T0));
    await spool.admit(message(T0 + 1000));
    await freeze(spool, m.id, 'root', T0);
    await spool.close();
    // As an older version left it: no frozen index, no marker.
    const root = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
    await root.openDB({ name: 'frozen', encoding: 'msgpack' }).clearAsync();
    await root.remove('postern:frozen-index');
    await root.close();
    spool = LmdbSpool.open(dir);
    expect(spool.stats()).toMatchObject({ messages: 2, frozen: 1 });
  });
});
