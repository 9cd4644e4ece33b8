// spool/lock.ts: the delivery lock, `deliver.lock` in the spool folder: one process at a
// time delivers from a spool (the daemon, or a `postern -q` run when no daemon runs),
// so no message is sent twice by two queue runners. The file holds the owner's pid and
// appears whole (written aside, then linked into place); a lock whose owner is gone
// (SIGKILL, crash, a reboot that gave its pid to another program) is taken over.
import { closeSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export type LockResult = { ok: true; release: () => void } | { ok: false; heldBy: number };

/** Is `pid` a live postern (or, where /proc cannot tell, any live process)? */
function ownerAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return /postern/.test(readFileSync(`/proc/${pid}/cmdline`, 'latin1'));
  } catch {
    return true;
  }
}

export function acquireDeliveryLock(spoolDir: string): LockResult {
  const path = join(spoolDir, 'deliver.lock');
  const mine = `${path}.${process.pid}`;
  const fd = openSync(mine, 'w', 0o644);
  writeSync(fd, `${process.pid}\n`);
  closeSync(fd);
  try {
    for (let round = 0; round < 2; round++) {
      try {
        linkSync(mine, path); // fails if a lock is there: no window with a half-written file
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          try {
            if (Number(readFileSync(path, 'utf8')) === process.pid) unlinkSync(path);
          } catch { /* already gone */ }
        };
        process.once('exit', release);
        return { ok: true, release };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        let pid = 0;
        try {
          pid = Number(readFileSync(path, 'utf8').trim());
        } catch { /* vanished meanwhile: try again */ }
        if (pid > 0 && pid !== process.pid && ownerAlive(pid)) return { ok: false, heldBy: pid };
        try {
          unlinkSync(path); // stale
        } catch { /* someone else took it over first */ }
      }
    }
    return { ok: false, heldBy: 0 };
  } finally {
    try {
      unlinkSync(mine);
    } catch { /* fine */ }
  }
}
