// spool/lmdb-spool.ts: the Spool in one LMDB environment shared by the daemon and the
// command-line processes; the one public class of spool/, a facade over its parts:
// store.ts (the environment, its databases and indexes, the record decoder, the sync),
// changes.ts (what each Change does), bodies.ts (chunks and body files), incoming.ts
// (a message being received, the sweep of a crash's leftovers) and queries.ts (the due
// index, listing, stats, journal). It has two write doors for messages: admit() (with
// incoming(), its streamed form) for all new mail, apply() for every change to a
// queued one; both end in the store's insert()/save().
import type { Readable } from 'node:stream';
import type { Change, ChangeResult } from '../core/change.js';
import type { JournalEntry } from '../core/journal.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import { bodyChunks, bodyPrefix, bodyStream, strayBodies, strayChunks } from './bodies.js';
import { admitOne, applyOne } from './changes.js';
import { openIncoming, sweepIncoming } from './incoming.js';
import * as q from './queries.js';
import type { SpaceReserve } from './reserve.js';
import type { Listed } from './listing.js';
import type { DueKey, IncomingMessage, Spool, SpoolWriteError } from './spool.js';
import { SpoolStore } from './store.js';

export { isLmdbCommitFailure } from './spool.js';
export { BIG } from './bodies.js';
export { QUEUE_ONLY_DELAY, SpoolUnavailable } from './store.js';

export class LmdbSpool implements Spool {
  private constructor(private readonly store: SpoolStore) {}

  static open(directory: string): LmdbSpool {
    return new LmdbSpool(SpoolStore.open(directory));
  }

  /** The listing and frozen indexes mended to agree with the records (store.ts). */
  mendIndexes(): number {
    return this.store.mendIndexes();
  }

  /** The daemon's start: mendIndexes() unless nothing was written since its last clean stop (store.ts). */
  mendIndexesIfNeeded(): number | undefined {
    return this.store.mendIndexesIfNeeded();
  }

  /** The daemon's clean stop, its last write: the indexes agree with the records as of now. */
  stampIndexes(): void {
    this.store.stampIndexes();
  }

  /** Told of every failed write (the daemon logs them, at most once a minute). */
  set onWriteError(f: ((err: SpoolWriteError) => void) | undefined) {
    this.store.onWriteError = f;
  }

  /** Room kept back so that delivery results can be written on a full disk (the daemon's). */
  get reserve(): SpaceReserve | undefined {
    return this.store.reserve;
  }

  set reserve(r: SpaceReserve | undefined) {
    this.store.reserve = r;
  }

  /** Told how long each write took, from the call to the sync (the daemon's metrics). */
  set onSynced(f: ((seconds: number) => void) | undefined) {
    this.store.onSynced = f;
  }

  /**
   * New mail, whole (sendmail's maildrop files, tests, the Exim importer): with
   * incoming() (SMTP, -bs) the door of all new mail. `pickupFile`: the maildrop file it
   * came from, remembered in the same transaction, so a pickup that crashes before
   * removing the file never commits it twice (false: that file was taken already).
   * Without one, a message whose ID is taken is an error (SpoolUnavailable).
   */
  admit(msg: NewMessage): Promise<MessageRecord>;
  admit(msg: NewMessage, o: { pickupFile?: string }): Promise<MessageRecord | false>;
  async admit(msg: NewMessage, o: { pickupFile?: string } = {}): Promise<MessageRecord | false> {
    this.store.roomForNewMail();
    return this.store.synced(this.store.root.transaction(() => admitOne(this.store, msg, o.pickupFile)));
  }

  /**
   * A message whose body arrives in pieces (see IncomingMessage); `pickup`: the
   * maildrop file it comes from, committed with it; such mail is on disk already, so
   * it does not wait for the reserve.
   */
  incoming(id: string, pickup?: string): IncomingMessage {
    return openIncoming(this.store, id, pickup);
  }

  /**
   * Applies `changes` in one transaction and one sync, each with its journal entries,
   * in order (two changes to one message see each other). One result per change. A
   * message being delivered meanwhile is settled on top (a settlement keeps a freeze,
   * only replaces recipients still pending, finds a removed message gone): callers
   * that must not touch it (operator actions) ask the process that delivers (src/admin/).
   */
  apply(changes: readonly Change[]): Promise<ChangeResult[]> {
    return this.store.synced(this.store.root.transaction(() => changes.map((c) => applyOne(this.store, c))));
  }

  load(id: string): MessageRecord | undefined {
    const record = this.store.read(id);
    if (record) return record;
    // Perhaps committed by another process (sendmail, -bs) after our read snapshot.
    this.store.root.resetReadTxn();
    return this.store.read(id);
  }

  headers(id: string): string | undefined {
    return this.store.hdrs.get(id);
  }

  body(id: string, expected?: number): Readable {
    return bodyStream(this.store, id, expected);
  }

  bodyChunks(id: string, chunks: number): Buffer[] {
    return bodyChunks(this.store, id, chunks);
  }

  bodyPrefix(id: string, limit: number): Buffer {
    return bodyPrefix(this.store, id, limit);
  }

  journal(id: string): JournalEntry[] {
    return q.journal(this.store, id);
  }

  due(before: number, limit: number, skip?: ReadonlySet<string>): string[] {
    return q.dueAfter(this.store, undefined, before, limit, skip).map((k) => k.id);
  }

  dueAfter(after: DueKey | undefined, before: number, limit: number, skip?: ReadonlySet<string>): DueKey[] {
    return q.dueAfter(this.store, after, before, limit, skip);
  }

  nextDueAfter(t: number): number | undefined {
    return q.nextDueAfter(this.store, t);
  }

  nextDue(skip?: ReadonlySet<string>): number | undefined {
    return q.nextDue(this.store, skip);
  }

  /** `range`: IDs from `start` (included) to `end` (excluded): IDs sort by arrival second, so an age is a seek. */
  list(range: { start?: string; end?: string } = {}): Iterable<MessageRecord> {
    return q.list(this.store, range);
  }

  /** list() as listing entries (spool/listing.ts): what -bp and postern-qgrep show, cheaper to read. */
  listed(range: { start?: string; end?: string } = {}): Iterable<Listed> {
    return q.listed(this.store, range);
  }

  count(): number {
    return q.count(this.store);
  }

  /** See queries.ts stats(): the metrics' gauges, from entry counts. */
  stats(): { messages: number; frozen: number; due: number; oldestArrival: number | undefined } {
    return q.stats(this.store);
  }

  /** The ID a maildrop file became, if it was picked up already. */
  pickedUp(file: string): string | undefined {
    this.store.root.resetReadTxn();
    return this.store.pickups.get(file);
  }

  /** Every maildrop file name still remembered (their files should be gone). */
  pickupMarks(): string[] {
    return [...this.store.pickups.getKeys({})];
  }

  /** Housekeeping, no message changes: forgets maildrop files that are removed; no sync needed (a stale mark only costs a lookup). */
  forgetPickups(files: string[]): Promise<void> {
    if (files.length === 0) return Promise.resolve();
    return this.store.root.transaction(() => {
      for (const f of files) this.store.pickups.remove(f);
    }).then(() => undefined);
  }

  /** Housekeeping, no message changes: see incoming.ts sweepIncoming(). Run at daemon start and every hour. */
  sweepIncoming(): Promise<number> {
    return sweepIncoming(this.store);
  }

  /** Files in bodies/ of no stored message and no writer still receiving it. */
  strayBodies(): string[] {
    return strayBodies(this.store);
  }

  /** Body chunks that belong to no stored message (a full scan: for tests and checks). */
  strayChunks(): number {
    return strayChunks(this.store);
  }

  /** Messages being received (written in part, not committed), by any process. */
  incomingCount(): number {
    this.store.root.resetReadTxn();
    return this.store.incomingDb.getCount();
  }

  async close(): Promise<void> {
    await this.store.root.flushed;
    await this.store.root.close();
  }
}
