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
  const [sentence, status] = ending(e);
  process.stderr.write(`${personality}: ${sentence}\n`);
  process.exitCode = status;
}

/** The sentence and the sysexits status for an error. */
function ending(e: unknown): [string, number] {
  if (e instanceof CommandError) return [e.message, e.exitCode];
  if (e instanceof ConfigError) return [e.message, EX.FAIL];
  if (e instanceof SpoolUnavailable || e instanceof SpoolWriteError) return [`${e.message}; try again later`, EX.TEMPFAIL];
  // Written by a newer postern: refused, never rewritten as this version's.
  if (e instanceof RecordVersionError) return [e.message, EX.DATAERR];
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') return [`cannot listen: ${(e as Error).message}`, EX.FAIL];
  return [`internal error: ${(e as Error).stack ?? String(e)}`, EX.SOFTWARE];
}
