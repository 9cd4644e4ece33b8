// Each spool commit is synced before anyone sees it: the spool is opened with lmdb-js's
// overlapping sync off (its default is on, off Windows). With it on, a commit is visible
// to every process before its fdatasync, so what is done on the strength of a read (a
// body file unlinked once its removal is seen, a drop file removed) can run ahead of the
// sync; and after a power cut lmdb-js keeps a commit seen but not flushed unless the boot
// ID changed. (README, Power-loss harness.) Checked in the file itself: overlapping sync
// keeps a third meta record, the "flushed" one, at half the first page; plain LMDB
// writes nothing there. And a stored message keeps its body file: an abort that comes
// while its commit is under way leaves the file, and a body file that is missing is an
// error of the reader of the body, not an 'error' event no one listens to (which took a
// daemon down in a power-loss round).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIG, LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';

const T0 = Date.UTC(2026, 11, 7, 11, 0, 0);
let dir: string;

/** Whether the half-page after the first meta page's middle holds anything (the flushed-meta record). */
function flushedMetaWritten(file: string): boolean {
  const page = readFileSync(file).subarray(0, 4096);
  return page.subarray(2048, 2048 + 256).some((b) => b !== 0);
}

beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'postern-commit-sync-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

describe('spool commits', () => {
  it('are written without overlapping sync (no flushed-meta record)', async () => {
    const spool = LmdbSpool.open(dir);
    const gen = new MessageIdGenerator(4242);
    for (let i = 0; i < 3; i++) {
      await spool.admit({ id: gen.next(T0 + i), sender: 'a@example.org', recipients: ['b@example.org'], arrival: T0 + i,
        protocol: 'local', headers: 'Subject: t\n', body: [Buffer.from(`body ${i}\n`)] });
    }
    await spool.close();
    expect(flushedMetaWritten(join(dir, 'spool.mdb'))).toBe(false);
  });

  it('(the check can fail: lmdb-js with its default overlapping sync writes that record)', async () => {
    const root = open({ path: join(dir, 'other.mdb'), compression: false });
    for (let i = 0; i < 3; i++) await root.put(`k${i}`, `v${i}`);
    await root.flushed;
    await root.close();
    expect(flushedMetaWritten(join(dir, 'other.mdb'))).toBe(true);
  });

  it('keep the body file of a message whose commit began before an abort', async () => {
    const spool = LmdbSpool.open(dir);
    try {
      const id = new MessageIdGenerator(4243).next(T0);
      const w = spool.incoming(id);
      await w.write(randomBytes(BIG + 100_000)); // past BIG: a body file
      const commit = w.commit({ sender: 'a@example.org', recipients: ['b@example.org'], arrival: T0, protocol: 'esmtp',
        clientIp: '127.0.0.1', headers: 'Subject: big\n' });
      await w.abort(); // the client went away while the commit was under way
      const record = await commit;
      expect(record.bodyFile).toBe(true);
      expect(spool.load(id)).toBeDefined();
      expect(existsSync(join(dir, 'bodies', id))).toBe(true);
    } finally {
      await spool.close();
    }
  });

  it('make a missing body file the error of whoever reads the body, later', async () => {
    const spool = LmdbSpool.open(dir);
    try {
      const id = new MessageIdGenerator(4244).next(T0);
      const w = spool.incoming(id);
      await w.write(randomBytes(BIG + 1000));
      await w.commit({ sender: 'a@example.org', recipients: ['b@example.org'], arrival: T0, protocol: 'esmtp',
        clientIp: '127.0.0.1', headers: 'Subject: big\n' });
      unlinkSync(join(dir, 'bodies', id));
      const body = spool.body(id);
      // The scheduler reads the body only when the transport pulls it: an error before
      // that, with no listener, was an uncaught exception (this test fails on one).
      await new Promise((r) => setTimeout(r, 100));
      await expect((async () => { for await (const part of body) void part; })()).rejects.toThrow(/ENOENT/);
    } finally {
      await spool.close();
    }
  });
});
