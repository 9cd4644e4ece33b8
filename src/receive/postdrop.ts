// receive/postdrop.ts: the node side of the setgid helper (src/postdrop/postdrop.c),
// the only writer of the maildrop for users who are neither root, the daemon's user
// nor in the drop group: sendmail and `sendmail -bs` pipe each message to it, mailq
// asks it for a proof file. Also tells the daemon which group the maildrop gets (the
// helper's own group, as the package installed it). Light: loaded by sendmail.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stats } from 'node:fs';
import { DropError, envelopeLine, roomFor, writeDropFile, type DropEnvelope } from './maildrop.js';

const { closeSync, constants, fstatSync, openSync, statSync } = process.getBuiltinModule('node:fs');

/** Where the build puts the helper: dist/postdrop, beside dist/receive and dist/cli. */
const POSTDROP = resolve(dirname(fileURLToPath(import.meta.url)), '../postdrop');

export const postdropPath = (spool: { postdrop?: string | undefined }) => spool.postdrop ?? POSTDROP;

/**
 * The drop group: the group of a helper that root owns, that is setgid and that only
 * root may change; undefined when there is no such helper (then only root and the
 * daemon's user can submit).
 */
export function dropGroup(helper: string): number | undefined {
  try {
    return groupOfHelper(statSync(helper));
  } catch {
    return undefined;
  }
}

/** The group of a file that is root's setgid program, writable by no one else, of a group other than root's. */
function groupOfHelper(st: Stats): number | undefined {
  return st.isFile() && st.uid === 0 && (st.mode & 0o2000) !== 0 && (st.mode & 0o022) === 0 && st.gid !== 0 ? st.gid : undefined;
}

/**
 * The helper, opened to be run for a user: only root's program, writable by no one
 * else, setgid to the maildrop's group (postdrop itself) is run, whoever chose its path
 * (a cached configuration the daemon's user may write names it), and the file checked
 * is the file run: `path` is its descriptor's (/proc/self/fd/N, open in the child until
 * its exec), so its name cannot be swapped in between. close() once spawned.
 */
function openHelper(helper: string, dir: string): { path: string; close(): void } {
  let fd: number;
  try {
    fd = openSync(helper, constants.O_RDONLY | constants.O_NONBLOCK); // a FIFO named there does not hang us
  } catch (err) {
    throw new DropError(`cannot run the postdrop helper ${helper} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, (err as NodeJS.ErrnoException).code);
  }
  let ok = false;
  try {
    ok = groupOfHelper(fstatSync(fd)) === statSync(dir).gid;
  } catch { /* not ok */ }
  if (!ok) {
    closeSync(fd);
    throw new DropError(`the postdrop helper ${helper} is not root's setgid program of the maildrop's group; not run`);
  }
  return { path: `/proc/self/fd/${fd}`, close: () => closeSync(fd) };
}

function failed(helper: string, status: number | null, stderr: string, err?: NodeJS.ErrnoException): DropError {
  if (err) return new DropError(`cannot run the postdrop helper ${helper} (${err.code ?? err.message})`, err.code);
  const said = stderr.trim().split('\n').pop()?.replace(/^postdrop: /, '');
  return new DropError(said ? `postdrop: ${said}` : `the postdrop helper ${helper} failed (exit ${status})`, status === 77 ? 'EACCES' : undefined);
}

/** May this user not write into the maildrop themselves (so the helper must)? */
export const refusedByFolder = (err: unknown) => err instanceof DropError && (err.code === 'EACCES' || err.code === 'EPERM');

/**
 * One message into the maildrop: written directly where the folder lets us (root, the
 * daemon's user, members of the drop group), else through the helper. Returns the
 * file's name when we wrote it ourselves (the helper keeps its name to itself).
 */
export function dropMessage(spool: { maildrop: string; postdrop?: string | undefined }, envelope: DropEnvelope, message: Buffer[]): string | undefined {
  try {
    return writeDropFile(spool.maildrop, envelope, message);
  } catch (err) {
    if (!refusedByFolder(err)) throw err;
  }
  try {
    roomFor(spool.maildrop, message.reduce((n, b) => n + b.length, 0));
  } catch {
    throw new DropError(`not enough free space for the message in ${spool.maildrop}`, 'ENOSPC');
  }
  dropByHelper(postdropPath(spool), spool.maildrop, [envelopeLine(envelope), ...message]);
  return undefined;
}

/** One message, whole, through the helper; throws a DropError saying what went wrong. */
function dropByHelper(helper: string, dir: string, parts: Buffer[]): void {
  const run = openHelper(helper, dir);
  let r;
  try {
    r = process.getBuiltinModule('node:child_process').spawnSync(run.path, [dir], {
      argv0: helper, input: parts.length === 1 ? parts[0] : Buffer.concat(parts), stdio: ['pipe', 'ignore', 'pipe'], maxBuffer: 64 * 1024,
    });
  } finally {
    run.close();
  }
  if (r.error || r.status !== 0) throw failed(helper, r.status, r.stderr?.toString() ?? '', r.error as NodeJS.ErrnoException | undefined);
}

/** An empty `.auth-…` proof file of the caller's, made by the helper; its name. */
export function proofByHelper(helper: string, dir: string): string {
  const run = openHelper(helper, dir);
  let r;
  try {
    r = process.getBuiltinModule('node:child_process').spawnSync(run.path, ['-p', dir], { argv0: helper, stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    run.close();
  }
  if (r.error || r.status !== 0) throw failed(helper, r.status, r.stderr?.toString() ?? '', r.error as NodeJS.ErrnoException | undefined);
  return r.stdout.toString().trim();
}

/**
 * One message streamed through the helper (`sendmail -bs`): write() as it comes,
 * finish() resolves once the helper has made the file complete, abort() leaves nothing.
 */
export class HelperWriter {
  private readonly child;
  private stderr = '';
  private readonly exited: Promise<number | null>;
  private spawnError: NodeJS.ErrnoException | undefined;

  constructor(private readonly helper: string, dir: string) {
    const run = openHelper(helper, dir);
    try {
      this.child = process.getBuiltinModule('node:child_process').spawn(run.path, [dir], { argv0: helper, stdio: ['pipe', 'ignore', 'pipe'] });
    } finally {
      run.close(); // libuv's spawn returns once the child has exec'd (or failed to)
    }
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => { if (this.stderr.length < 4096) this.stderr += d; });
    this.child.stdin.on('error', () => { /* the helper ended: its exit says why */ });
    this.exited = new Promise((res) => {
      this.child.on('error', (err) => { this.spawnError = err; res(null); });
      this.child.on('close', (code) => res(code));
    });
  }

  /** Resolves when the pipe can take more. */
  write(part: Buffer): Promise<void> {
    if (this.child.stdin.write(part)) return Promise.resolve();
    return new Promise((res) => {
      this.child.stdin.once('drain', res);
      void this.exited.then(() => res());
    });
  }

  async finish(): Promise<void> {
    this.child.stdin.end();
    const code = await this.exited;
    if (code !== 0) throw failed(this.helper, code, this.stderr, this.spawnError);
  }

  /** The helper is stopped before it names the file: nothing is left in the maildrop. */
  abort(): void {
    this.child.kill('SIGTERM');
  }
}
