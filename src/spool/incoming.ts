// spool/incoming.ts: a message being received (IncomingMessage, spool.ts): its body
// held in 64 KB chunks up to BIG and committed with its envelope in one transaction,
// or, past BIG, written to bodies/ID as it arrives (the client waiting while a write
// is outstanding), synced, then committed. Also the sweep of what a writer that died
// before committing left behind (its `incoming` entry, chunks, body file).
import { constants, unlinkSync } from 'node:fs';
import { open as openFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { MessageRecord } from '../core/types.js';
import { BIG, CHUNK, strayBodies, writeAll } from './bodies.js';
import type { IncomingMessage, IncomingMeta } from './spool.js';
import { newRecord, SpoolUnavailable, type SpoolStore } from './store.js';
import { thisWriter, writerAlive } from './writer.js';

/**
 * `pickup`: the maildrop file the message comes from, committed with it (as admit()
 * with pickupFile); such mail is on disk already, so it does not wait for the reserve.
 */
export function openIncoming(store: SpoolStore, id: string, pickup?: string): IncomingMessage {
  // The first BIG bytes are held here, in 64 KB chunks: a body that ends within them
  // is committed as chunks in one transaction (no incoming entry, group commit). One
  // that goes past BIG goes to bodies/ID as it arrives, the client waiting while a
  // write is outstanding; its `incoming` entry lets the next start sweep a crash's file.
  const spare: Buffer[] = [];
  const take = () => spare.pop() ?? Buffer.allocUnsafe(CHUNK);
  const recycle = (parts: Buffer[]) => {
    for (const b of parts) if (spare.length < 4) spare.push(b);
  };
  let pending = take();
  let fill = 0;
  /** Full chunks not in the file (all of them while the body is within BIG). */
  let held: Buffer[] = [];
  let bodySize = 0;
  let state: 'open' | 'committing' | 'done' = 'open';
  let last: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  /** The incoming entry is this writer's (the ID was free): so is bodies/ID once opened. */
  let owned = false;
  let file: FileHandle | undefined;
  const path = join(store.bodyDir, id);
  const meta = store.meta;
  const incomingDb = store.incomingDb;
  const room = () => {
    if (pickup === undefined) store.roomForNewMail(); // the reserve is spent: new mail waits
  };
  const startFile = async (): Promise<FileHandle> => {
    room();
    await store.root.transaction(() => {
      // Never write over a stored message, nor another writer's.
      if (meta.doesExist(id) || incomingDb.doesExist(id)) throw new SpoolUnavailable(`message ID ${id} is already in the spool`);
      incomingDb.put(id, thisWriter());
      owned = true;
    }).catch((err: unknown) => { throw store.writeFailure(err); });
    // The entry is committed (not synced: a crash leaves at worst a file with no entry,
    // which the sweep removes too) before the file exists.
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
    return openFile(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  };
  const toFile = async (parts: Buffer[]): Promise<void> => {
    try {
      file ??= await startFile();
      await writeAll(file, parts);
    } catch (err) {
      throw store.fileFailure(err);
    } finally {
      recycle(parts);
    }
  };
  const dropOnce = async (): Promise<void> => {
    const f = file;
    file = undefined;
    await f?.close().catch(() => undefined);
    if (!owned) return;
    await rm(path, { force: true });
    try {
      await store.root.transaction(() => incomingDb.remove(id));
    } catch (err) {
      (err as { commitError?: Promise<unknown> }).commitError?.catch(() => undefined);
      throw err; // the spool is closed, or the map is full
    }
    owned = false;
  };
  // Never rejects: a removal that fails is tried again a few times; what is still left
  // then goes at the next daemon start.
  const dropAll = (delay = 1000): Promise<void> => dropOnce().catch(() => {
    if (delay <= 16_000) setTimeout(() => void dropAll(delay * 2), delay).unref();
  });
  return {
    id,
    get bodySize() {
      return bodySize;
    },
    write: (body: Buffer): Promise<void> => {
      if (state !== 'open') return Promise.reject(new Error(`message ${id} is no longer being received`));
      if (failure !== undefined) return Promise.reject(failure);
      bodySize += body.length;
      for (let off = 0; off < body.length;) {
        const n = body.copy(pending, fill, off);
        fill += n;
        off += n;
        if (fill === CHUNK) {
          held.push(pending);
          pending = take();
          fill = 0;
        }
      }
      if (bodySize <= BIG || held.length === 0) return Promise.resolve();
      const out = held;
      held = [];
      const write = last.then(() => (failure === undefined ? toFile(out) : Promise.reject(failure)));
      last = write.catch((err: unknown) => { failure ??= err; });
      return write;
    },
    commit: async (m: IncomingMeta): Promise<MessageRecord> => {
      if (state !== 'open') throw new Error(`message ${id} is no longer being received`);
      state = 'committing';
      await last;
      const give = async (err: unknown): Promise<never> => {
        state = 'done';
        held = [];
        await dropAll();
        throw err;
      };
      if (failure !== undefined) return give(failure);
      try {
        room();
      } catch (err) {
        return give(err);
      }
      const tail = fill > 0 ? [pending.subarray(0, fill)] : [];
      if (!file && !owned) {
        // Within BIG: chunks, meta, headers and due key in one transaction, as admit() writes a whole message.
        const parts = [...held, ...tail];
        const record = newRecord({ ...m, id }, bodySize, parts.length);
        try {
          await store.synced(store.root.transaction(() => store.insert(record, m.headers, parts, { pickupFile: pickup, streamed: 'chunks', hold: m.hold })));
        } finally {
          state = 'done';
          held = [];
        }
        return record;
      }
      // In a file: the file and its folder entry on disk first, then the one transaction.
      try {
        if (tail.length > 0) await writeAll(file!, tail);
        await file!.sync();
        await file!.close();
        file = undefined;
        const folder = await openFile(store.bodyDir, constants.O_RDONLY | constants.O_DIRECTORY);
        try {
          await folder.sync();
        } finally {
          await folder.close();
        }
      } catch (err) {
        return give(store.fileFailure(err));
      }
      const record: MessageRecord = { ...newRecord({ ...m, id }, bodySize, 0), bodyFile: true };
      try {
        await store.synced(store.root.transaction(() => store.insert(record, m.headers, [], { pickupFile: pickup, streamed: 'file', hold: m.hold })));
      } catch (err) {
        // Stored after all (what failed was not its transaction): its file is its body and stays.
        store.root.resetReadTxn();
        if (store.meta.doesExist(id)) {
          state = 'done';
          throw err;
        }
        return give(err);
      }
      state = 'done';
      return record;
    },
    abort: async (): Promise<void> => {
      // Once the commit has begun, its outcome decides (a failed one cleans up itself):
      // never pull the body file from under a commit that may store the message.
      if (state !== 'open') return;
      state = 'done';
      pending = Buffer.alloc(0);
      held = [];
      await last;
      await dropAll();
    },
  };
}

/**
 * Removes the chunks and body files of messages whose writer died before committing
 * them (a crash mid-DATA): entries of processes no longer alive, still zombies, or
 * whose pid now belongs to another process (its start time differs; spool/writer.ts).
 * Then the files in bodies/ that belong to no stored message and no live writer (a
 * crash between a removal's commit and its unlink, or before a writer's entry was on
 * disk). Run at daemon start and every hour; returns how many incoming entries were
 * removed.
 */
export async function sweepIncoming(store: SpoolStore): Promise<number> {
  store.root.resetReadTxn();
  const started = Date.now() - process.uptime() * 1000;
  const dead: string[] = [];
  for (const { key, value } of store.incomingDb.getRange({})) {
    if (!writerAlive(value, started)) dead.push(key);
  }
  if (dead.length > 0) {
    await store.root.transaction(() => {
      for (const id of dead) {
        store.incomingDb.remove(id);
        if (store.meta.doesExist(id)) continue; // committed after all: those chunks are its body
        const keys = [...store.chunks.getKeys({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })];
        for (const k of keys) store.chunks.remove(k);
      }
    });
  }
  for (const id of strayBodies(store)) {
    try {
      unlinkSync(join(store.bodyDir, id));
    } catch { /* gone meanwhile */ }
  }
  return dead.length;
}
