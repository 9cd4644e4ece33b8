// cli/privileges.ts: who may do what, and the folders that make it so. The spool
// folder is private (0700, its files 0600, the daemon's user's); the maildrop is the
// public drop folder (1733: anyone may add a file, nobody but its owner may list or
// remove); the main log is 0640. A daemon started as root sets these up, then becomes
// `user`; queue commands refuse (exit 77) anyone but root and the daemon's user.
import { closeSync, constants, fchmodSync, fchownSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, chmodSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { CommandError, failure, noPermission } from '../core/exit.js';
import { userByName, userName, type UserEntry } from '../core/users.js';

const euid = () => process.geteuid?.() ?? 0;

/** The configured daemon user, looked up; an unknown name is a one-sentence failure. */
export function daemonUser(config: Config): UserEntry | undefined {
  if (config.user === undefined) return undefined;
  const u = userByName(config.user);
  if (!u) throw failure(`the user "${config.user}" (configuration key user) does not exist`);
  return u;
}

function stat(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Admins are root and the daemon's user: `user` when set, else the spool folder's
 * owner. Others get one sentence and exit 77 for the queue commands.
 */
export function requireAdmin(config: Config, what: string): void {
  const me = euid();
  if (me === 0) return;
  let who: string;
  if (config.user !== undefined) {
    if (userByName(config.user)?.uid === me) return;
    who = `the ${config.user} user`;
  } else {
    const st = stat(config.spool.directory);
    if (!st || st.uid === me) return; // no spool yet: nothing to protect
    who = `the spool's owner (${userName(st.uid)})`;
  }
  throw noPermission(`permission denied: only root and ${who} may ${what}`);
}

/**
 * Root becomes the daemon's user: its group alone, then gid, then uid (the order
 * matters). A node that may use io_uring refuses (CVE-2024-22017); bin/ and the
 * wrappers start it with io_uring off, so that is one sentence for a node started otherwise.
 */
export function dropPrivileges(u: UserEntry): void {
  try {
    process.setgroups?.([u.gid]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_INVALID_STATE') throw err;
    const hint = process.env.UV_USE_IO_URING === '0' ? 'even with UV_USE_IO_URING=0 (a libuv it cannot ask)' : 'start it with UV_USE_IO_URING=0';
    throw failure(`cannot become the ${u.name} user: this node refuses while io_uring may be on (CVE-2024-22017); ${hint}`);
  }
  process.setgid?.(u.gid);
  process.setuid?.(u.uid);
}

/** Root with `user` set runs queue commands as that user, so the spool never gets root's files. */
export function becomeDaemonUser(config: Config): void {
  if (euid() !== 0) return;
  const u = daemonUser(config);
  if (u) dropPrivileges(u);
}

/**
 * The daemon's start: makes the spool folder, the maildrop and the main log when
 * missing and gives them their owner (`owner`, when root) and modes. Also fixes a spool
 * left by an older postern (0755 folder, 0644 files owned by root).
 */
/** Makes the maildrop when missing, checks it, and gives it its owner and mode 1733. */
function maildrop(drop: string, owner: UserEntry | undefined): void {
  // Root's or the daemon user's; a daemon not run by root must own it (to list it).
  const allowed = new Set(euid() === 0 ? [0, ...(owner ? [owner.uid] : [])] : [euid()]);
  let st: Stats | undefined;
  try {
    st = lstatSync(drop);
  } catch {
    mkdirSync(dirname(drop), { recursive: true, mode: 0o755 });
    mkdirSync(drop, { mode: 0o700 });
    st = lstatSync(drop);
  }
  if (st.isSymbolicLink()) throw failure(`the maildrop ${drop} is a symbolic link; make it a folder`);
  if (!st.isDirectory()) throw failure(`the maildrop ${drop} is not a folder`);
  if (!allowed.has(st.uid)) throw failure(`the maildrop ${drop} belongs to ${userName(st.uid)}, not to ${euid() === 0 ? 'root or the daemon\'s user' : userName(euid())}`);
  if (euid() === 0 && owner) lchownSync(drop, owner.uid, owner.gid);
  // Sticky, writable and traversable by all, listable by its owner only.
  chmodSync(drop, 0o1733);
}

/**
 * sendmail before any daemon has run (a new machine, a test): an administrator's
 * sendmail makes the spool folder and the maildrop as the daemon would; anyone else
 * is told to try again later. True when the maildrop is there now.
 */
export function makeMaildrop(config: Config): boolean {
  try {
    requireAdmin(config, 'make the maildrop');
    const owner = daemonUser(config);
    const spool = config.spool.directory;
    mkdirSync(spool, { recursive: true, mode: 0o700 });
    if (euid() === 0 && owner) lchownSync(spool, owner.uid, owner.gid);
    maildrop(config.spool.maildrop, owner);
    return true;
  } catch {
    return false;
  }
}

export function prepareFolders(config: Config, owner: UserEntry | undefined): void {
  let where = config.spool.directory;
  try {
    setUp(config, owner, (path) => (where = path));
  } catch (err) {
    if (err instanceof CommandError) throw err;
    // One sentence, not "cannot listen" (main.ts reads a bare EACCES as a bind error).
    throw failure(`cannot set up ${where}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function setUp(config: Config, owner: UserEntry | undefined, at: (path: string) => void): void {
  const root = euid() === 0;
  const chown = (path: string) => {
    if (root && owner) lchownSync(path, owner.uid, owner.gid);
  };
  const mode = (path: string, m: number) => {
    try {
      chmodSync(path, m);
    } catch { /* not ours to change: left as its owner set it */ }
  };

  const spool = config.spool.directory;
  at(spool);
  mkdirSync(spool, { recursive: true, mode: 0o700 });
  if (!statSync(spool).isDirectory()) throw failure(`the spool folder ${spool} is not a folder`);
  chown(spool);
  mode(spool, 0o700);
  for (const name of readdirSync(spool)) {
    const path = join(spool, name);
    at(path);
    const st = lstatSync(path);
    chown(path); // lchown: a link itself (the delivery lock), never what it names
    if (st.isFile()) mode(path, 0o600);
    // Big bodies' files, made by a daemon that ran as root before `user` was set.
    if (name === 'bodies' && st.isDirectory() && root && owner) {
      for (const f of readdirSync(path)) chown(join(path, f));
    }
  }

  at(config.spool.maildrop);
  maildrop(config.spool.maildrop, owner);

  const log = config.log.file;
  const logDir = dirname(log);
  at(log);
  try {
    statSync(logDir);
  } catch {
    mkdirSync(logDir, { recursive: true, mode: 0o750 });
    chown(logDir);
  }
  const ds = statSync(logDir);
  // A folder others may write would let them swap the log for a link to any file.
  if (root && (ds.mode & 0o002) !== 0) throw failure(`the main log's folder ${logDir} is writable by every user; choose a private folder for log.file`);
  let fd: number;
  try {
    fd = openSync(log, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw failure(`the main log ${log} is a symbolic link`);
    throw err;
  }
  try {
    if (root && owner) fchownSync(fd, owner.uid, owner.gid);
    try {
      fchmodSync(fd, 0o640);
    } catch { /* not ours */ }
  } finally {
    closeSync(fd);
  }
}
