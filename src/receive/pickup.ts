// receive/pickup.ts: Postfix's pickup. Moves complete maildrop files (written by any
// user's sendmail) into the spool: the file's owner, as the kernel reports it, is the
// submitter (U=, the default sender, Received:); the file only says what the user may
// choose. Each message is cleaned up here with an ID of this process, committed with
// the file's name (so a crash never commits a file twice), logged, and then the file
// is removed. Run by the process that holds the delivery lock: the daemon (at start,
// on changes to the folder, every minute) or a queue command when no daemon runs.
// A file that is not a well-formed drop file is logged with its owner and removed.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, rmdirSync, unlinkSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { Clock, Timer } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import { isRoutableAddress } from '../core/address.js';
import { userName } from '../core/users.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import { DROP_CACHE } from '../config/load.js';
import { OWN_SOCKET, PROOF_PREFIX } from './own-server.js';
import { cleanup, qualify } from './cleanup.js';
import { ENVELOPE_ALLOWANCE, INCOMPLETE_AGE, parseDropFile, syncFolder } from './maildrop.js';

/** What the pickup needs of the spool (LmdbSpool has it). */
export interface PickupSpool {
  commitPickup(msg: NewMessage, file: string): Promise<MessageRecord | false>;
  pickedUp(file: string): string | undefined;
  pickupMarks(): string[];
  forgetPickups(files: string[]): Promise<void>;
}

export interface PickupOptions {
  dir: string;
  spool: PickupSpool;
  events: EventBus;
  clock: Clock;
  ids: MessageIdGenerator;
  hostname: string;
  qualifyDomain: string;
  maxMessageSize: number;
  maxRecipients: number;
  /** A message is in the spool (not called for sendmail -odq mail). */
  kick: (id: string) => void;
}

/** Files per round, and bytes read per round: SMTP stays served between rounds. */
const ROUND_FILES = 200;
const ROUND_BYTES = 64 * 1024 * 1024;
/** A look at the folder this often whatever the watch says: a watch can go blind (the folder made again, a file system without inotify events). */
const SCAN_EVERY = 2_000;

type Inspected =
  | { kind: 'skip' }
  | { kind: 'taken' }
  | { kind: 'bad'; reason: string; uid?: number; dir?: boolean }
  | { kind: 'ok'; uid: number; data: Buffer; written: number };

export class Pickup {
  private running: Promise<void> | undefined;
  private again = false;
  private watcher: FSWatcher | undefined;
  private timer: Timer | undefined;
  private stopped = false;
  /** Entries we could not remove: named in the log once, not every round. */
  private readonly stuck = new Set<string>();

  constructor(private readonly o: PickupOptions) {}

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
      this.watcher = watch(this.o.dir, { persistent: false }, () => void this.run());
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
        this.timer?.cancel();
        tick();
      });
    } catch { /* no folder or no inotify: the scans find the files */ }
    this.forgetRemoved();
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.timer?.cancel();
    await this.running;
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
        while (!this.stopped) {
          const full = await this.round();
          if (!full) break;
          await new Promise((r) => setImmediate(r)); // let SMTP sessions in between rounds
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Marks whose files are gone (a crash between the unlink and the forget). */
  private forgetRemoved(): void {
    const gone = this.o.spool.pickupMarks().filter((name) => {
      try {
        lstatSync(join(this.o.dir, name));
        return false;
      } catch {
        return true;
      }
    });
    void this.o.spool.forgetPickups(gone).catch(() => undefined);
  }

  /** One bounded round; true when there may be more to take at once. */
  private async round(): Promise<boolean> {
    let names: string[];
    try {
      names = readdirSync(this.o.dir);
    } catch {
      return false; // no folder (yet): the daemon makes it at start
    }
    const work: { name: string; msg: NewMessage; queueOnly: boolean; user: string }[] = [];
    const taken: string[] = [];
    let bytes = 0;
    let full = false;
    const logins = new Map<number, string>(); // /etc/passwd read once per uid and round
    const owner = (uid: number) => logins.get(uid) ?? logins.set(uid, userName(uid)).get(uid)!;
    for (const name of names) {
      if (this.stuck.has(name) || this.configCache(name) || this.ownSocket(name)) continue;
      if (work.length + taken.length >= ROUND_FILES || bytes >= ROUND_BYTES) {
        full = true;
        break;
      }
      const seen = this.inspect(name);
      if (seen.kind === 'skip') continue;
      if (seen.kind === 'taken') {
        taken.push(name);
        continue;
      }
      if (seen.kind === 'bad') {
        this.discard(name, seen.reason, seen.uid, seen.dir);
        continue;
      }
      bytes += seen.data.length;
      const user = owner(seen.uid);
      const msg = this.message(seen.data, user, seen.written);
      if (typeof msg === 'string') {
        this.discard(name, msg, seen.uid);
        continue;
      }
      work.push({ name, user, ...msg });
    }
    // All commits of the round share one transaction and one sync (group commit).
    const results = await Promise.allSettled(work.map((w) => this.o.spool.commitPickup(w.msg, w.name)));
    let refused: { count: number; why: string } | undefined;
    results.forEach((r, i) => {
      const w = work[i]!;
      if (r.status === 'rejected') {
        // The spool refused (full disk...): the file stays for a later round.
        refused = { count: (refused?.count ?? 0) + 1, why: (r.reason as Error)?.message ?? String(r.reason) };
        return;
      }
      taken.push(w.name);
      if (r.value === false) return;
      const m = w.msg;
      this.o.events.emit({ type: 'received', id: m.id, sender: m.sender, protocol: m.protocol, size: r.value.size, user: w.user,
        ...(m.messageIdHeader ? { messageIdHeader: m.messageIdHeader } : {}) });
      if (!w.queueOnly) this.o.kick(m.id);
    });
    if (refused) this.o.events.emit({ type: 'notice', text: `maildrop: ${refused.count} file(s) left for later: ${refused.why}` });
    const removed = taken.filter((name) => this.remove(name));
    // The removals must be on disk before the marks go: a file back after a crash
    // with no mark would be picked up twice.
    if (removed.length) syncFolder(this.o.dir);
    await this.o.spool.forgetPickups(removed).catch(() => undefined);
    return full && !refused;
  }

  /**
   * The daemon's public socket and users' proofs of identity (receive/own-server.ts):
   * left alone, but for a proof abandoned for a day.
   */
  private ownSocket(name: string): boolean {
    if (name === OWN_SOCKET) return true;
    if (!name.startsWith(PROOF_PREFIX)) return false;
    const st = this.lstat(join(this.o.dir, name));
    if (st && this.o.clock.now() - st.mtimeMs >= INCOMPLETE_AGE) this.remove(name);
    return true;
  }

  /** The validated-configuration copy (config/load.ts) that root or the daemon's user keeps here. */
  private configCache(name: string): boolean {
    if (!name.startsWith(DROP_CACHE)) return false;
    const uid = this.lstat(join(this.o.dir, name))?.uid;
    return uid === 0 || uid === process.geteuid?.();
  }

  private inspect(name: string): Inspected {
    const path = join(this.o.dir, name);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const st = this.lstat(path);
      if (!st) return { kind: 'skip' }; // gone meanwhile
      if (code === 'ELOOP' || st.isSymbolicLink()) return { kind: 'bad', reason: 'a symbolic link', uid: st.uid };
      // Unreadable to us: a file its writer has not finished (mode 0600).
      return this.incomplete(st);
    }
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) return { kind: 'bad', reason: 'a folder', uid: st.uid, dir: true };
      if (!st.isFile()) return { kind: 'bad', reason: 'not a regular file', uid: st.uid };
      if (st.nlink !== 1) return { kind: 'bad', reason: `a file with ${st.nlink} links`, uid: st.uid };
      if ((st.mode & 0o004) === 0) return this.incomplete(st);
      if (this.o.spool.pickedUp(name) !== undefined) return { kind: 'taken' };
      if (st.size > this.o.maxMessageSize + ENVELOPE_ALLOWANCE) return { kind: 'bad', reason: `too big (${st.size} bytes)`, uid: st.uid };
      const data = Buffer.allocUnsafe(st.size);
      let got = 0;
      while (got < st.size) {
        const n = readSync(fd, data, got, st.size - got, got);
        if (n === 0) break;
        got += n;
      }
      return { kind: 'ok', uid: st.uid, data: data.subarray(0, got), written: st.mtimeMs };
    } finally {
      closeSync(fd);
    }
  }

  private incomplete(st: Stats): Inspected {
    if (this.o.clock.now() - st.mtimeMs < INCOMPLETE_AGE) return { kind: 'skip' };
    return { kind: 'bad', reason: 'left incomplete for a day', uid: st.uid };
  }

  private lstat(path: string): Stats | undefined {
    try {
      return lstatSync(path);
    } catch {
      return undefined;
    }
  }

  /** The spool message a drop file becomes, or why it cannot be one. */
  private message(data: Buffer, user: string, written: number): { msg: NewMessage; queueOnly: boolean } | string {
    const o = this.o;
    const parsed = parseDropFile(data, { maxRecipients: o.maxRecipients });
    if (typeof parsed === 'string') return parsed;
    const e = parsed.envelope;
    const sender = qualify(e.sender === undefined ? `${user}@${o.qualifyDomain}` : e.sender.replace(/^<(.*)>$/, '$1'), o.qualifyDomain);
    if (sender !== '' && !isRoutableAddress(sender)) return 'bad sender address';
    if (!e.recipients.every((r) => isRoutableAddress(qualify(r, o.qualifyDomain)))) return 'bad recipient address';
    const now = o.clock.now();
    const id = o.ids.next(now);
    let cleaned;
    try {
      cleaned = cleanup(parsed.message, {
        id, now, hostname: o.hostname, qualifyDomain: o.qualifyDomain, sender, recipients: e.recipients, protocol: e.protocol, user,
        extractRecipients: e.extract, ...(e.fullName !== undefined ? { fullName: e.fullName } : {}),
      });
    } catch (err) {
      return `unusable message (${(err as Error).message})`;
    }
    if (cleaned.recipients.length === 0) return 'no recipients';
    if (cleaned.recipients.length > o.maxRecipients) return `more than ${o.maxRecipients} recipients`;
    if (!cleaned.recipients.every(isRoutableAddress)) return 'bad recipient address in the headers';
    if (Buffer.byteLength(cleaned.headers, 'latin1') + cleaned.body.length > o.maxMessageSize) return 'larger than max_message_size';
    return {
      queueOnly: e.queueOnly === true,
      msg: {
        // Arrived when sendmail wrote it (the daemon may have been down), never in the future.
        id, sender, recipients: cleaned.recipients, arrival: Math.min(now, Math.floor(written)), protocol: e.protocol, user, headers: cleaned.headers, body: [cleaned.body],
        ...(cleaned.messageIdHeader ? { messageIdHeader: cleaned.messageIdHeader } : {}),
        ...(e.queueOnly ? { queueOnly: true } : {}),
      },
    };
  }

  private discard(name: string, reason: string, uid: number | undefined, dir = false): void {
    const owner = uid === undefined ? 'an unknown user' : `${userName(uid)} (uid ${uid})`;
    if (this.remove(name, dir)) {
      this.o.events.emit({ type: 'notice', text: `maildrop: removed ${name} from ${owner}: ${reason}` });
    } else {
      this.stuck.add(name);
      this.o.events.emit({ type: 'notice', text: `maildrop: cannot remove ${name} from ${owner} (${reason}); leaving it` });
    }
  }

  private remove(name: string, dir = false): boolean {
    try {
      if (dir) rmdirSync(join(this.o.dir, name));
      else unlinkSync(join(this.o.dir, name));
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }
}
