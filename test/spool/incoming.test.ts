// Tests for the spool's incoming-message writer (src/spool/lmdb-spool.ts): a body
// written in pieces is invisible until commit, gives the same record as a whole-message
// commit, and what an abort or a dead writer leaves is removed. A body over BIG goes to
// a file of its own (bodies/ID), read back identical and removed with its message.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIG, LmdbSpool, SpoolUnavailable } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { IncomingMeta } from '../../src/spool/spool.js';
import { remove, settle } from '../helpers/spool.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const CHUNK = 64 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const bodies = () => readdirSync(join(dir, 'bodies')).sort();
let dir: string;
let spool: LmdbSpool;
const gen = new MessageIdGenerator(4927);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-incoming-test-'));
  spool = LmdbSpool.open(dir);
});

afterEach(async () => {
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

const meta = (over: Partial<IncomingMeta> = {}): IncomingMeta => ({
  sender: 'app@example.org', recipients: ['ops@example.org'], arrival: T0, protocol: 'esmtp', clientIp: '127.0.0.1',
  headers: 'Subject: big\nFrom: app@example.org\n', ...over,
});

async function bodyOf(id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of spool.body(id)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Writes `data` in pieces of the given sizes (cycled), waiting for each write as a receiver does. */
async function writeInPieces(w: ReturnType<LmdbSpool['incoming']>, data: Buffer, sizes: number[]): Promise<void> {
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length] as number;
    await w.write(data.subarray(off, off + n));
    off += n;
  }
}

describe('incoming messages', () => {
  it('nothing is visible before commit; then the same record and body as a whole-message commit', async () => {
    const body = randomBytes(5 * CHUNK + 1234);
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await writeInPieces(w, body, [1000, 70_000, 1, 65_536, 3]);
    expect(w.bodySize).toBe(body.length);
    expect(spool.load(id)).toBeUndefined();
    expect(spool.count()).toBe(0);
    expect(spool.due(T0 + 1, 10)).toEqual([]);
    // Within BIG: held by the writer, nothing in the spool yet.
    expect(spool.incomingCount()).toBe(0);
    expect(spool.strayChunks()).toBe(0);
    const record = await w.commit(meta());
    expect(spool.incomingCount()).toBe(0);
    expect(spool.load(id)).toEqual(record);
    expect(spool.due(T0 + 1, 10)).toEqual([id]);

    const whole = await spool.admit({ ...meta(), id: gen.next(T0), body: [body] });
    expect({ ...record, id: '' }).toEqual({ ...whole, id: '' });
    expect(record.chunks).toBe(6);
    expect(record.size).toBe(Buffer.byteLength(meta().headers, 'latin1') + 1 + body.length);
    expect(createHash('sha256').update(await bodyOf(id)).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(spool.strayChunks()).toBe(0);
    // Read at once (the delivery path): the same bytes, each chunk a Buffer of its own.
    const parts = spool.bodyChunks(id, record.chunks);
    expect(parts.every((p) => Buffer.isBuffer(p))).toBe(true);
    expect(parts.map((p) => p.length)).toEqual([CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, 1234]);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    expect(() => spool.bodyChunks(id, record.chunks + 1)).toThrow(/missing chunk 6/);
  });

  it('a small message is one transaction: no incoming entry', async () => {
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await w.write(Buffer.from('hello\n'));
    expect(spool.incomingCount()).toBe(0);
    const record = await w.commit(meta());
    expect(record.chunks).toBe(1);
    expect((await bodyOf(id)).toString()).toBe('hello\n');
  });

  it('an empty body has no chunk, as before', async () => {
    const id = gen.next(T0);
    const record = await spool.incoming(id).commit(meta());
    expect(record).toMatchObject({ bodySize: 0, chunks: 0 });
  });

  it('abort removes what was written: the body file and the incoming entry', async () => {
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await writeInPieces(w, randomBytes(BIG + 3 * CHUNK + 10), [40_000]);
    expect(bodies()).toEqual([id]);
    expect(spool.incomingCount()).toBe(1);
    await w.abort();
    expect(bodies()).toEqual([]);
    expect(spool.incomingCount()).toBe(0);
    expect(spool.strayChunks()).toBe(0);
    await expect(w.write(Buffer.from('x'))).rejects.toThrow();
  });

  it('a body over BIG lands in a file, invisible before commit, read back identical', async () => {
    const body = randomBytes(3 * BIG + 4321);
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await writeInPieces(w, body, [1000, 70_000, 1, 65_536, 3, 200_000]);
    expect(w.bodySize).toBe(body.length);
    // Being written: the file and its incoming entry, nothing a reader can see.
    expect(bodies()).toEqual([id]);
    expect(statSync(join(dir, 'bodies', id)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'bodies')).mode & 0o777).toBe(0o700);
    expect(spool.incomingCount()).toBe(1);
    expect(spool.load(id)).toBeUndefined();
    expect(spool.count()).toBe(0);
    expect(spool.due(T0 + 1, 10)).toEqual([]);
    expect(spool.strayBodies()).toEqual([]); // a live writer's file is not stray

    const record = await w.commit(meta());
    expect(record).toMatchObject({ bodyFile: true, chunks: 0, bodySize: body.length });
    expect(record.size).toBe(Buffer.byteLength(meta().headers, 'latin1') + 1 + body.length);
    expect(spool.load(id)).toEqual(record);
    expect(spool.due(T0 + 1, 10)).toEqual([id]);
    expect(spool.incomingCount()).toBe(0);
    expect(spool.strayChunks()).toBe(0);
    expect(sha(await bodyOf(id))).toBe(sha(body));
    const parts: Buffer[] = [];
    for await (const c of spool.body(id, record.chunks)) parts.push(c as Buffer);
    expect(sha(Buffer.concat(parts))).toBe(sha(body));
    expect(Math.max(...parts.map((p) => p.length))).toBeLessThanOrEqual(CHUNK);
    expect(spool.bodyPrefix(id, 100_000).equals(body.subarray(0, 100_000))).toBe(true);
    expect(spool.bodyPrefix(id, 10 * BIG).equals(body)).toBe(true);
  });

  it('a body of exactly BIG stays in chunks; one byte more goes to a file', async () => {
    const a = gen.next(T0);
    const wa = spool.incoming(a);
    await writeInPieces(wa, randomBytes(BIG), [CHUNK]);
    expect((await wa.commit(meta())).chunks).toBe(BIG / CHUNK);
    const b = gen.next(T0);
    const wb = spool.incoming(b);
    const body = randomBytes(BIG + 1);
    await writeInPieces(wb, body, [CHUNK]);
    expect(await wb.commit(meta())).toMatchObject({ bodyFile: true, chunks: 0 });
    expect(bodies()).toEqual([b]);
    expect((await bodyOf(b)).equals(body)).toBe(true);
  });

  it('a body file goes with its message: on completion and on removal', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const id = gen.next(T0);
      const w = spool.incoming(id);
      await writeInPieces(w, randomBytes(BIG + CHUNK), [CHUNK]);
      await w.commit(meta());
      ids.push(id);
    }
    expect(bodies()).toEqual([...ids].sort());
    const [done, removed] = ids as [string, string];
    const settled = await settle(spool, done, {
      recipients: [{ address: 'ops@example.org', state: 'delivered', tries: 1 }], nextAttempt: null, journal: [],
    });
    expect(settled.kind).toBe('completed');
    expect(bodies()).toEqual([removed]);
    expect(await remove(spool, removed)).toBe('completed');
    expect(bodies()).toEqual([]);
  });

  it('a missing body file is an error, not a short read', async () => {
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await writeInPieces(w, randomBytes(BIG + CHUNK), [CHUNK]);
    const record = await w.commit(meta());
    unlinkSync(join(dir, 'bodies', id));
    await expect(bodyOf(id)).rejects.toThrow(/ENOENT/);
    expect(() => spool.bodyPrefix(id, 100)).toThrow(/ENOENT/);
    // Removed meanwhile (the caller holds the old record): an error too.
    await remove(spool, id);
    await expect((async () => {
      for await (const _c of spool.body(id, record.chunks)) { /* nothing */ }
    })()).rejects.toThrow(/no longer in the spool/);
  });

  it('an orphan body file (no message, no writer) is swept; a stored message\'s is kept', async () => {
    const id = gen.next(T0);
    const w = spool.incoming(id);
    const body = randomBytes(BIG + CHUNK);
    await writeInPieces(w, body, [CHUNK]);
    await w.commit(meta());
    const orphan = gen.next(T0);
    writeFileSync(join(dir, 'bodies', orphan), 'left by a crash between a removal and its unlink');
    expect(spool.strayBodies()).toEqual([orphan]);
    await spool.sweepIncoming();
    expect(bodies()).toEqual([id]);
    expect((await bodyOf(id)).equals(body)).toBe(true);
  });

  it('never writes over a stored message with the same ID', async () => {
    const id = gen.next(T0);
    const body = randomBytes(2 * CHUNK);
    await spool.admit({ ...meta(), id, body: [body] });
    const w = spool.incoming(id);
    // Held until it goes past BIG: then the ID is checked, before any file is made.
    await expect(w.write(randomBytes(BIG + CHUNK))).rejects.toThrow(SpoolUnavailable);
    await expect(w.commit(meta())).rejects.toThrow();
    expect((await bodyOf(id)).equals(body)).toBe(true);
    expect(bodies()).toEqual([]);
    // Within BIG: the commit finds the ID taken.
    const small = spool.incoming(id);
    await small.write(randomBytes(CHUNK));
    await expect(small.commit(meta())).rejects.toThrow(SpoolUnavailable);
    expect((await bodyOf(id)).equals(body)).toBe(true);
  });

  it('a writer that died before commit leaves a body file that the sweep removes; a live one is kept', async () => {
    // Another process writes past BIG and exits without committing (as a crash would).
    const module = pathToFileURL(join(import.meta.dirname, '../../dist/spool/lmdb-spool.js')).href;
    const script = `const { LmdbSpool } = await import(${JSON.stringify(module)});
      const s = LmdbSpool.open(${JSON.stringify(dir)});
      const w = s.incoming('1xVME4-0001HS-0Y');
      await w.write(Buffer.alloc(${BIG + 2 * CHUNK}, 97));
      process.exit(0);`;
    await new Promise<void>((res, rej) => execFile(process.execPath, ['--input-type=module', '-e', script], (err) => (err ? rej(err) : res())));
    const liveId = gen.next(T0);
    const live = spool.incoming(liveId);
    const body = randomBytes(BIG + CHUNK);
    await live.write(body);
    expect(spool.incomingCount()).toBe(2);
    expect(bodies()).toEqual(['1xVME4-0001HS-0Y', liveId].sort());
    expect(await spool.sweepIncoming()).toBe(1);
    expect(spool.incomingCount()).toBe(1);
    expect(bodies()).toEqual([liveId]);
    await live.commit(meta());
    expect(spool.incomingCount()).toBe(0);
    expect((await bodyOf(liveId)).equals(body)).toBe(true);
    expect(existsSync(join(dir, 'bodies', '1xVME4-0001HS-0Y'))).toBe(false);
  });
});
