// spool/reserve.ts: room kept back for a full disk. LMDB copies pages on every write,
// so even recording a delivery (which removes a message) needs a little free space;
// on a disk filled by someone else the daemon could deliver but never record it. The
// reserve is a file of zeros in the spool folder: the first failed write deletes it,
// which lets delivery results through, and new mail is refused (452) until the disk
// has room to make the reserve again (Postfix's queue_minfree, made certain).
import { closeSync, constants, fsyncSync, openSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** How much is kept back: enough for many delivery results (LMDB's pages are 4 KB). */
export const RESERVE_SIZE = 1024 * 1024;

export class SpaceReserve {
  private readonly path: string;
  private released = false;
  private lastCheck = 0;

  constructor(directory: string, private readonly size: number) {
    this.path = join(directory, 'reserve');
  }

  /**
   * Makes the reserve file if it is missing, or short, and the disk has room for it twice
   * over. It is synced, and its folder entry too: a reserve only written is, after a power
   * cut, a file of 0 bytes that holds no room (the power-loss harness found it so).
   */
  ensure(): boolean {
    const there = statSync(this.path, { throwIfNoEntry: false });
    if (there && there.size >= this.size) {
      this.released = false;
      return true;
    }
    try {
      if (there) rmSync(this.path, { force: true }); // short: cut before its sync
      const st = statfsSync(join(this.path, '..'));
      if (st.bavail * st.bsize < 2 * this.size) return false;
      const fd = openSync(this.path, 'wx', 0o600);
      try {
        const zeros = Buffer.alloc(64 * 1024);
        for (let n = 0; n < this.size; n += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, this.size - n));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      syncFolderOf(this.path);
      this.released = false;
      return true;
    } catch {
      rmSync(this.path, { force: true });
      return false;
    }
  }

  /** A write failed: give the space back so that delivery results can be written. */
  release(): void {
    this.released = true;
    rmSync(this.path, { force: true });
  }

  /** May new mail be written? Not while the reserve is spent; looks again at most once a second. */
  canAccept(now = Date.now()): boolean {
    if (!this.released) return true;
    if (now - this.lastCheck < 1000) return false;
    this.lastCheck = now;
    return this.ensure();
  }
}

/** Syncs the folder holding `path` (its new entry); a folder that cannot be opened is left as it is. */
function syncFolderOf(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(join(path, '..'), constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch { /* the file's own sync stands */ } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
