// spool/lock.ts: the delivery lock, `deliver.lock` in the spool folder: one process at a
// time delivers from a spool (the daemon, or a `postern -q` run when no daemon runs),
// so no message is sent twice by two queue runners. The lock is a symbolic link whose
// target is the owner's pid (the old "symlink lock"): made in one atomic step, with
// no temporary file, no data block (it works on a full disk) and nothing ever opened
// through it; a lock whose owner is gone (SIGKILL, crash, a reboot that gave its pid
// to another program) is taken over.
import { readFileSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
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

/** The pid a lock names, 0 when it names none (gone meanwhile, or not our kind of lock). */
function holder(path: string): number {
  try {
    const pid = Number(readlinkSync(path));
    return Number.isInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return 0;
  }
}

export function acquireDeliveryLock(spoolDir: string): LockResult {
  const path = join(spoolDir, 'deliver.lock');
  for (let round = 0; round < 2; round++) {
    try {
      symlinkSync(String(process.pid), path); // fails if a lock is there
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          if (holder(path) === process.pid) unlinkSync(path);
        } catch { /* already gone */ }
      };
      process.once('exit', release);
      return { ok: true, release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = holder(path);
      if (pid > 0 && pid !== process.pid && ownerAlive(pid)) return { ok: false, heldBy: pid };
      try {
        unlinkSync(path); // stale, or a lock file of an earlier postern (a regular file)
      } catch { /* someone else took it over first */ }
    }
  }
  return { ok: false, heldBy: 0 };
}
