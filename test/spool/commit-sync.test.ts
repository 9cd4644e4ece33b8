// Each spool commit is synced before anyone sees it: the spool is opened with lmdb-js's
// overlapping sync off (its default is on, off Windows). With it on, a commit is visible
// to every process before its fdatasync, so what is done on the strength of a read (a
// body file unlinked once its removal is seen, a drop file removed) can run ahead of the
// sync; and after a power cut lmdb-js keeps a commit seen but not flushed unless the boot
// ID changed. (README, Power-loss harness.) Checked in the file itself: overlapping sync
// keeps a third meta record, the "flushed" one, at half the first page; plain LMDB
// writes nothing there.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
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
      await spool.commit({ id: gen.next(T0 + i), sender: 'a@example.org', recipients: ['b@example.org'], arrival: T0 + i,
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
});
