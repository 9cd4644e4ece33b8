// spool/spool.ts: the storage contract between receiving, scheduling and the queue
// commands. Durable storage only: it knows nothing of routing or SMTP. Two write doors
// for messages, admit() (new mail) and apply() (changes to queued mail); each call is
// one transaction, and its promise resolves only once the commit is synced to disk.
import type { Readable } from 'node:stream';
import type { Change, ChangeResult } from '../core/change.js';
import type { JournalEntry, NewJournalEntry } from '../core/journal.js';
import type { MessageRecord, NewMessage } from '../core/types.js';

/** The spool could not be written (disk full, I/O error): nothing was changed; try again later. */
export class SpoolWriteError extends Error {}
/** The spool cannot be opened or used now (a lock, a permission, a full map): try again later. */
export class SpoolUnavailable extends Error {}
/** The maildrop file of a message being committed was committed already (a second pickup of it). */
export class PickedUpAlready extends Error {}

/**
 * lmdb-js rejects every write of a failed commit with this error, and also rejects an
 * internal promise nobody can handle: the daemon's unhandledRejection handler uses
 * this test to tell that echo from a bug.
 */
export function isLmdbCommitFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.message.startsWith('Commit failed') || 'commitError' in err) return true;
  // The commit's own error (ENOSPC, EIO), rejected on a promise lmdb-js keeps for itself.
  return typeof (err as { code?: unknown }).code === 'number' && /[\\/]lmdb[\\/]write\.js/.test(err.stack ?? '');
}

/** A key of the due index. */
export interface DueKey {
  at: number;
  id: string;
}

/**
 * What commit() of a message being received needs besides its body; `hold`: admit it
 * frozen, with this journal entry saying why (a `[limits]` rate), in the same transaction.
 */
export type IncomingMeta = Omit<NewMessage, 'id' | 'body'> & { hold?: NewJournalEntry };

/**
 * A message being received. A body within 1 MB is held by the writer and committed as
 * chunks in one transaction; a bigger one is written to a file of its own as it arrives
 * (bodies/ID in the spool folder), synced at commit. Nothing of it is visible to anyone
 * until commit(); abort(), or the next daemon start after a crash, removes what was written.
 */
export interface IncomingMessage {
  readonly id: string;
  /** Body bytes so far. */
  readonly bodySize: number;
  /** Adds body bytes (LF line ends; copied, the buffer stays the caller's). Resolves when the spool can take more: wait before writing again. */
  write(body: Buffer): Promise<void>;
  /** Writes the envelope, the headers and the due key in one transaction; resolves once synced. */
  commit(meta: IncomingMeta): Promise<MessageRecord>;
  /** Drops what was written (client gone, size exceeded). Never rejects. */
  abort(): Promise<void>;
}

export interface Spool {
  /**
   * New mail, whole: one of the two write doors (with incoming(), its streamed form).
   * A message whose ID is taken is an error; false when `pickupFile` was taken already.
   */
  admit(msg: NewMessage): Promise<MessageRecord>;
  admit(msg: NewMessage, o: { pickupFile?: string }): Promise<MessageRecord | false>;
  /** Starts a message whose body arrives in pieces; see IncomingMessage. */
  incoming(id: string): IncomingMessage;
  load(id: string): MessageRecord | undefined;
  /** The header block as a byte string (one char per byte: encode with latin1). */
  headers(id: string): string | undefined;
  /**
   * The body, streamed 64 KB at a time (a body file with plain reads, which map nothing);
   * `chunks` (from the record the caller holds) makes a body removed meanwhile an error,
   * not a short read, as is a missing body file.
   */
  body(id: string, chunks?: number): Readable;
  /**
   * A body kept as chunks (within 1 MB; the record says how many) read at once, each
   * chunk a buffer of its own: a small message goes out in one write. A missing chunk
   * is an error.
   */
  bodyChunks(id: string, chunks: number): Buffer[];
  /** The first `limit` bytes of the body, read at once (for bounces). */
  bodyPrefix(id: string, limit: number): Buffer;
  /**
   * The message's journal, oldest first: what an earlier version kept (its -Mvl text,
   * its attempt records) as legacy entries, then the journal proper. Empty for an
   * unknown message.
   */
  journal(id: string): JournalEntry[];
  /** IDs due at or before `before`, oldest first, at most `limit`, skipping `skip`. */
  due(before: number, limit: number, skip?: ReadonlySet<string>): string[];
  /** The earliest due time, skipping `skip` (the messages already in the active window). */
  nextDue(skip?: ReadonlySet<string>): number | undefined;
  /** As due(), but starting after the key `after` (the scheduler's cursor), with the keys. */
  dueAfter(after: DueKey | undefined, before: number, limit: number, skip?: ReadonlySet<string>): DueKey[];
  /** The earliest due time later than `t`: one key read. */
  nextDueAfter(t: number): number | undefined;
  /** Every message, in ID (= arrival) order; streams, never loads the queue whole. */
  list(): Iterable<MessageRecord>;
  count(): number;
  /**
   * The other write door: changes to queued messages (core/change.ts: an attempt's
   * settlement, freeze, thaw, remove, made due, an envelope edit), in one transaction
   * and one sync, one result per change.
   */
  apply(changes: readonly Change[]): Promise<ChangeResult[]>;
  close(): Promise<void>;
}
