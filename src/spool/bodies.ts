// spool/bodies.ts: message bodies as the spool keeps them. A body within BIG (1 MB) is
// 64 KB chunks in the `body` database, keyed [ID, n]; a bigger one is a file of its
// own, bodies/ID, read back with plain reads, so sending it on maps none of it into
// the process. Reads (streamed, whole, a prefix for bounces) and the checks for
// chunks and files that belong to no message.
import { closeSync, constants, createReadStream, openSync, readdirSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { SpoolStore } from './store.js';

export const CHUNK = 64 * 1024;
/** Bodies larger than this go to a file (bodies/ID) as they arrive; smaller ones are held, then committed as chunks. */
export const BIG = 1024 * 1024;

/** Joins small buffers and splits big ones into CHUNK-sized pieces. */
export function rechunk(parts: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let pending: Buffer[] = [];
  let size = 0;
  for (let part of parts) {
    while (part.length > 0) {
      const take = Math.min(CHUNK - size, part.length);
      pending.push(part.subarray(0, take));
      size += take;
      part = part.subarray(take);
      if (size === CHUNK) {
        out.push(pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending));
        pending = [];
        size = 0;
      }
    }
  }
  if (size > 0) out.push(pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending));
  return out;
}


/** Writes all of `parts` at the file's position (a write may take less than asked). */
export async function writeAll(file: FileHandle, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    for (let off = 0; off < part.length;) off += (await file.write(part, off, part.length - off)).bytesWritten;
  }
}

/** See Spool.body. */
export function bodyStream(store: SpoolStore, id: string, expected?: number): Readable {
  // Chunks named by the caller's record: a chunked body, no need to read the record
  // again (a body file's record says 0 chunks).
  const record = expected !== undefined && expected > 0 ? undefined : store.read(id);
  // Plain reads: nothing of a big body is mapped into the process. A missing file is the
  // reader's error, as a missing chunk is: the file is opened when the body is read (a
  // ReadStream made here emitted ENOENT before anyone listened, and the daemon died).
  if (record?.bodyFile) {
    const path = join(store.bodyDir, id);
    return Readable.from((async function* (): AsyncGenerator<Buffer> {
      for await (const part of createReadStream(path, { highWaterMark: CHUNK })) yield part as Buffer;
    })(), { objectMode: false });
  }
  // Removed meanwhile (a body file's record says 0 chunks): an error, not an empty body.
  if (!record && expected === 0) return Readable.from((function* (): Generator<Buffer> { throw new Error(`message ${id} is no longer in the spool`); })());
  const count = expected ?? record?.chunks ?? 0;
  const chunks = store.chunks;
  return Readable.from((function* () {
    for (let i = 0; i < count; i++) {
      const part = chunks.getBinary([id, i]);
      if (!part) throw new Error(`body of ${id} is missing chunk ${i}`);
      yield asBuffer(part);
    }
  })(), { objectMode: false });
}

/** A chunk as getBinary() gave it: memory of its own already (getBinaryFast's is reused), so not copied again. */
const asBuffer = (part: Uint8Array): Buffer => (Buffer.isBuffer(part) ? part : Buffer.from(part));

/** See Spool.bodyChunks. */
export function bodyChunks(store: SpoolStore, id: string, chunks: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < chunks; i++) {
    const part = store.chunks.getBinary([id, i]);
    if (!part) throw new Error(`body of ${id} is missing chunk ${i}`);
    parts.push(asBuffer(part));
  }
  return parts;
}

/** See Spool.bodyPrefix. */
export function bodyPrefix(store: SpoolStore, id: string, limit: number): Buffer {
  const record = store.read(id);
  if (record?.bodyFile) {
    const out = Buffer.allocUnsafe(Math.min(limit, record.bodySize));
    const fd = openSync(join(store.bodyDir, id), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      let n = 0;
      for (let got = 1; n < out.length && got > 0; n += got) got = readSync(fd, out, n, out.length - n, n);
      return out.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  }
  const parts: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < limit; i++) {
    const part = store.chunks.getBinary([id, i]);
    if (!part) break;
    parts.push(asBuffer(part));
    size += part.length;
  }
  return Buffer.concat(parts).subarray(0, limit);
}

/** Files in bodies/ of no stored message and no writer still receiving it. */
export function strayBodies(store: SpoolStore): string[] {
  let names: string[];
  try {
    names = readdirSync(store.bodyDir);
  } catch {
    return [];
  }
  // Read after the listing: a file's writer has its entry before the file exists,
  // and its message is stored before the entry goes.
  store.root.resetReadTxn();
  return names.filter((id) => !store.meta.doesExist(id) && !store.incomingDb.doesExist(id));
}

/** Body chunks that belong to no stored message (a full scan: for tests and checks). */
export function strayChunks(store: SpoolStore): number {
  store.root.resetReadTxn();
  let n = 0;
  for (const [id] of store.chunks.getKeys({})) if (!store.meta.doesExist(id)) n++;
  return n;
}
