// spool/lock.ts: the delivery lock, `deliver.lock` in the spool folder: one process at a
// time delivers from a spool (the daemon, or a `postern -q` run when no daemon runs),
// so no message is sent twice by two queue runners. The file holds the owner's pid; a
// lock whose owner is dead (SIGKILL, crash) is taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export type LockResult = { ok: true; release: () => void } | { ok: false; heldBy: number };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireDeliveryLock(spoolDir: string): LockResult {
  const path = join(spoolDir, 'deliver.lock');
  for (let round = 0; round < 2; round++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
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
      if (pid > 0 && pid !== process.pid && alive(pid)) return { ok: false, heldBy: pid };
      // A stale lock: its owner died without releasing it.
      try {
        unlinkSync(path);
      } catch { /* someone else took it over first */ }
    }
  }
  return { ok: false, heldBy: 0 };
}
