// spool/lmdb-spool.ts: the Spool in one LMDB environment shared by the daemon and the
// command-line processes. Sub-databases: `meta` (envelope + per-recipient state,
// keyed by ID, so ID order is arrival order), `headers`, `body` (64 KB chunks keyed
// [ID, n]), `due` (the index [nextAttempt, ID] the scheduler reads), `journal` (the
// message's versioned history: attempts and operator actions, keyed [ID, n]; see
// core/journal.ts), the read-only `msglog` and `history` of spools written before the
// journal (read alongside it: no migration), and `pickedup` (maildrop file name → ID,
// written with the commit of a picked-up file).
// Also `frozen` (ID → 1 for each frozen message, kept in the transaction that freezes,
// thaws or removes it, so the metrics' frozen count is an entry count, never a scan) and `incoming` (ID → pid and start time of a message being received and not yet
// committed: what a crash leaves behind is removed at the next daemon start).
// A body over BIG (1 MB) is not in `body` but in a file of its own, bodies/ID: read
// back with plain reads, so sending it on maps none of it into the process.
// Writes of one event-loop turn share a transaction and one sync (group commit).
import { chmodSync, closeSync, constants, lchownSync, mkdirSync, openSync, readdirSync, readSync, statSync, unlinkSync, createReadStream } from 'node:fs';
import { open as openFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { open, type Database, type RootDatabase } from 'lmdb';
import { adminEntry, applyEdit, type Change, type ChangeResult } from '../core/change.js';
import type { JournalEntry, NewJournalEntry } from '../core/journal.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import { decodeRecord } from './record.js';
import { isLmdbCommitFailure, PickedUpAlready, SpoolWriteError } from './spool.js';
import type { SpaceReserve } from './reserve.js';
import { thisWriter, writerAlive, type Writer } from './writer.js';
export { isLmdbCommitFailure };
import type { DueKey, IncomingMessage, IncomingMeta, Settlement, SettleResult, Spool } from './spool.js';

/** Root-database key saying the `frozen` index is built (see indexFrozen()). */
const FROZEN_INDEX_MARK = 'postern:frozen-index';
const CHUNK = 64 * 1024;
export const QUEUE_ONLY_DELAY = 5 * 60_000;
/** Bodies larger than this go to a file (bodies/ID) as they arrive; smaller ones are held, then committed as chunks. */
export const BIG = 1024 * 1024;

export class SpoolUnavailable extends Error {}

/** An attempt record as spools written before the journal kept it. */
type LegacyAttempt = Omit<Extract<JournalEntry, { type: 'legacy-attempt' }>, 'v' | 'type'>;


/** Joins small buffers and splits big ones into CHUNK-sized pieces. */
function rechunk(parts: Buffer[]): Buffer[] {
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

/** Entries in a database, from mdb_stat: no key is read. */
const entryCount = (db: { getStats(): unknown }): number => (db.getStats() as { entryCount: number }).entryCount;

export function newRecord(msg: Omit<NewMessage, 'body'>, bodySize: number, chunks: number): MessageRecord {
  const record: MessageRecord = {
    v: 1,
    id: msg.id,
    sender: msg.sender,
    arrival: msg.arrival,
    size: Buffer.byteLength(msg.headers, 'latin1') + 1 + bodySize,
    protocol: msg.protocol,
    frozen: false,
    recipients: msg.recipients.map((address) => ({ address, state: 'pending', tries: 0 })),
    // -odq: not before the next periodic queue run (see README); `postern -q` makes it due at once.
    nextAttempt: msg.queueOnly ? msg.arrival + QUEUE_ONLY_DELAY : msg.arrival,
    attempts: 0,
    warningsSent: 0,
    bodySize,
    chunks,
  };
  if (msg.queueOnly) record.queueOnly = true;
  for (const k of ['user', 'clientName', 'clientIp', 'helo', 'messageIdHeader', 'bounceOf'] as const) {
    if (msg[k] !== undefined) record[k] = msg[k];
  }
  return record;
}

/** The process writing a message not yet committed (pid and process start time), and since when. */
type IncomingEntry = Writer;

/**
 * Makes `<spool>/bodies` (0700) when missing; root making it for a spool that is the
 * daemon user's gives it to the spool folder's owner.
 */
function bodyFolder(directory: string): string {
  const bodies = join(directory, 'bodies');
  try {
    mkdirSync(bodies, { mode: 0o700 });
    if (process.geteuid?.() === 0) {
      const st = statSync(directory);
      lchownSync(bodies, st.uid, st.gid);
    }
  } catch (err) {
    // There already; or a reader that may not write the spool (it reads no body then).
    if (!['EEXIST', 'EACCES', 'EPERM', 'EROFS'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
  return bodies;
}

/** Writes all of `parts` at the file's position (a write may take less than asked). */
async function writeAll(file: FileHandle, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    for (let off = 0; off < part.length;) off += (await file.write(part, off, part.length - off)).bytesWritten;
  }
}

export class LmdbSpool implements Spool {
  private readonly incomingDb: Database<IncomingEntry, string>;
  private readonly journalDb: Database<NewJournalEntry, [string, number]>;

  private constructor(
    private readonly root: RootDatabase,
    private readonly meta: Database<MessageRecord, string>,
    private readonly hdrs: Database<string, string>,
    private readonly chunks: Database<Buffer, [string, number]>,
    private readonly dueIdx: Database<number, [number, string]>,
    private readonly mlog: Database<string, string>,
    /** Attempt records of spools written before the journal (read, then removed with the message). */
    private readonly attempts: Database<LegacyAttempt, [string, number]>,
    private readonly pickups: Database<string, string>,
  ) {
    this.incomingDb = root.openDB<IncomingEntry, string>({ name: 'incoming', encoding: 'msgpack' });
    this.journalDb = root.openDB<NewJournalEntry, [string, number]>({ name: 'journal', encoding: 'msgpack' });
    this.frozenIdx = root.openDB<number, string>({ name: 'frozen', encoding: 'msgpack' });
  }

  private readonly frozenIdx: Database<number, string>;
  /**
   * Whether the spool held entries of the pre-journal format when opened (this version
   * never writes them): if not, a removal need not look for any.
   */
  private legacy = true;

  /**
   * A spool written before the `frozen` index gets it once (one pass over `meta`, the
   * first time a process of this version opens it; a marker in the root database says
   * it is built). A process that may not write leaves it for the next one.
   */
  private indexFrozen(): void {
    if (this.root.get(FROZEN_INDEX_MARK) !== undefined) return;
    try {
      this.root.transactionSync(() => {
        if (this.root.get(FROZEN_INDEX_MARK) !== undefined) return;
        for (const { key, value } of this.meta.getRange({})) {
          let frozen = false;
          try {
            frozen = decodeRecord(value).frozen;
          } catch { /* a newer record: its own postern keeps its index */ }
          if (frozen) this.frozenIdx.put(key, 1);
        }
        this.root.put(FROZEN_INDEX_MARK, 1);
      });
    } catch { /* read-only: counts of frozen mail are not needed by readers */ }
  }

  /** The frozen index follows record.frozen (inside the caller's transaction). */
  private indexFrozenState(record: MessageRecord): void {
    if (record.frozen) this.frozenIdx.put(record.id, 1);
    else this.frozenIdx.remove(record.id);
  }

  /**
   * What the metrics need, from entry counts (mdb_stat) and one key: messages, frozen
   * ones, keys on the due index, and the arrival time of the oldest message (IDs sort
   * by arrival, so it is the first key of `meta`). Never reads the whole queue.
   */
  stats(): { messages: number; frozen: number; due: number; oldestArrival: number | undefined } {
    this.root.resetReadTxn();
    let oldestArrival: number | undefined;
    for (const { value } of this.meta.getRange({ limit: 1 })) oldestArrival = value.arrival;
    return { messages: entryCount(this.meta), frozen: entryCount(this.frozenIdx), due: entryCount(this.dueIdx), oldestArrival };
  }

  static open(directory: string): LmdbSpool {
    try {
      mkdirSync(directory, { recursive: true, mode: 0o700 });
      // noSync stays off: a commit is not acknowledged until `flushed` says it is on disk.
      // overlappingSync off (lmdb-js's default is on, off Windows): each commit is synced
      // before any process sees it, so what is read of the spool is on disk, and what is
      // done on the strength of it (a body file unlinked once its removal is seen, a
      // drop file removed) never runs ahead of the sync; and after a power cut LMDB opens
      // the last commit on disk, without lmdb-js's boot-ID rule (a commit seen but not
      // flushed is kept unless the boot ID changed). See README, Power-loss harness.
      const root = open({ path: join(directory, 'spool.mdb'), maxDbs: 12, compression: false, noSync: false, overlappingSync: false });
      // The spool is its owner's alone (lmdb creates its files 0644).
      for (const f of ['spool.mdb', 'spool.mdb-lock']) {
        try {
          chmodSync(join(directory, f), 0o600);
        } catch { /* not ours (root reading a daemon user's spool): its owner set the mode */ }
      }
      const bodies = bodyFolder(directory);
      const spool = new LmdbSpool(
        root,
        root.openDB<MessageRecord, string>({ name: 'meta', encoding: 'msgpack' }),
        root.openDB<string, string>({ name: 'headers', encoding: 'string' }),
        root.openDB<Buffer, [string, number]>({ name: 'body', encoding: 'binary' }),
        root.openDB<number, [number, string]>({ name: 'due', encoding: 'msgpack' }),
        root.openDB<string, string>({ name: 'msglog', encoding: 'string' }),
        root.openDB<LegacyAttempt, [string, number]>({ name: 'history', encoding: 'msgpack' }),
        root.openDB<string, string>({ name: 'pickedup', encoding: 'string' }),
      );
      spool.bodyDir = bodies;
      spool.indexFrozen();
      spool.legacy = entryCount(spool.mlog) + entryCount(spool.attempts) > 0;
      return spool;
    } catch (err) {
      throw new SpoolUnavailable(`cannot open the spool in ${directory}: ${(err as Error).message}`);
    }
  }

  /** `<spool>/bodies`: the files of bodies over BIG, named by message ID. */
  private bodyDir = '';
  /** Messages with a body file removed by a transaction: the file goes once that is committed. */
  private readonly doomed = new Set<string>();

  /** Told of every failed write (the daemon logs them, at most once a minute). */
  onWriteError: ((err: SpoolWriteError) => void) | undefined;
  /** Room kept back so that delivery results can be written on a full disk (the daemon's). */
  reserve: SpaceReserve | undefined;

  /** New mail waits while the reserve is spent: what room there is goes to delivery results. */
  private roomForNewMail(): void {
    if (this.reserve && !this.reserve.canAccept()) throw new SpoolWriteError('cannot write the spool (disk full)');
  }

  /** Told how long each write took, from the call to the sync (the daemon's metrics). */
  onSynced: ((seconds: number) => void) | undefined;

  /** Resolves when everything written so far is synced to disk. */
  private async synced<T>(commit: Promise<T>): Promise<T> {
    const start = this.onSynced ? process.hrtime.bigint() : 0n;
    try {
      // With overlappingSync off (open()) the commit resolves once mdb_txn_commit has
      // returned: its data fdatasync'd, its meta page written O_DSYNC. `root.flushed` is
      // not awaited: without overlapping sync it is the latest batch's commit promise, and
      // a later transaction's failure would make this one, stored, look failed.
      const value = await commit;
      if (this.onSynced) this.onSynced(Number(process.hrtime.bigint() - start) / 1e9);
      return value;
    } catch (err) {
      throw this.writeFailure(err);
    } finally {
      if (this.doomed.size > 0) this.unlinkDoomed();
    }
  }

  /**
   * Removes the body files of messages whose removal is committed. A file whose message
   * is still there (its transaction failed, or is not committed yet) stays; a crash
   * before the unlink leaves an orphan that the start-time sweep removes.
   */
  private unlinkDoomed(): void {
    this.root.resetReadTxn();
    for (const id of this.doomed) {
      if (this.meta.doesExist(id)) continue;
      this.doomed.delete(id);
      try {
        unlinkSync(join(this.bodyDir, id));
      } catch { /* gone already; or left for the sweep */ }
    }
  }

  /** A body file that could not be written: ENOSPC, EDQUOT, EIO are a SpoolWriteError (452 4.3.1, logged), as a failed commit is. */
  private fileFailure(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EIO') return err;
    const failure = new SpoolWriteError(`cannot write the spool (${code === 'EIO' ? 'I/O error' : 'disk full'})`);
    this.reserve?.release();
    this.onWriteError?.(failure);
    return failure;
  }

  /**
   * A commit LMDB could not write (a full disk, an I/O error) becomes a SpoolWriteError:
   * the caller answers "try again later" and the process goes on; the transaction left
   * nothing behind. Errors thrown on purpose inside a transaction stay as they are.
   */
  private writeFailure(err: unknown): unknown {
    if (!isLmdbCommitFailure(err)) return err;
    (err as { commitError?: Promise<unknown> }).commitError?.catch(() => undefined);
    const failure = new SpoolWriteError('cannot write the spool (disk full or I/O error)');
    this.reserve?.release();
    this.onWriteError?.(failure);
    return failure;
  }

  /**
   * New mail, whole (sendmail's maildrop files, tests, the Exim importer): the door of
   * all new mail with incoming() (SMTP, -bs), both ending in admitOne(). `pickupFile`:
   * the maildrop file it came from, remembered in the same transaction, so a pickup that
   * crashes before removing the file never commits it twice (false: that file was
   * taken already).
   */
  async admit(msg: NewMessage, o: { pickupFile?: string } = {}): Promise<MessageRecord | false> {
    this.roomForNewMail();
    const parts = rechunk(msg.body);
    const record = newRecord(msg, parts.reduce((n, b) => n + b.length, 0), parts.length);
    return this.synced(this.root.transaction(() => this.admitOne(record, msg.headers, parts, o)));
  }

  /**
   * A new message into the spool, inside the caller's transaction: never over a stored
   * one (IDs come from one generator per process, so that is a bug, and throwing aborts
   * the whole transaction), with its pickup mark, its writer's `incoming` entry gone.
   */
  private admitOne(record: MessageRecord, headers: string, parts: Buffer[],
    o: { pickupFile?: string; streamed?: 'chunks' | 'file' } = {}): MessageRecord | false {
    const taken = o.pickupFile !== undefined && this.pickups.doesExist(o.pickupFile);
    // A whole message of a file taken already is not admitted (false); a streamed one (incoming()) is an error.
    if (taken && !o.streamed) return false;
    if (this.meta.doesExist(record.id)) throw new SpoolUnavailable(`message ID ${record.id} is already in the spool`);
    if (taken) throw new PickedUpAlready(`maildrop file ${o.pickupFile} was picked up already`);
    this.writeNew(record, headers, parts);
    if (o.pickupFile !== undefined) this.pickups.put(o.pickupFile, record.id);
    if (o.streamed === 'file') this.incomingDb.remove(record.id); // its writer's entry: the body file is the message's now
    return record;
  }

  /** As admit(), for a message that must be new (throws when its ID is taken). */
  async commit(msg: NewMessage): Promise<MessageRecord> {
    return await this.admit(msg) as MessageRecord;
  }

  /** As admit() with the maildrop file's name (pickup.ts). */
  commitPickup(msg: NewMessage, file: string): Promise<MessageRecord | false> {
    return this.admit(msg, { pickupFile: file });
  }

  /** The ID a maildrop file became, if it was picked up already. */
  pickedUp(file: string): string | undefined {
    this.root.resetReadTxn();
    return this.pickups.get(file);
  }

  /** Every maildrop file name still remembered (their files should be gone). */
  pickupMarks(): string[] {
    return [...this.pickups.getKeys({})];
  }

  /** Forgets maildrop files that are removed; no sync needed (a stale mark only costs a lookup). */
  forgetPickups(files: string[]): Promise<void> {
    if (files.length === 0) return Promise.resolve();
    return this.root.transaction(() => {
      for (const f of files) this.pickups.remove(f);
    }).then(() => undefined);
  }

  /**
   * `pickup`: the maildrop file the message comes from, committed with it (as
   * commitPickup); such mail is on disk already, so it does not wait for the reserve.
   */
  incoming(id: string, pickup?: string): IncomingMessage {
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
    const path = join(this.bodyDir, id);
    const meta = this.meta;
    const incomingDb = this.incomingDb;
    const room = () => {
      if (pickup === undefined) this.roomForNewMail(); // the reserve is spent: new mail waits
    };
    const startFile = async (): Promise<FileHandle> => {
      room();
      await this.root.transaction(() => {
        // Never write over a stored message, nor another writer's.
        if (meta.doesExist(id) || incomingDb.doesExist(id)) throw new SpoolUnavailable(`message ID ${id} is already in the spool`);
        incomingDb.put(id, thisWriter());
        owned = true;
      }).catch((err: unknown) => { throw this.writeFailure(err); });
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
        throw this.fileFailure(err);
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
        await this.root.transaction(() => incomingDb.remove(id));
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
          // Within BIG: chunks, meta, headers and due key in one transaction, as commit(NewMessage).
          const parts = [...held, ...tail];
          const record = newRecord({ ...m, id }, bodySize, parts.length);
          try {
            await this.synced(this.root.transaction(() => this.admitOne(record, m.headers, parts, { pickupFile: pickup, streamed: 'chunks' })));
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
          const folder = await openFile(this.bodyDir, constants.O_RDONLY | constants.O_DIRECTORY);
          try {
            await folder.sync();
          } finally {
            await folder.close();
          }
        } catch (err) {
          return give(this.fileFailure(err));
        }
        const record: MessageRecord = { ...newRecord({ ...m, id }, bodySize, 0), bodyFile: true };
        try {
          await this.synced(this.root.transaction(() => this.admitOne(record, m.headers, [], { pickupFile: pickup, streamed: 'file' })));
        } catch (err) {
          // Stored after all (what failed was not its transaction): its file is its body and stays.
          this.root.resetReadTxn();
          if (this.meta.doesExist(id)) {
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
  async sweepIncoming(): Promise<number> {
    this.root.resetReadTxn();
    const started = Date.now() - process.uptime() * 1000;
    const dead: string[] = [];
    for (const { key, value } of this.incomingDb.getRange({})) {
      if (!writerAlive(value, started)) dead.push(key);
    }
    if (dead.length > 0) {
      await this.root.transaction(() => {
        for (const id of dead) {
          this.incomingDb.remove(id);
          if (this.meta.doesExist(id)) continue; // committed after all: those chunks are its body
          const keys = [...this.chunks.getKeys({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })];
          for (const k of keys) this.chunks.remove(k);
        }
      });
    }
    for (const id of this.strayBodies()) {
      try {
        unlinkSync(join(this.bodyDir, id));
      } catch { /* gone meanwhile */ }
    }
    return dead.length;
  }

  /** Files in bodies/ of no stored message and no writer still receiving it. */
  strayBodies(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.bodyDir);
    } catch {
      return [];
    }
    // Read after the listing: a file's writer has its entry before the file exists,
    // and its message is stored before the entry goes.
    this.root.resetReadTxn();
    return names.filter((id) => !this.meta.doesExist(id) && !this.incomingDb.doesExist(id));
  }

  /** Messages being received (written in part, not committed), by any process. */
  incomingCount(): number {
    this.root.resetReadTxn();
    return this.incomingDb.getCount();
  }

  /** Body chunks that belong to no stored message (a full scan: for tests and checks). */
  strayChunks(): number {
    this.root.resetReadTxn();
    let n = 0;
    for (const [id] of this.chunks.getKeys({})) if (!this.meta.doesExist(id)) n++;
    return n;
  }

  private writeNew(record: MessageRecord, headers: string, parts: Buffer[]): void {
    this.meta.put(record.id, record);
    this.hdrs.put(record.id, headers);
    parts.forEach((part, i) => this.chunks.put([record.id, i], part));
    if (record.nextAttempt !== null) this.dueIdx.put([record.nextAttempt, record.id], 1);
  }

  load(id: string): MessageRecord | undefined {
    const record = this.read(id);
    if (record) return record;
    // Perhaps committed by another process (sendmail, -bs) after our read snapshot.
    this.root.resetReadTxn();
    return this.read(id);
  }

  headers(id: string): string | undefined {
    return this.hdrs.get(id);
  }

  body(id: string, expected?: number): Readable {
    // Chunks named by the caller's record: a chunked body, no need to read the record
    // again (a body file's record says 0 chunks).
    const record = expected !== undefined && expected > 0 ? undefined : this.read(id);
    // Plain reads: nothing of a big body is mapped into the process. A missing file is the
    // reader's error, as a missing chunk is: the file is opened when the body is read (a
    // ReadStream made here emitted ENOENT before anyone listened, and the daemon died).
    if (record?.bodyFile) {
      const path = join(this.bodyDir, id);
      return Readable.from((async function* (): AsyncGenerator<Buffer> {
        for await (const part of createReadStream(path, { highWaterMark: CHUNK })) yield part as Buffer;
      })(), { objectMode: false });
    }
    // Removed meanwhile (a body file's record says 0 chunks): an error, not an empty body.
    if (!record && expected === 0) return Readable.from((function* (): Generator<Buffer> { throw new Error(`message ${id} is no longer in the spool`); })());
    const count = expected ?? record?.chunks ?? 0;
    const chunks = this.chunks;
    return Readable.from((function* () {
      for (let i = 0; i < count; i++) {
        const part = chunks.getBinary([id, i]);
        if (!part) throw new Error(`body of ${id} is missing chunk ${i}`);
        yield Buffer.from(part);
      }
    })(), { objectMode: false });
  }

  bodyText(id: string, chunks: number): string {
    let text = '';
    for (let i = 0; i < chunks; i++) {
      const part = this.chunks.getBinary([id, i]);
      if (!part) throw new Error(`body of ${id} is missing chunk ${i}`);
      text += part.toString('latin1'); // a copy: getBinary's memory is reused by the next read
    }
    return text;
  }

  bodyPrefix(id: string, limit: number): Buffer {
    const record = this.read(id);
    if (record?.bodyFile) {
      const out = Buffer.allocUnsafe(Math.min(limit, record.bodySize));
      const fd = openSync(join(this.bodyDir, id), constants.O_RDONLY | constants.O_NOFOLLOW);
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
      const part = this.chunks.getBinary([id, i]);
      if (!part) break;
      parts.push(Buffer.from(part));
      size += part.length;
    }
    return Buffer.concat(parts).subarray(0, limit);
  }

  journal(id: string): JournalEntry[] {
    const out: JournalEntry[] = [];
    // What a spool written before the journal kept: shown first, as it was.
    if (this.legacy) {
      const text = this.mlog.get(id);
      if (text) out.push({ v: 0, type: 'legacy-log', text });
      for (const { value } of this.attempts.getRange({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })) {
        out.push({ v: 0, type: 'legacy-attempt', ...value });
      }
    }
    for (const { value } of this.journalDb.getRange({ start: [id, 0], end: [id, Number.MAX_SAFE_INTEGER] })) out.push(value);
    return out;
  }

  due(before: number, limit: number, skip?: ReadonlySet<string>): string[] {
    return this.dueAfter(undefined, before, limit, skip).map((k) => k.id);
  }

  dueAfter(after: DueKey | undefined, before: number, limit: number, skip?: ReadonlySet<string>): DueKey[] {
    // Another process (sendmail) may have committed since our read snapshot.
    this.root.resetReadTxn();
    const out: DueKey[] = [];
    const start: [number, string] = after ? [after.at, after.id] : [0, ''];
    for (const [at, id] of this.dueIdx.getKeys({ start, end: [before, '\uffff'] })) {
      if ((after && at === after.at && id === after.id) || skip?.has(id)) continue;
      out.push({ at, id });
      if (out.length >= limit) break;
    }
    return out;
  }

  nextDueAfter(t: number): number | undefined {
    this.root.resetReadTxn();
    for (const key of this.dueIdx.getKeys({ start: [t + 1, ''], limit: 1 })) return key[0];
    return undefined;
  }

  nextDue(skip?: ReadonlySet<string>): number | undefined {
    this.root.resetReadTxn();
    for (const key of this.dueIdx.getKeys({})) if (!skip?.has(key[1])) return key[0];
    return undefined;
  }

  /** Appends entries after the message's last one (inside the caller's transaction). */
  private appendJournal(id: string, entries: NewJournalEntry[]): void {
    if (entries.length === 0) return;
    let n = 0;
    for (const key of this.journalDb.getKeys({ start: [id, Number.MAX_SAFE_INTEGER], end: [id, 0], reverse: true, limit: 1 })) n = key[1];
    for (const e of entries) this.journalDb.put([id, ++n], e);
  }

  private deleteAll(record: MessageRecord): void {
    // Its body file goes once this transaction is committed (see synced()).
    if (record.bodyFile) this.doomed.add(record.id);
    this.meta.remove(record.id);
    if (record.frozen) this.frozenIdx.remove(record.id);
    this.hdrs.remove(record.id);
    for (let i = 0; i < record.chunks; i++) this.chunks.remove([record.id, i]);
    if (record.nextAttempt !== null) this.dueIdx.remove([record.nextAttempt, record.id]);
    if (this.legacy) {
      this.mlog.remove(record.id);
      for (let n = 1; n <= record.attempts; n++) this.attempts.remove([record.id, n]);
    }
    // Entries are numbered from 1 (appendJournal) and only ever removed all together:
    // without a first one there are none, and no cursor is needed to find that out.
    if (this.journalDb.doesExist([record.id, 1])) {
      for (const key of [...this.journalDb.getKeys({ start: [record.id, 0], end: [record.id, Number.MAX_SAFE_INTEGER] })]) this.journalDb.remove(key);
    }
  }

  /** An attempt's settlement, as apply([{ kind: 'settle' }]). */
  async settle(id: string, settlement: Settlement): Promise<SettleResult> {
    const [r] = await this.apply([{ kind: 'settle', id, settlement }]);
    return r?.kind === 'completed' && r.record ? { kind: 'completed', record: r.record }
      : r?.kind === 'changed' && r.record ? { kind: 'pending', record: r.record } : { kind: 'gone' };
  }

  /** A settlement inside apply()'s transaction (`record`: the message as stored, `before` its indexes' keys). */
  private settleOne(record: MessageRecord, s: Settlement, before: { nextAttempt: number | null; frozen: boolean }): ChangeResult {
    const byAddress = new Map(s.recipients.map((r) => [r.address, r]));
    record.recipients = record.recipients.map((r) => (r.state === 'pending' ? byAddress.get(r.address) ?? r : r));
    record.attempts += 1;
    if (s.lastError !== undefined) record.lastError = s.lastError;
    if (s.warningsSent !== undefined) record.warningsSent = s.warningsSent;
    for (const m of s.enqueue ?? []) {
      // The attempt's bounces and warnings, new mail in the same transaction.
      const parts = rechunk(m.body);
      this.admitOne(newRecord(m, parts.reduce((n, b) => n + b.length, 0), parts.length), m.headers, parts);
    }
    if (!record.recipients.some((r) => r.state === 'pending')) {
      this.deleteAll(record);
      return { kind: 'completed', entries: s.journal, record };
    }
    // A message frozen now, or by the operator during the attempt, is off the due index.
    if (s.freeze) record.frozen = true;
    record.nextAttempt = record.frozen ? (s.freeze ? s.wakeAt ?? null : null) : s.nextAttempt;
    this.save(record, before);
    this.appendJournal(record.id, s.journal);
    return { kind: 'changed', entries: s.journal, record };
  }

  /** `range`: IDs from `start` (included) to `end` (excluded): IDs sort by arrival second, so an age is a seek. */
  *list(range: { start?: string; end?: string } = {}): Iterable<MessageRecord> {
    this.root.resetReadTxn();
    for (const { value } of this.meta.getRange(range)) yield decodeRecord(value);
  }

  /** From the meta database's entry count (mdb_stat): no key is read, whatever the queue's size. */
  count(): number {
    this.root.resetReadTxn();
    return entryCount(this.meta);
  }

  /**
   * Applies `changes` in one transaction and one sync, each with its journal entries,
   * in order (two changes to one message see each other). One result per change. A
   * message being delivered meanwhile is settled on top (settle() keeps a freeze, only
   * replaces recipients still pending, finds a removed message gone): callers that
   * must not touch it (operator actions) ask the process that delivers (src/admin/).
   */
  apply(changes: readonly Change[]): Promise<ChangeResult[]> {
    return this.synced(this.root.transaction(() => changes.map((c) => this.applyOne(c))));
  }

  /** One change, inside apply()'s transaction. */
  private applyOne(c: Change): ChangeResult {
    const record = this.read(c.id);
    // Removed (-Mrm) while it was being delivered, say: nothing left to change.
    if (!record) return { kind: 'gone' };
    const before = { nextAttempt: record.nextAttempt, frozen: record.frozen };
    let entries: NewJournalEntry[] = [];
    switch (c.kind) {
      case 'settle':
        return this.settleOne(record, c.settlement, before);
      case 'remove':
        this.deleteAll(record);
        return { kind: 'completed', entries: [adminEntry(c)], record };
      case 'freeze':
      case 'thaw':
        if (record.frozen === (c.kind === 'freeze')) return { kind: 'unchanged' };
        record.frozen = c.kind === 'freeze';
        record.nextAttempt = c.kind === 'freeze' ? null : c.dueAt ?? c.by.at;
        entries = [adminEntry(c)];
        break;
      case 'make-due':
        if (record.frozen && !c.thaw) return { kind: 'unchanged' };
        record.frozen = false;
        record.nextAttempt = c.at;
        break;
      case 'edit': {
        const done = applyEdit(record, c.edit, c.by);
        if (!Array.isArray(done)) return { kind: 'not-recipient', address: done.missing };
        if (done.length === 0) return { kind: 'unchanged' };
        if (!record.recipients.some((r) => r.state === 'pending')) {
          this.deleteAll(record);
          return { kind: 'completed', entries: done, record };
        }
        entries = done;
        break;
      }
    }
    this.save(record, before);
    this.appendJournal(record.id, entries);
    return { kind: 'changed', entries, record };
  }

  /**
   * A stored record, read through the decoder (the only reader of `meta` records but
   * the metrics' oldest arrival): a record of a newer version is refused with a
   * RecordVersionError naming it, so no write path ever rewrites it as this version's.
   */
  private read(id: string): MessageRecord | undefined {
    const raw = this.meta.get(id);
    return raw === undefined ? undefined : decodeRecord(raw);
  }

  /**
   * The one writer of `meta` for a stored message: the record as it is now, with the
   * `due` and `frozen` indexes moved from what they were (`before`) to what it says.
   */
  private save(record: MessageRecord, before: { nextAttempt: number | null; frozen: boolean }): void {
    if (before.nextAttempt !== record.nextAttempt) {
      if (before.nextAttempt !== null) this.dueIdx.remove([before.nextAttempt, record.id]);
      if (record.nextAttempt !== null) this.dueIdx.put([record.nextAttempt, record.id], 1);
    }
    if (before.frozen !== record.frozen) this.indexFrozenState(record);
    this.meta.put(record.id, record);
  }

  // The doors of before apply(), kept as thin wrappers over it (tests use them).

  remove(id: string): Promise<boolean> {
    return this.apply([{ kind: 'remove', id, by: { at: Date.now(), user: '' } }]).then(([r]) => r?.kind === 'completed');
  }

  setFrozen(id: string, frozen: boolean, entry: NewJournalEntry, dueAt: number): Promise<'changed' | 'unchanged' | 'gone'> {
    const user = entry.type === 'admin' ? entry.user : 'unknown';
    return this.apply([{ kind: frozen ? 'freeze' : 'thaw', id, by: { at: entry.at, user }, dueAt }])
      .then(([r]) => (r?.kind === 'changed' ? 'changed' : r?.kind === 'unchanged' ? 'unchanged' : 'gone'));
  }

  async makeDue(ids: string[], at: number, thaw: boolean): Promise<void> {
    await this.apply(ids.map((id) => ({ kind: 'make-due', id, at, thaw })));
  }

  async close(): Promise<void> {
    await this.root.flushed;
    await this.root.close();
  }
}
