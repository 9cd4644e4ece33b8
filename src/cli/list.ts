// cli/list.ts: the queue's listings alone (mailq, `postern -bp` and its letters, also as
// `sendmail -bp`, and postern-qgrep's displays), bundled by esbuild with all they load
// into one CommonJS file, dist/cli/list.cjs, which bin/ runs first for those commands
// (as submit.ts for sendmail): no ESM loader, no module graph, no validator (the
// configuration comes from its fresh cache); lmdb is loaded as installed, as CommonJS.
// It declines, resolving false before it writes anything, what main.ts must do: any
// other command line (help, install, postern-qgrep's bulk actions, queue runs), no fresh
// cache, a caller who is no administrator (main.ts lists their own messages, or
// refuses), mail waiting in the maildrop (main.ts picks it up first). Errors end as
// main.ts ends them (report.ts).
import { basename } from 'node:path';
import { dropsWaiting } from '../admin/pickup-now.js';
import { listOptions, listQueue } from '../admin/list-queue.js';
import { asksAction, qgrep } from '../admin/qgrep.js';
import { cachedConfig } from '../config/load.js';
import { CommandError } from '../core/exit.js';
import { becomeDaemonUser, requireAdmin } from '../daemon/privileges.js';
import { LmdbSpool } from '../spool/lmdb-spool.js';
import { answeredFirst, mailqArgs, modeOf, queueSelection, takeConfigFlag } from './args.js';
import { quietEnds, report } from './report.js';

const out = (s: string | Uint8Array) => process.stdout.write(s);

/** What the command line asks for, if it is a listing this file does. */
function listing(personality: string, argv: string[]): { file: string | undefined; run: (spool: LmdbSpool) => Promise<number> | number } | undefined {
  // main.ts's own before any mode: help, the version, install (and Exim's queue import).
  if (answeredFirst(argv) || argv.includes('install') || argv.includes('uninstall')) return undefined;
  let flag: ReturnType<typeof takeConfigFlag>;
  try {
    flag = takeConfigFlag(argv);
  } catch {
    return undefined; // main.ts says what is wrong
  }
  const { file, rest } = flag;
  if (personality === 'postern-qgrep') return asksAction(rest) ? undefined : { file, run: (spool) => qgrep(rest, spool, out) };
  if (personality !== 'postern' && personality !== 'sendmail' && personality !== 'mailq') return undefined;
  const args = personality === 'mailq' ? mailqArgs(rest) : rest;
  if (queueSelection(args)) return undefined;
  const mode = modeOf(args, undefined);
  if (mode === undefined || !(mode === '--json' || mode.startsWith('-bp'))) return undefined;
  return { file, run: (spool) => listQueue(spool, out, listOptions(mode, args)) };
}

export async function list(argv0: string, argv: string[]): Promise<boolean> {
  const personality = basename(argv0).replace(/\.js$/, '');
  const asked = listing(personality, argv);
  if (!asked) return false;
  const c = cachedConfig(asked.file);
  if (!c) return false;
  try {
    requireAdmin(c, 'list the queue');
  } catch (e) {
    if (e instanceof CommandError) return false;
    throw e;
  }
  if (dropsWaiting(c).length > 0) return false;
  quietEnds();
  try {
    await becomeDaemonUser(c);
    process.umask(0o027);
    const spool = LmdbSpool.open(c.spool.directory);
    try {
      process.exitCode = await asked.run(spool);
    } finally {
      await spool.close();
    }
  } catch (e) {
    report(personality, e);
  }
  return true;
}
