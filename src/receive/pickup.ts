// receive/pickup.ts: Postfix's pickup. Moves complete maildrop files (written by root,
// the daemon's user, or any user through the setgid helper) into the spool: the file's
// owner, as the kernel reports it, is the submitter (U=, the default sender,
// Received:); the file only says what the user may choose. Each message is streamed
// into the spool as an SMTP body is (never held whole; drop-file.ts), cleaned up with
// an ID of this process, committed with the file's name (so a crash never commits a
// file twice), logged, and then the file is removed. This file owns the folder: the
// watch and scans, turns, unfinished and stuck files, removals and their log lines. Run by the process that holds the delivery
// lock: the daemon (at start, on changes to the folder, every 2 s) or a queue command.
// Anything that is not a well-formed drop file is removed, one log line per user.
import { constants, type Stats } from 'node:fs';
import { lstat, open, opendir, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Timer } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import { PickedUpAlready, type IncomingMessage } from '../spool/spool.js';
import { userName } from '../core/users.js';
import { DROP_CACHE } from '../config/load.js';
import { takeDropFile, type DropFileOptions, type Taken } from './drop-file.js';
import { ENVELOPE_ALLOWANCE, OWN_SOCKET, PROOF_PREFIX, syncFolder } from './maildrop.js';
import { watch, type FSWatcher } from 'node:fs';

/** What the pickup needs of the spool (LmdbSpool has it). */
interface PickupSpool {
  /** A message streamed in, committed together with the name of its maildrop file. */
  incoming(id: string, pickup: string): IncomingMessage;
  pickedUp(file: string): string | undefined;
  pickupMarks(): string[];
  forgetPickups(files: string[]): Promise<void>;
}

export interface PickupOptions extends DropFileOptions {
  dir: string;
  spool: PickupSpool;
  events: EventBus;
  /** A message is in the spool (not called for sendmail -odq mail). */
  kick: (id: string) => void;
  /** An unfinished file that has not grown for this long is junk (default STALL). */
  stall?: number;
}

/**
 * A turn is what runs between two yields to the event loop: at most this many names
 * looked at (every name counts, skipped or not), messages, and bytes held by messages
 * waiting for their commit (a body over 1 MB is in its spool file already).
 */
const TURN_NAMES = 256;
const TURN_FILES = 100;
const TURN_HELD = 16 * 1024 * 1024;
/** A look at the folder this often whatever the watch says: a watch can go blind (the folder made again, a file system without inotify events). */
const SCAN_EVERY = 2_000;
/**
 * An unfinished file (mode 0600) whose size has not grown for this long is junk: its
 * writer is gone. Growth is the only thing that keeps it: neither its times nor its
 * mode, which its owner could set, and it cannot grow past the size limit.
 */
export const STALL = 10 * 60_000;
/** An unfinished file still empty this long after it was first seen is junk too (a writer writes its envelope line at once). */
export const EMPTY_STALL = 60_000;
/** A name known to be unfinished is looked at again this often, or when the watch names it. */
export const RECHECK = 5_000;
/** The spool refused (a full disk): the files wait this long before the next try, and it is said once a minute at most. */
const RETRY = 1_900;
const NOTICE_EVERY = 60_000;
/** A user's removals are logged once none has followed for this long (a flood is removed over several passes). */
const QUIET = 10_000;
/** Removed files named one by one in the log line of their user, up to this many. */
const SOME = 10;

type Outcome =
  | { kind: 'skip' }
  | { kind: 'taken' }
  | { kind: 'bad'; reason: string; uid?: number; dir?: boolean }
  | Taken;

interface Turn {
  names: number;
  held: number;
  work: { name: string; out: Outcome & { kind: 'ok' } }[];
  taken: string[];
}

/** An unfinished file or a proof, as last seen: `since` is when it last grew (or was first seen). */
interface Watched { ino: number; size: number; since: number; look: number }

/** The files removed from one user since the last log line about them. */
interface Removed { count: number; first: string; reasons: Map<string, number>; some: string[]; last: number }

export class Pickup {
  private running: Promise<void> | undefined;
  private again = false;
  private watcher: FSWatcher | undefined;
  private timer: Timer | undefined;
  private stopped = false;
  /** Entries we could not remove: named in the log once, not every round. */
  private readonly stuck = new Set<string>();
  private readonly watched = new Map<string, Watched>();
  /** Names the folder's watch reported since they were last looked at (`all`: any may have changed). */
  private readonly dirty = new Set<string>();
  private dirtyAll = true;
  private readonly removed = new Map<number | undefined, Removed>();
  /** When each user's removals were last logged: at most once a minute each. */
  private readonly loggedAt = new Map<number | undefined, number>();
  /** When the pass under way started: the time of every sighting in it. */
  private passStart = 0;
  private retryAt = -Infinity;
  private refusedNotice = -Infinity;
  private readonly stall: number;

  constructor(private readonly o: PickupOptions) {
    this.stall = o.stall ?? STALL;
  }

  /**
   * Starts watching the folder, with a scan every 2 s besides (one readdir of a folder
   * that is nearly always empty), should the watch miss an event or go blind: nothing
   * else tells the daemon of new files (sendmail does not call; users could not).
   */
  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      void this.run();
      this.timer = this.o.clock.at(this.o.clock.now() + SCAN_EVERY, tick);
    };
    try {
      this.watcher = watch(this.o.dir, { persistent: false }, (_event, name) => {
        if (typeof name === 'string' && this.dirty.size < 10_000) this.dirty.add(name);
        else this.dirtyAll = true;
        void this.run();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
        this.timer?.cancel();
        tick();
      });
    } catch { /* no folder or no inotify: the scans find the files */ }
    void this.forgetRemoved();
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.timer?.cancel();
    await this.running;
    this.logRemoved(true);
  }

  /** Picks up until nothing is left to take; calls made meanwhile are folded into it. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const started = this.o.clock.now();
        await this.pass();
        // Another pass at once for what came meanwhile, but never more than half the
        // time: a user who keeps the folder busy does not keep the daemon busy.
        const took = this.o.clock.now() - started;
        if (this.again && !this.stopped) await (took < 20 ? new Promise((r) => setImmediate(r)) : this.sleep(Math.min(took, 1000)));
      } while (this.again && !this.stopped);
      this.logRemoved();
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.o.clock.at(this.o.clock.now() + ms, () => r()));
  }

  /** Marks whose files are gone (a crash between the unlink and the forget). */
  private async forgetRemoved(): Promise<void> {
    const gone: string[] = [];
    for (const name of this.o.spool.pickupMarks()) if (!(await this.lstat(join(this.o.dir, name)))) gone.push(name);
    await this.o.spool.forgetPickups(gone).catch(() => undefined);
  }

  /**
   * One walk through the folder, read as it goes (never the whole listing at once),
   * in turns with the event loop served between them.
   */
  private async pass(): Promise<void> {
    if (this.o.clock.now() < this.retryAt) return; // the spool refused a moment ago: the next tick tries again
    let dir;
    try {
      dir = await opendir(this.o.dir, { bufferSize: 128 });
    } catch {
      return; // no folder (yet): the daemon makes it at start
    }
    const all = this.dirtyAll;
    this.dirtyAll = false;
    // Files first seen in one pass wait from the same moment, and so go together (one log line).
    this.passStart = this.o.clock.now();
    const seen = new Set<string>();
    let turn = newTurn();
    let complete = true;
    for await (const entry of dir) {
      if (this.stopped) {
        complete = false;
        break;
      }
      seen.add(entry.name);
      turn.names++;
      await this.look(entry.name, turn, all);
      if (turn.names >= TURN_NAMES || turn.work.length >= TURN_FILES || turn.held >= TURN_HELD) {
        const refused = await this.settle(turn);
        turn = newTurn();
        if (refused) {
          complete = false;
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
    }
    await this.settle(turn);
    if (complete) for (const name of this.watched.keys()) if (!seen.has(name)) this.watched.delete(name);
    this.logRemoved();
  }

  private async look(name: string, turn: Turn, all: boolean): Promise<void> {
    const marked = this.dirty.delete(name) || all;
    const w = this.watched.get(name);
    // A name known to be unfinished (or a proof) waits for its recheck unless the watch named it.
    if (w && !marked && this.passStart - w.look < RECHECK) return;
    if (this.stuck.has(name) || name === OWN_SOCKET) return;
    if (name.startsWith(PROOF_PREFIX)) return this.proof(name);
    if (name.startsWith(DROP_CACHE) && await this.configCache(name)) return;
    const out = await this.inspect(name);
    if (out.kind !== 'skip') this.watched.delete(name);
    if (out.kind === 'taken') turn.taken.push(name);
    else if (out.kind === 'bad') await this.discard(name, out.reason, out.uid, out.dir);
    else if (out.kind === 'ok') {
      turn.work.push({ name, out });
      turn.held += out.held;
    }
  }

  /**
   * Commits what the turn read (one transaction and one sync for all: group commit),
   * logs it, removes the files; true when the spool refused (a full disk): the files
   * stay, and wait a moment.
   */
  private async settle(turn: Turn): Promise<boolean> {
    const results = await Promise.allSettled(turn.work.map((w) => w.out.commit));
    let refused: { count: number; why: string } | undefined;
    results.forEach((r, i) => {
      const { name, out } = turn.work[i]!;
      if (r.status === 'rejected') {
        if (r.reason instanceof PickedUpAlready) return turn.taken.push(name);
        // The spool refused (full disk...): the file stays for a later round.
        refused = { count: (refused?.count ?? 0) + 1, why: (r.reason as Error)?.message ?? String(r.reason) };
        return;
      }
      turn.taken.push(name);
      this.o.events.emit({ type: 'received', id: out.id, sender: out.sender, protocol: out.protocol, size: r.value.size, user: out.user,
        ...(out.messageIdHeader ? { messageIdHeader: out.messageIdHeader } : {}) });
      out.hold?.announce(out.id);
      if (!out.queueOnly) this.o.kick(out.id);
    });
    if (refused) {
      const now = this.o.clock.now();
      this.retryAt = now + RETRY;
      if (now - this.refusedNotice >= NOTICE_EVERY) {
        this.refusedNotice = now;
        this.o.events.emit({ type: 'notice', text: `maildrop: ${refused.count} file(s) left for later: ${refused.why} (logged once a minute at most)` });
      }
    }
    const removed: string[] = [];
    for (const name of turn.taken) if (await this.remove(name)) removed.push(name);
    // The removals must be on disk before the marks go: a file back after a crash
    // with no mark would be picked up twice.
    if (removed.length) syncFolder(this.o.dir);
    await this.o.spool.forgetPickups(removed).catch(() => undefined);
    return refused !== undefined;
  }

  /** A user's proof of identity (admin/own-server.ts): left alone while it may serve, removed once stale. */
  private async proof(name: string): Promise<void> {
    const st = await this.lstat(join(this.o.dir, name));
    if (!st) return;
    const w = this.watch(name, st, false);
    if (this.passStart - w.since >= this.stall) {
      this.watched.delete(name);
      await this.remove(name);
    }
  }

  /** The validated-configuration copy (config/load.ts) that root or the daemon's user keeps here. */
  private async configCache(name: string): Promise<boolean> {
    const uid = (await this.lstat(join(this.o.dir, name)))?.uid;
    return uid === 0 || uid === process.geteuid?.();
  }

  /**
   * Notes an unfinished file or a proof as seen in this pass; a file that grew (`grows`)
   * starts its wait again. The wait starts when this process first sees the file:
   * nothing its owner can set (times, mode) shortens or lengthens it.
   */
  private watch(name: string, st: Stats, grows: boolean): Watched {
    const now = this.passStart;
    let w = this.watched.get(name);
    if (!w || w.ino !== st.ino) {
      w = { ino: st.ino, size: st.size, since: now, look: now };
      this.watched.set(name, w);
    } else if (grows && st.size > w.size) {
      w.size = st.size;
      w.since = now;
    }
    w.look = now;
    return w;
  }

  /**
   * A file not marked complete: junk once it has not grown for `stall`, or is still
   * empty after EMPTY_STALL. A writer still at work learns of it when it marks the
   * file complete (its link count is 0: maildrop.ts, postdrop.c) and fails, never
   * acknowledging mail that is gone.
   */
  private unfinished(name: string, st: Stats): Outcome {
    const w = this.watch(name, st, true);
    const waited = this.passStart - w.since;
    if (st.size === 0 && waited >= EMPTY_STALL) return { kind: 'bad', reason: 'left empty and unfinished', uid: st.uid };
    if (waited < this.stall) return { kind: 'skip' };
    return { kind: 'bad', reason: `left unfinished (not grown for ${Math.round(this.stall / 60_000)} minutes)`, uid: st.uid };
  }

  private async inspect(name: string): Promise<Outcome> {
    const path = join(this.o.dir, name);
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const st = await this.lstat(path);
      if (!st) return { kind: 'skip' }; // gone meanwhile
      if (code === 'ELOOP' || st.isSymbolicLink()) return { kind: 'bad', reason: 'a symbolic link', uid: st.uid };
      // Unreadable to us: a file its writer has not finished (mode 0600).
      return this.unfinished(name, st);
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) return { kind: 'bad', reason: 'a folder', uid: st.uid, dir: true };
      if (!st.isFile()) return { kind: 'bad', reason: 'not a regular file', uid: st.uid };
      if (st.nlink !== 1) return { kind: 'bad', reason: `a file with ${st.nlink} links`, uid: st.uid };
      if ((st.mode & 0o004) === 0) return this.unfinished(name, st);
      if (this.o.spool.pickedUp(name) !== undefined) return { kind: 'taken' };
      if (st.size > this.o.maxMessageSize + ENVELOPE_ALLOWANCE) return { kind: 'bad', reason: `too big (${st.size} bytes)`, uid: st.uid };
      const out = await takeDropFile(this.o, name, fh, st);
      return typeof out === 'string' ? { kind: 'bad', reason: out, uid: st.uid } : out;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private async discard(name: string, reason: string, uid: number | undefined, dir = false): Promise<void> {
    if (await this.remove(name, dir)) {
      const r = this.removed.get(uid) ?? { count: 0, first: name, reasons: new Map<string, number>(), some: [], last: 0 };
      r.last = this.o.clock.now();
      r.count++;
      r.reasons.set(reason, (r.reasons.get(reason) ?? 0) + 1);
      if (r.some.length < SOME) r.some.push(`${name} (${reason})`);
      this.removed.set(uid, r);
    } else {
      this.stuck.add(name);
      this.o.events.emit({ type: 'notice', text: `maildrop: cannot remove ${name} from ${ownerText(uid)} (${reason}); leaving it` });
    }
  }

  /**
   * One line per user for what was removed since the last, once nothing more of theirs
   * has gone for QUIET, and at most once a minute each (`all`: everything now, at stop):
   * the file's name and reason when it was one, each name when a few, else how many for
   * each reason (a user who floods the folder gets one line, not one per file).
   */
  private logRemoved(all = false): void {
    const now = this.o.clock.now();
    for (const [uid, at] of this.loggedAt) if (now - at >= NOTICE_EVERY) this.loggedAt.delete(uid);
    for (const [uid, r] of this.removed) {
      if (!all && (this.loggedAt.has(uid) || now - r.last < QUIET)) continue;
      this.loggedAt.set(uid, now);
      this.removed.delete(uid);
      const from = `maildrop: removed ${r.count === 1 ? r.first : `${r.count} files`} from ${ownerText(uid)}: `;
      const text = r.count === 1 ? `${from}${[...r.reasons.keys()][0]}`
        : r.count <= SOME ? `${from}${r.some.join(', ')}`
          : `${from}${[...r.reasons].slice(0, 5).map(([why, n]) => `${n} ${why}`).join(', ')}${r.reasons.size > 5 ? ', ...' : ''} (the first ${r.first})`;
      this.o.events.emit({ type: 'notice', text });
    }
  }

  private async lstat(path: string): Promise<Stats | undefined> {
    try {
      return await lstat(path);
    } catch {
      return undefined;
    }
  }

  private async remove(name: string, dir = false): Promise<boolean> {
    try {
      if (dir) await rmdir(join(this.o.dir, name));
      else await unlink(join(this.o.dir, name));
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }
}

const newTurn = (): Turn => ({ names: 0, held: 0, work: [], taken: [] });

const ownerText = (uid: number | undefined) => (uid === undefined ? 'an unknown user' : `${userName(uid)} (uid ${uid})`);
