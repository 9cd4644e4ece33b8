// Unit tests for src/spool/lmdb-spool.ts against a real LMDB environment in a temporary
// folder: round trips, the due index, settling, freezing, and a second opener.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LmdbSpool, QUEUE_ONLY_DELAY, SpoolUnavailable } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { NewMessage, RecipientRecord } from '../../src/core/types.js';
import type { NewJournalEntry } from '../../src/core/journal.js';
import { freeze, makeDue, remove, settle, thaw } from '../helpers/spool.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const MIN = 60_000;
/** A journal entry told apart by its `user`. */
const adm = (user: string): NewJournalEntry => ({ v: 1, type: 'admin', at: T0, action: 'frozen', user });

let dir: string;
let spool: LmdbSpool;
let others: LmdbSpool[];
const gen = new MessageIdGenerator(4926);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-spool-test-'));
  spool = LmdbSpool.open(dir);
  others = [];
});

afterEach(async () => {
  for (const s of others) await s.close();
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

function message(over: Partial<NewMessage> = {}): NewMessage {
  const arrival = over.arrival ?? T0;
  return {
    id: gen.next(arrival),
    sender: 'www-data@example.org',
    recipients: ['ops@example.org', 'dev@example.org'],
    arrival,
    protocol: 'local',
    user: 'www-data',
    headers: 'Subject: test\nFrom: www-data@example.org\n',
    body: [Buffer.from('hello\n')],
    ...over,
  };
}

/** The journal of a message, as the `user` of each entry. */
const users = (id: string) => spool.journal(id).map((e) => (e.type === 'admin' ? e.user : e.type));

async function bodyOf(s: LmdbSpool, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s.body(id) as Readable) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const pending = (address: string): RecipientRecord => ({ address, state: 'pending', tries: 0 });

describe('commit and read back', () => {
  it('round trips the envelope, the headers and a small body', async () => {
    const msg = message({ clientIp: '127.0.0.1', helo: 'web1', messageIdHeader: 'abc@web1.example.org' });
    const record = await spool.admit(msg);
    expect(record).toEqual({
      v: 1,
      id: msg.id,
      sender: 'www-data@example.org',
      arrival: T0,
      size: msg.headers.length + 1 + 6,
      protocol: 'local',
      user: 'www-data',
      clientIp: '127.0.0.1',
      helo: 'web1',
      messageIdHeader: 'abc@web1.example.org',
      frozen: false,
      recipients: [pending('ops@example.org'), pending('dev@example.org')],
      nextAttempt: T0,
      attempts: 0,
      warningsSent: 0,
      bodySize: 6,
      chunks: 1,
    });
    expect(spool.load(msg.id)).toEqual(record);
    expect(spool.headers(msg.id)).toBe(msg.headers);
    expect((await bodyOf(spool, msg.id)).toString()).toBe('hello\n');
    expect(spool.count()).toBe(1);
    expect(spool.journal(msg.id)).toEqual([]);
  });

  it('round trips a 200 KB body split into 64 KB chunks, whatever the parts it came in', async () => {
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;
    const parts: Buffer[] = [];
    for (let i = 0; i < big.length; i += 1000) parts.push(big.subarray(i, i + 1000));
    const a = message({ body: [big] });
    const b = message({ body: parts });
    const ra = await spool.admit(a);
    const rb = await spool.admit(b);
    for (const r of [ra, rb]) {
      expect(r.bodySize).toBe(200 * 1024);
      expect(r.chunks).toBe(4);
      expect(r.size).toBe(Buffer.byteLength(a.headers) + 1 + 200 * 1024);
    }
    expect((await bodyOf(spool, a.id)).equals(big)).toBe(true);
    expect((await bodyOf(spool, b.id)).equals(big)).toBe(true);
  });

  it.skipIf(!existsSync('/proc/self/maps'))('maps the spool file once, however far it grows (earlier maps of a grown file stay resident)', async () => {
    const body = Buffer.alloc(200 * 1024, 'x');
    for (let i = 0; i < 40; i++) {
      const { id } = await spool.admit(message({ body: [body] }));
      expect((await bodyOf(spool, id)).length).toBe(body.length);
    }
    const file = join(dir, 'spool.mdb');
    const maps = readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(` ${file}`));
    expect(maps).toHaveLength(1);
  });

  it('stores an empty body and a body of exactly one chunk', async () => {
    const empty = await spool.admit(message({ body: [] }));
    const exact = await spool.admit(message({ body: [Buffer.alloc(64 * 1024, 0x61)] }));
    expect(empty.chunks).toBe(0);
    expect((await bodyOf(spool, empty.id)).length).toBe(0);
    expect(exact.chunks).toBe(1);
    expect((await bodyOf(spool, exact.id)).equals(Buffer.alloc(64 * 1024, 0x61))).toBe(true);
  });

  it('rejects a second commit with the same ID and keeps the first', async () => {
    const msg = message();
    await spool.admit(msg);
    await expect(spool.admit({ ...msg, sender: 'other@example.org', body: [Buffer.from('other\n')] }))
      .rejects.toThrow(SpoolUnavailable);
    expect(spool.load(msg.id)?.sender).toBe('www-data@example.org');
    expect((await bodyOf(spool, msg.id)).toString()).toBe('hello\n');
    expect(spool.count()).toBe(1);
  });

  it('-odq (queueOnly) is due one queue-run delay later', async () => {
    const r = await spool.admit(message({ queueOnly: true }));
    expect(r.nextAttempt).toBe(T0 + QUEUE_ONLY_DELAY);
    expect(spool.due(T0 + QUEUE_ONLY_DELAY - 1, 10)).toEqual([]);
    expect(spool.due(T0 + QUEUE_ONLY_DELAY, 10)).toEqual([r.id]);
  });

  it('unknown IDs read as nothing', async () => {
    expect(spool.load('1xVME4-0001HS-zz')).toBeUndefined();
    expect(spool.headers('1xVME4-0001HS-zz')).toBeUndefined();
    expect((await bodyOf(spool, '1xVME4-0001HS-zz')).length).toBe(0);
    expect(await remove(spool, '1xVME4-0001HS-zz')).toBe('gone');
  });
});

describe('the due index', () => {
  /** Three messages whose due order differs from their ID order. */
  async function three() {
    const a = await spool.admit(message({ arrival: T0 }));
    const b = await spool.admit(message({ arrival: T0 + 1000 }));
    const c = await spool.admit(message({ arrival: T0 + 2000 }));
    // Push a later than c: due order becomes b, c, a.
    await settle(spool, a.id, { recipients: [], nextAttempt: T0 + 10 * MIN, journal: [] });
    return { a: a.id, b: b.id, c: c.id };
  }

  it('due() gives IDs in due order, up to and including `before`', async () => {
    const { a, b, c } = await three();
    expect(spool.due(T0 + 60 * MIN, 100)).toEqual([b, c, a]);
    expect(spool.due(T0 + 10 * MIN, 100)).toEqual([b, c, a]);
    expect(spool.due(T0 + 10 * MIN - 1, 100)).toEqual([b, c]);
    expect(spool.due(T0 + 1000, 100)).toEqual([b]);
    expect(spool.due(T0 + 999, 100)).toEqual([]);
  });

  it('due() respects limit and skip', async () => {
    const { a, b, c } = await three();
    expect(spool.due(T0 + 60 * MIN, 1)).toEqual([b]);
    expect(spool.due(T0 + 60 * MIN, 2)).toEqual([b, c]);
    expect(spool.due(T0 + 60 * MIN, 2, new Set([b]))).toEqual([c, a]);
    expect(spool.due(T0 + 60 * MIN, 100, new Set([b, c, a]))).toEqual([]);
  });

  it('nextDue() gives the earliest due time, skipping the active ones', async () => {
    expect(spool.nextDue()).toBeUndefined();
    const { a, b, c } = await three();
    expect(spool.nextDue()).toBe(T0 + 1000);
    expect(spool.nextDue(new Set([b]))).toBe(T0 + 2000);
    expect(spool.nextDue(new Set([b, c]))).toBe(T0 + 10 * MIN);
    expect(spool.nextDue(new Set([a, b, c]))).toBeUndefined();
  });
});

describe('settle', () => {
  it('all recipients delivered: everything is removed', async () => {
    const msg = message();
    await spool.admit(msg);
    const result = await settle(spool, msg.id, {
      recipients: [
        { address: 'ops@example.org', state: 'delivered', tries: 1 },
        { address: 'dev@example.org', state: 'failed', tries: 1, lastError: '550 5.1.1 unknown user' },
      ],
      nextAttempt: T0 + 15 * MIN,
      journal: [adm('delivered')],
    });
    expect(result.kind).toBe('completed');
    if (result.kind !== 'completed') throw new Error('unreachable');
    expect(result.record?.recipients.map((r) => r.state)).toEqual(['delivered', 'failed']);
    expect(spool.load(msg.id)).toBeUndefined();
    expect(spool.headers(msg.id)).toBeUndefined();
    expect(spool.journal(msg.id)).toEqual([]);
    expect((await bodyOf(spool, msg.id)).length).toBe(0);
    expect(spool.due(Number.MAX_SAFE_INTEGER, 100)).toEqual([]);
    expect(spool.nextDue()).toBeUndefined();
    expect(spool.count()).toBe(0);
    expect([...spool.list()]).toEqual([]);
  });

  it('a 200 KB message is removed whole (no chunk left behind for a reused ID)', async () => {
    const big = Buffer.alloc(200 * 1024, 0x62);
    const msg = message({ body: [big] });
    await spool.admit(msg);
    await settle(spool, msg.id, {
      recipients: msg.recipients.map((address) => ({ address, state: 'delivered' as const, tries: 1 })),
      nextAttempt: null, journal: [],
    });
    // The same ID again with a small body reads back only the new body.
    await spool.admit({ ...msg, body: [Buffer.from('small\n')] });
    expect((await bodyOf(spool, msg.id)).toString()).toBe('small\n');
  });

  it('a deferred recipient moves the due key and appends to the message log', async () => {
    const msg = message();
    await spool.admit(msg);
    const first = await settle(spool, msg.id, {
      recipients: [
        { address: 'ops@example.org', state: 'delivered', tries: 1, lastTry: T0 },
        { address: 'dev@example.org', state: 'pending', tries: 1, firstFailure: T0, lastTry: T0, lastError: 'Connection refused' },
      ],
      nextAttempt: T0 + 15 * MIN,
      lastError: 'Connection refused',
      journal: [adm('line one'), adm('line two')],
    });
    expect(first.kind).toBe('changed');
    const rec = spool.load(msg.id)!;
    expect(rec.nextAttempt).toBe(T0 + 15 * MIN);
    expect(rec.attempts).toBe(1);
    expect(rec.lastError).toBe('Connection refused');
    expect(rec.recipients).toEqual([
      { address: 'ops@example.org', state: 'delivered', tries: 1, lastTry: T0 },
      { address: 'dev@example.org', state: 'pending', tries: 1, firstFailure: T0, lastTry: T0, lastError: 'Connection refused' },
    ]);
    expect(spool.due(T0 + 15 * MIN - 1, 10)).toEqual([]);
    expect(spool.due(T0 + 15 * MIN, 10)).toEqual([msg.id]);
    expect(users(msg.id)).toEqual(['line one', 'line two']);

    // Second attempt: only dev is tried; a stale "pending" for ops must not undo its delivery.
    await settle(spool, msg.id, {
      recipients: [
        { address: 'ops@example.org', state: 'pending', tries: 9 },
        { address: 'dev@example.org', state: 'pending', tries: 2, firstFailure: T0, lastTry: T0 + 15 * MIN },
      ],
      nextAttempt: T0 + 30 * MIN,
      journal: [adm('line three')],
    });
    const rec2 = spool.load(msg.id)!;
    expect(rec2.attempts).toBe(2);
    expect(rec2.recipients[0]!.state).toBe('delivered');
    expect(rec2.recipients[1]!.tries).toBe(2);
    expect(spool.due(T0 + 30 * MIN - 1, 10)).toEqual([]);
    expect(spool.due(T0 + 30 * MIN, 10)).toEqual([msg.id]);
    expect(spool.nextDue()).toBe(T0 + 30 * MIN);
    expect(users(msg.id)).toEqual(['line one', 'line two', 'line three']);
    expect(spool.count()).toBe(1);
  });

  it('commits the bounces of an attempt in the same transaction', async () => {
    const msg = message();
    await spool.admit(msg);
    const bounce = message({ sender: '', recipients: ['www-data@example.org'], bounceOf: msg.id, arrival: T0 + 5000, protocol: 'local' });
    await settle(spool, msg.id, {
      recipients: msg.recipients.map((address) => ({ address, state: 'failed' as const, tries: 1 })),
      nextAttempt: null, journal: [], enqueue: [bounce],
    });
    expect(spool.load(msg.id)).toBeUndefined();
    expect(spool.load(bounce.id)).toMatchObject({ sender: '', bounceOf: msg.id, recipients: [pending('www-data@example.org')] });
    expect(spool.due(T0 + 5000, 10)).toEqual([bounce.id]);
    expect(spool.count()).toBe(1);
  });

  it('a completed message leaves no journal behind, with entries or without', async () => {
    const kept = message();
    const plain = message();
    await spool.admit(kept);
    await spool.admit(plain);
    const rcpts = (m: typeof kept, state: 'pending' | 'delivered') => m.recipients.map((address) => ({ address, state, tries: 1 }));
    await settle(spool, kept.id, { recipients: rcpts(kept, 'pending'), nextAttempt: T0 + MIN, journal: [adm('a'), adm('b')] });
    expect(spool.journal(kept.id)).toHaveLength(2);
    expect(await settle(spool, kept.id, { recipients: rcpts(kept, 'delivered'), nextAttempt: null, journal: [adm('c')] })).toMatchObject({ kind: 'completed' });
    expect(await settle(spool, plain.id, { recipients: rcpts(plain, 'delivered'), nextAttempt: null, journal: [] })).toMatchObject({ kind: 'completed' });
    expect(spool.journal(kept.id)).toEqual([]);
    expect(spool.journal(plain.id)).toEqual([]);
    expect(spool.count()).toBe(0);
  });

  it('on a removed message gives {kind: "gone"}', async () => {
    const msg = message();
    await spool.admit(msg);
    expect(await remove(spool, msg.id)).toBe('completed');
    expect(spool.count()).toBe(0);
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    expect(await settle(spool, msg.id, { recipients: [], nextAttempt: T0 + MIN, journal: [adm('x')] })).toEqual({ kind: 'gone' });
    expect(spool.load(msg.id)).toBeUndefined();
    expect(spool.journal(msg.id)).toEqual([]);
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  it('a message frozen during the attempt stays off the due index', async () => {
    const msg = message();
    await spool.admit(msg);
    await freeze(spool, msg.id, 'frozen by root', T0);
    const r = await settle(spool, msg.id, {
      recipients: [{ address: 'ops@example.org', state: 'pending', tries: 1 }],
      nextAttempt: T0 + 15 * MIN, journal: [],
    });
    expect(r.kind).toBe('changed');
    expect(spool.load(msg.id)?.frozen).toBe(true);
    expect(spool.load(msg.id)?.nextAttempt).toBeNull();
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });
});

describe('freeze, thaw, make-due changes', () => {
  it('a freeze removes it from the due index; a thaw puts it back at its time', async () => {
    const msg = message();
    await spool.admit(msg);
    expect(await freeze(spool, msg.id, 'frozen by root', T0 + MIN)).toBe('changed');
    expect(spool.load(msg.id)).toMatchObject({ frozen: true, nextAttempt: null });
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    expect(spool.nextDue()).toBeUndefined();
    expect(await freeze(spool, msg.id, 'frozen again', T0)).toBe('unchanged');
    expect(users(msg.id)).toEqual(['frozen by root']);

    expect(await thaw(spool, msg.id, 'unfrozen by root', T0 + 2 * MIN)).toBe('changed');
    expect(spool.load(msg.id)).toMatchObject({ frozen: false, nextAttempt: T0 + 2 * MIN });
    expect(spool.due(T0 + 2 * MIN - 1, 10)).toEqual([]);
    expect(spool.due(T0 + 2 * MIN, 10)).toEqual([msg.id]);
    expect(await thaw(spool, msg.id, 'x', T0)).toBe('unchanged');
    expect(users(msg.id)).toEqual(['frozen by root', 'unfrozen by root']);
    // Exactly one due key: thawing did not leave the old one behind.
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([msg.id]);
  });

  it('a freeze of an unknown ID is "gone"', async () => {
    expect(await freeze(spool, '1xVME4-0001HS-zz', 'x', T0)).toBe('gone');
  });

  it('make-due moves unfrozen messages; frozen ones only with thaw', async () => {
    const a = await spool.admit(message({ arrival: T0 }));
    const b = await spool.admit(message({ arrival: T0 + 1000 }));
    await settle(spool, a.id, { recipients: [], nextAttempt: T0 + 60 * MIN, journal: [] });
    await freeze(spool, b.id, 'frozen', T0);

    await makeDue(spool, [a.id, b.id, '1xVME4-0001HS-zz'], T0 + 5 * MIN, false);
    expect(spool.due(T0 + 5 * MIN, 10)).toEqual([a.id]);
    expect(spool.load(a.id)?.nextAttempt).toBe(T0 + 5 * MIN);
    expect(spool.load(b.id)?.frozen).toBe(true);
    // The old key at +60m is gone.
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([a.id]);

    await makeDue(spool, [b.id], T0 + 6 * MIN, true);
    expect(spool.load(b.id)).toMatchObject({ frozen: false, nextAttempt: T0 + 6 * MIN });
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([a.id, b.id]);
  });
});

describe('listing and sharing', () => {
  it('list() is in arrival (ID) order whatever the commit order', async () => {
    // As from five processes: each ID made by its own generator, so it encodes its arrival.
    const msgs = [3, 0, 4, 1, 2].map((k) => {
      const arrival = T0 + k * 61_000;
      return message({ arrival, id: new MessageIdGenerator(5000 - k).next(arrival) });
    });
    const byArrival = [...msgs].sort((x, y) => x.arrival - y.arrival);
    for (const m of msgs) await spool.admit(m);
    const listed = [...spool.list()];
    expect(listed.map((r) => r.arrival)).toEqual(byArrival.map((m) => m.arrival));
    expect(listed.map((r) => r.id)).toEqual([...msgs.map((m) => m.id)].sort());
    expect(spool.count()).toBe(5);
  });

  it('a second opener of the same folder sees the first one\'s commits once they resolve', async () => {
    const second = LmdbSpool.open(dir);
    others.push(second);
    expect(second.count()).toBe(0);
    const msg = message({ body: [Buffer.alloc(100 * 1024, 0x63)] });
    await spool.admit(msg);
    expect(second.count()).toBe(1);
    expect(second.load(msg.id)?.sender).toBe('www-data@example.org');
    expect(second.headers(msg.id)).toBe(msg.headers);
    expect((await bodyOf(second, msg.id)).equals(Buffer.alloc(100 * 1024, 0x63))).toBe(true);
    expect(second.due(T0, 10)).toEqual([msg.id]);

    // And the other way round: a change by the second is seen by the first.
    await freeze(second, msg.id, 'frozen by root', T0);
    expect(spool.load(msg.id)?.frozen).toBe(true);
    expect(spool.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    expect(await remove(second, msg.id)).toBe('completed');
    expect(spool.count()).toBe(0);
    expect(await settle(spool, msg.id, { recipients: [], nextAttempt: T0, journal: [] })).toEqual({ kind: 'gone' });
  });

  it('another process sees commits once they resolve, and this one sees the other\'s', async () => {
    // The child runs the compiled module (npx tsc -p . first), as sendmail would.
    const compiled = fileURLToPath(new URL('../../dist/spool/lmdb-spool.js', import.meta.url));
    expect(existsSync(compiled), `${compiled} is missing: run npx tsc -p . first`).toBe(true);
    const mine = message();
    await spool.admit(mine);
    const theirs = message({ arrival: T0 + 1000, sender: 'cron@example.org' });
    const script = `
      import { LmdbSpool } from ${JSON.stringify(pathToFileURL(compiled).href)};
      const [dir, mineId, theirs] = process.argv.slice(1);
      const s = LmdbSpool.open(dir);
      const seen = s.load(mineId);
      const m = JSON.parse(theirs);
      m.body = [Buffer.from(m.body)];
      await s.admit(m);
      await s.close();
      process.stdout.write(JSON.stringify({ sender: seen?.sender }));
    `;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script, dir, mine.id,
        JSON.stringify({ ...theirs, body: 'from the child\n' })], (err, stdout, stderr) => {
        if (err) reject(new Error(`child failed: ${stderr}`));
        else resolve(stdout);
      });
    });
    expect(JSON.parse(out).sender).toBe('www-data@example.org');
    expect(spool.count()).toBe(2);
    expect(spool.due(T0 + 1000, 10)).toEqual([mine.id, theirs.id]);
    expect(spool.load(theirs.id)?.sender).toBe('cron@example.org');
    expect((await bodyOf(spool, theirs.id)).toString()).toBe('from the child\n');
  });

  it('open() on an unusable folder throws SpoolUnavailable', () => {
    // A regular file where a folder should be (not /proc: Node's recursive mkdirSync
    // loops forever there).
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    expect(() => LmdbSpool.open(join(file, 'spool'))).toThrow(SpoolUnavailable);
    expect(() => LmdbSpool.open(join(file, 'spool'))).toThrow(/cannot open the spool in .*not-a-folder\/spool/);
  });
});
