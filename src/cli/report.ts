// cli/report.ts: how a command ends on an error, for main.ts and the bundled listing
// (list.ts) alike: one sentence on stderr and a sysexits status for what the user can
// act on; a stack trace only for a bug. Also the ends that are no error at all. Light:
// the error classes' modules load nothing.
import { CommandError, EX } from '../core/exit.js';
import { ConfigError } from '../config/errors.js';
import { RecordVersionError } from '../spool/record.js';
import { isLmdbCommitFailure, SpoolUnavailable, SpoolWriteError } from '../spool/spool.js';

/**
 * `mailq | head`: a reader that went away is not an error worth a stack trace.
 * lmdb-js also rejects a promise of its own when a commit fails (a full disk); the
 * write that failed reports it (exit 75), so that echo is no crash.
 */
export function quietEnds(): void {
  process.on('unhandledRejection', (e) => {
    if (!isLmdbCommitFailure(e) && process.listenerCount('unhandledRejection') === 1) throw e;
  });
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

/** Says what went wrong as the command `personality` and sets the exit status. */
export function report(personality: string, e: unknown): void {
  const name = personality;
  const err = (s: string) => process.stderr.write(s);
  if (e instanceof CommandError) {
    err(`${name}: ${e.message}\n`);
    process.exitCode = e.exitCode;
    return;
  }
  if (e instanceof ConfigError) {
    err(`${name}: ${e.message}\n`);
    process.exitCode = EX.FAIL;
    return;
  }
  if (e instanceof SpoolUnavailable || e instanceof SpoolWriteError) {
    err(`${name}: ${e.message}; try again later\n`);
    process.exitCode = EX.TEMPFAIL;
    return;
  }
  if (e instanceof RecordVersionError) {
    // Written by a newer postern: refused, never rewritten as this version's.
    err(`${name}: ${e.message}\n`);
    process.exitCode = EX.DATAERR;
    return;
  }
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    err(`${name}: cannot listen: ${(e as Error).message}\n`);
    process.exitCode = EX.FAIL;
    return;
  }
  err(`${name}: internal error: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = EX.SOFTWARE;
}
