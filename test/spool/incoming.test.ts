// Tests for the spool's incoming-message writer (src/spool/lmdb-spool.ts): a body
// written in pieces is invisible until commit, gives the same record as a whole-message
// commit, and what an abort or a dead writer leaves is removed.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LmdbSpool, SpoolUnavailable } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { IncomingMeta } from '../../src/spool/spool.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const CHUNK = 64 * 1024;
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
    expect(spool.incomingCount()).toBe(1);
    const record = await w.commit(meta());
    expect(spool.incomingCount()).toBe(0);
    expect(spool.load(id)).toEqual(record);
    expect(spool.due(T0 + 1, 10)).toEqual([id]);

    const whole = await spool.commit({ ...meta(), id: gen.next(T0), body: [body] });
    expect({ ...record, id: '' }).toEqual({ ...whole, id: '' });
    expect(record.chunks).toBe(6);
    expect(record.size).toBe(Buffer.byteLength(meta().headers, 'latin1') + 1 + body.length);
    expect(createHash('sha256').update(await bodyOf(id)).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(spool.strayChunks()).toBe(0);
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

  it('abort removes every chunk written', async () => {
    const id = gen.next(T0);
    const w = spool.incoming(id);
    await writeInPieces(w, randomBytes(3 * CHUNK + 10), [40_000]);
    expect(spool.strayChunks()).toBe(3);
    await w.abort();
    expect(spool.strayChunks()).toBe(0);
    expect(spool.incomingCount()).toBe(0);
    await expect(w.write(Buffer.from('x'))).rejects.toThrow();
  });

  it('never writes over a stored message with the same ID', async () => {
    const id = gen.next(T0);
    const body = randomBytes(2 * CHUNK);
    await spool.commit({ ...meta(), id, body: [body] });
    const w = spool.incoming(id);
    await expect(w.write(randomBytes(CHUNK))).rejects.toThrow(SpoolUnavailable);
    await expect(w.commit(meta())).rejects.toThrow();
    expect((await bodyOf(id)).equals(body)).toBe(true);
  });

  it('a writer that died before commit leaves chunks that the sweep removes; a live one is kept', async () => {
    // Another process writes two chunks and exits without committing (as a crash would).
    const module = pathToFileURL(join(import.meta.dirname, '../../dist/spool/lmdb-spool.js')).href;
    const script = `const { LmdbSpool } = await import(${JSON.stringify(module)});
      const s = LmdbSpool.open(${JSON.stringify(dir)});
      const w = s.incoming('1xVME4-0001HS-0Y');
      await w.write(Buffer.alloc(${2 * CHUNK}, 97));
      process.exit(0);`;
    await new Promise<void>((res, rej) => execFile(process.execPath, ['--input-type=module', '-e', script], (err) => (err ? rej(err) : res())));
    const live = spool.incoming(gen.next(T0));
    await live.write(randomBytes(CHUNK));
    expect(spool.incomingCount()).toBe(2);
    expect(spool.strayChunks()).toBe(3);
    expect(await spool.sweepIncoming()).toBe(1);
    expect(spool.incomingCount()).toBe(1);
    expect(spool.strayChunks()).toBe(1);
    await live.commit(meta());
    expect(spool.strayChunks()).toBe(0);
  });
});
