// spool/store.ts: the spool's LMDB environment and the one writer of its records and
// indexes. Sub-databases: `meta` (envelope + per-recipient state, keyed by ID, so ID
// order is arrival order), `headers`, `body` (64 KB chunks keyed [ID, n]), `due` (the
// index [nextAttempt, ID] the scheduler reads), `frozen` (ID → 1 for each frozen
// message: the metrics' frozen count is an entry count, never a scan), `journal` (the
// message's versioned history, keyed [ID, n]; see core/journal.ts), the read-only
// `msglog` and `history` of spools written before the journal (read alongside it: no
// migration), `pickedup` (maildrop file name → ID, written with the commit of a
// picked-up file) and `incoming` (the writer of a message being received and not yet
// committed: what a crash leaves behind is removed at the next daemon start).
// Every record is read through the decoder (record.ts); insert(), save() and
// deleteAll() keep the indexes in step, inside the caller's transaction; synced() is
// the sync every write waits for. Writes of one event-loop turn share a transaction
// and one sync (group commit).
import { chmodSync, lchownSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { JournalEntry, NewJournalEntry } from '../core/journal.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import { listingOf } from './listing.js';
import { decodeRecord, RecordVersionError } from './record.js';
import type { SpaceReserve } from './reserve.js';
import { isLmdbCommitFailure, PickedUpAlready, SpoolUnavailable, SpoolWriteError } from './spool.js';

export { SpoolUnavailable };
import type { Writer } from './writer.js';

/** Root-database key saying the `frozen` index is built (see indexFrozen()). */
const FROZEN_INDEX_MARK = 'postern:frozen-index';
/** Root-database key: the LMDB transaction after which the indexes agreed with `meta` (stampIndexes()). */
const INDEXES_STAMP = 'postern:indexes-agree-at';
/**
 * The spool's map: 16 GB of address space, set at open so it is never mapped again
 * (SpoolStore.open). A spool that outgrows it still works: lmdb-js maps it again, bigger.
 * Not under an address-space limit (ulimit -v, LimitAS=): mapping that much there kills
 * the process (SIGSEGV in lmdb-js, no error); lmdb-js's growing map is used instead.
 */
const MAP_SIZE = 16 * 1024 ** 3;

function mapSizeOption(): { mapSize?: number } {
  try {
    const limit = /^Max address space\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (limit !== undefined && limit !== 'unlimited') return {};
  } catch { /* no /proc: as set */ }
  return { mapSize: MAP_SIZE };
}

/** -odq: not before the next periodic queue run (see README); `postern -q` makes it due at once. */
export const QUEUE_ONLY_DELAY = 5 * 60_000;

/** An attempt record as spools written before the journal kept it. */
export type LegacyAttempt = Omit<Extract<JournalEntry, { type: 'legacy-attempt' }>, 'v' | 'type'>;

/** Entries in a database, from mdb_stat: no key is read. */
export const entryCount = (db: { getStats(): unknown }): number => (db.getStats() as { entryCount: number }).entryCount;

/** The index keys of a stored message, as they were before a change. */
export interface IndexKeys {
  nextAttempt: number | null;
  frozen: boolean;
}

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

export class SpoolStore {
  readonly meta: Database<MessageRecord, string>;
  readonly hdrs: Database<string, string>;
  readonly chunks: Database<Buffer, [string, number]>;
  readonly dueIdx: Database<number, [number, string]>;
  readonly frozenIdx: Database<number, string>;
  readonly journalDb: Database<NewJournalEntry, [string, number]>;
  readonly mlog: Database<string, string>;
  /** Attempt records of spools written before the journal (read, then removed with the message). */
  readonly attempts: Database<LegacyAttempt, [string, number]>;
  readonly pickups: Database<string, string>;
  readonly incomingDb: Database<Writer, string>;
  /** ID → listing entry (listing.ts), written with each record; none for messages stored before it. */
  readonly listing: Database<string, string>;
  /**
   * Whether the spool held entries of the pre-journal format when opened (this version
   * never writes them): if not, a removal need not look for any.
   */
  readonly legacy: boolean;
  /** Messages with a body file removed by a transaction: the file goes once that is committed. */
  private readonly doomed = new Set<string>();

  /** Told of every failed write (the daemon logs them, at most once a minute). */
  onWriteError: ((err: SpoolWriteError) => void) | undefined;
  /** Room kept back so that delivery results can be written on a full disk (the daemon's). */
  reserve: SpaceReserve | undefined;
  /** Told how long each write took, from the call to the sync (the daemon's metrics). */
  onSynced: ((seconds: number) => void) | undefined;

  private constructor(readonly root: RootDatabase, /** `<spool>/bodies`: the files of bodies over BIG, named by message ID. */ readonly bodyDir: string) {
    this.meta = root.openDB({ name: 'meta', encoding: 'msgpack' });
    this.hdrs = root.openDB({ name: 'headers', encoding: 'string' });
    this.chunks = root.openDB({ name: 'body', encoding: 'binary' });
    this.dueIdx = root.openDB({ name: 'due', encoding: 'msgpack' });
    this.mlog = root.openDB({ name: 'msglog', encoding: 'string' });
    this.attempts = root.openDB({ name: 'history', encoding: 'msgpack' });
    this.pickups = root.openDB({ name: 'pickedup', encoding: 'string' });
    this.incomingDb = root.openDB({ name: 'incoming', encoding: 'msgpack' });
    this.journalDb = root.openDB({ name: 'journal', encoding: 'msgpack' });
    this.frozenIdx = root.openDB({ name: 'frozen', encoding: 'msgpack' });
    this.listing = root.openDB({ name: 'listing', encoding: 'string' });
    this.legacy = entryCount(this.mlog) + entryCount(this.attempts) > 0;
  }

  static open(directory: string): SpoolStore {
    try {
      mkdirSync(directory, { recursive: true, mode: 0o700 });
      // noSync stays off: a commit is not acknowledged until it is on disk (synced()).
      // overlappingSync off (lmdb-js's default is on, off Windows): each commit is synced
      // before any process sees it, so what is read of the spool is on disk, and what is
      // done on the strength of it (a body file unlinked once its removal is seen, a
      // drop file removed) never runs ahead of the sync; and after a power cut LMDB opens
      // the last commit on disk, without lmdb-js's boot-ID rule (a commit seen but not
      // flushed is kept unless the boot ID changed). See README, Power-loss harness.
      // mapSize: address space only (the file grows as pages are written, not to this).
      // lmdb-js otherwise starts with a 128 KB map and, each time the file outgrows it,
      // maps it again twice as big while keeping every earlier map until close, so each
      // page read once stays resident in several maps (measured: 8 maps of one 49 MB
      // file, 103 MB of RSS, after 1,000 relayed messages of 100 KB).
      const root = open({ path: join(directory, 'spool.mdb'), maxDbs: 12, compression: false, noSync: false, overlappingSync: false, ...mapSizeOption() });
      // The spool is its owner's alone (lmdb creates its files 0644).
      for (const f of ['spool.mdb', 'spool.mdb-lock']) {
        try {
          chmodSync(join(directory, f), 0o600);
        } catch { /* not ours (root reading a daemon user's spool): its owner set the mode */ }
      }
      const store = new SpoolStore(root, bodyFolder(directory));
      store.indexFrozen();
      return store;
    } catch (err) {
      throw new SpoolUnavailable(`cannot open the spool in ${directory}: ${(err as Error).message}`);
    }
  }

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

  /**
   * The ID of the last committed LMDB transaction: every write moves it on. Read from
   * the environment's meta pages (mdb_env_info), not through a transaction: inside a
   * write transaction it is the last committed one.
   */
  private lastTxn(): number {
    return (this.root.getStats() as { lastTxnId: number }).lastTxnId;
  }

  /**
   * The daemon's clean stop, its last write: says the indexes agree with `meta` as of
   * this commit (the write lock is held: it is the next transaction ID). A later commit
   * by anyone (an older postern among them) moves LMDB's transaction ID past it, and the
   * next daemon start mends (mendIndexesIfNeeded()).
   */
  stampIndexes(): void {
    // A block: a callback that returns put()'s promise makes lmdb-js commit only once that settles.
    this.root.transactionSync(() => {
      this.root.put(INDEXES_STAMP, this.lastTxn() + 1);
    });
  }

  /**
   * mendIndexes() unless nothing was committed since the daemon's last clean stop
   * (stampIndexes()): so a start after a clean stop reads no record, whatever the queue's
   * size, and one after a crash, or after any other process wrote, mends. Returns how
   * many entries were mended, or undefined when it was not needed.
   */
  mendIndexesIfNeeded(): number | undefined {
    this.root.resetReadTxn();
    if (this.root.get(INDEXES_STAMP) === this.lastTxn()) return undefined;
    return this.mendIndexes();
  }

  /**
   * The `listing` and `frozen` indexes made to agree with `meta`: a postern before them
   * writes records only, so after a downgrade and upgrade an entry may be stale, missing
   * or left without its message. One pass over `meta` in one transaction; only what
   * differs is written. A record of a newer version is left to its own postern. Returns
   * how many index entries were mended.
   */
  mendIndexes(): number {
    return this.root.transactionSync(() => {
      let mended = 0;
      for (const { key, value } of this.meta.getRange({})) {
        let record: MessageRecord;
        try {
          record = decodeRecord(value);
        } catch {
          continue;
        }
        const entry = listingOf(record);
        if (this.listing.get(key) !== entry) {
          this.listing.put(key, entry);
          mended++;
        }
        if (record.frozen !== (this.frozenIdx.get(key) !== undefined)) {
          if (record.frozen) this.frozenIdx.put(key, 1);
          else this.frozenIdx.remove(key);
          mended++;
        }
      }
      for (const db of [this.listing, this.frozenIdx] as Database<unknown, string>[]) {
        for (const key of db.getKeys({})) {
          if (this.meta.doesExist(key)) continue;
          db.remove(key);
          mended++;
        }
      }
      return mended;
    });
  }

  /**
   * A stored record, read through the decoder (the only reader of `meta` records): a
   * record of a newer version is refused with a RecordVersionError naming it, so no
   * write path ever rewrites it as this version's.
   */
  read(id: string): MessageRecord | undefined {
    const raw = this.meta.get(id);
    return raw === undefined ? undefined : decodeRecord(raw);
  }

  /** The arrival of the oldest message (the first key of `meta`), or undefined; a newer record's is not known. */
  oldestArrival(): number | undefined {
    for (const { value } of this.meta.getRange({ limit: 1 })) {
      try {
        return decodeRecord(value).arrival;
      } catch (err) {
        if (err instanceof RecordVersionError) return undefined;
        throw err;
      }
    }
    return undefined;
  }

  /** New mail waits while the reserve is spent: what room there is goes to delivery results. */
  roomForNewMail(): void {
    if (this.reserve && !this.reserve.canAccept()) throw new SpoolWriteError('cannot write the spool (disk full)');
  }

  /** Resolves when everything written so far is synced to disk. */
  async synced<T>(commit: Promise<T>): Promise<T> {
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
  fileFailure(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT' && code !== 'EIO') return err;
    return this.failed(new SpoolWriteError(`cannot write the spool (${code === 'EIO' ? 'I/O error' : 'disk full'})`));
  }

  /**
   * A commit LMDB could not write (a full disk, an I/O error) becomes a SpoolWriteError:
   * the caller answers "try again later" and the process goes on; the transaction left
   * nothing behind. Errors thrown on purpose inside a transaction stay as they are.
   */
  writeFailure(err: unknown): unknown {
    if (!isLmdbCommitFailure(err)) return err;
    (err as { commitError?: Promise<unknown> }).commitError?.catch(() => undefined);
    return this.failed(new SpoolWriteError('cannot write the spool (disk full or I/O error)'));
  }

  private failed(failure: SpoolWriteError): SpoolWriteError {
    this.reserve?.release();
    this.onWriteError?.(failure);
    return failure;
  }

  /**
   * A new message into the spool, inside the caller's transaction: never over a stored
   * one (IDs come from one generator per process, so that is a bug, and throwing aborts
   * the whole transaction), with its pickup mark, its writer's `incoming` entry gone;
   * `hold`: frozen (off the due index until thawed), with that journal entry.
   * False: a whole message of a maildrop file taken already (a streamed one: an error).
   */
  insert(record: MessageRecord, headers: string, parts: Buffer[],
    o: { pickupFile?: string | undefined; streamed?: 'chunks' | 'file'; hold?: NewJournalEntry | undefined } = {}): MessageRecord | false {
    const taken = o.pickupFile !== undefined && this.pickups.doesExist(o.pickupFile);
    if (taken && !o.streamed) return false;
    if (this.meta.doesExist(record.id)) throw new SpoolUnavailable(`message ID ${record.id} is already in the spool`);
    if (taken) throw new PickedUpAlready(`maildrop file ${o.pickupFile} was picked up already`);
    this.hdrs.put(record.id, headers);
    parts.forEach((part, i) => this.chunks.put([record.id, i], part));
    if (o.hold) Object.assign(record, { frozen: true, nextAttempt: null });
    this.save(record, { nextAttempt: null, frozen: false });
    if (o.hold) this.appendJournal(record.id, [o.hold]);
    if (o.pickupFile !== undefined) this.pickups.put(o.pickupFile, record.id);
    if (o.streamed === 'file') this.incomingDb.remove(record.id); // its writer's entry: the body file is the message's now
    return record;
  }

  /**
   * The one writer of `meta`: the record as it is now, with its listing entry, and the
   * `due` and `frozen` indexes moved from what they were (`before`) to what it says.
   */
  save(record: MessageRecord, before: IndexKeys): void {
    if (before.nextAttempt !== record.nextAttempt) {
      if (before.nextAttempt !== null) this.dueIdx.remove([before.nextAttempt, record.id]);
      if (record.nextAttempt !== null) this.dueIdx.put([record.nextAttempt, record.id], 1);
    }
    if (before.frozen !== record.frozen) {
      if (record.frozen) this.frozenIdx.put(record.id, 1);
      else this.frozenIdx.remove(record.id);
    }
    this.meta.put(record.id, record);
    // Most saves (a deferral, make-due) change nothing a listing shows: no page written then.
    const entry = listingOf(record);
    if (this.listing.get(record.id) !== entry) this.listing.put(record.id, entry);
  }

  /** Appends entries after the message's last one (inside the caller's transaction). */
  appendJournal(id: string, entries: NewJournalEntry[]): void {
    if (entries.length === 0) return;
    let n = 0;
    for (const key of this.journalDb.getKeys({ start: [id, Number.MAX_SAFE_INTEGER], end: [id, 0], reverse: true, limit: 1 })) n = key[1];
    for (const e of entries) this.journalDb.put([id, ++n], e);
  }

  /** A message and everything of it, inside the caller's transaction; its body file goes once that is committed (see synced()). */
  deleteAll(record: MessageRecord): void {
    if (record.bodyFile) this.doomed.add(record.id);
    this.meta.remove(record.id);
    this.listing.remove(record.id);
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
}

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
