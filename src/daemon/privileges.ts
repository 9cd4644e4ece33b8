// daemon/privileges.ts: who may do what, and the folders that make it so. The spool
// folder is private (0700, its files 0600, the daemon's user's); the maildrop is the
// drop folder (1731, of the drop group: users add files through the setgid helper
// only; nobody but its owner may list or remove); the main log is 0640. A daemon
// started as root sets these up, touching by name only what nobody else can swap, then
// becomes `user`; queue commands refuse (exit 77) anyone but root and the daemon's user.
// The daemon's room, as its user and folders are the daemon's; every command reaches it
// from cli/ (requireAdmin, becomeDaemonUser, makeMaildrop for sendmail), nothing below.
import { closeSync, constants, existsSync, fchmodSync, fchownSync, fstatSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, chmodSync, statSync, type Stats } from 'node:fs';
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { CommandError, EX, failure, noPermission } from '../core/exit.js';
import { userByName, userName, type UserEntry } from '../core/users.js';
import { dropGroup, postdropPath } from '../receive/postdrop.js';

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
 * The marker a child started by runAs() finds in its environment: the uid it was started
 * as. It never changes identity again, and refuses to go on unless it is that user.
 */
export const AS_USER = 'POSTERN_AS_USER';

let inProcess: boolean | undefined;

/**
 * Whether this node lets root change its identity in this process (asked once). A node
 * whose libuv may use io_uring refuses setgroups/setgid/setuid (CVE-2024-22017: a ring
 * made as root keeps root's credentials after setuid): Debian 13's own, always (it is
 * linked to the system's libuv and ignores UV_USE_IO_URING), and Node's own when started
 * with UV_USE_IO_URING unset to 0 on a libuv that has rings. Such a node runs the command
 * again as the user instead (runAs). POSTERN_TEST_FORCE_SPAWN_DROP=1 picks that way on
 * any node (the tests' way to cover it): it changes only how, never whether, root
 * becomes the user.
 */
export function changesIdentityInProcess(): boolean {
  if (inProcess !== undefined) return inProcess;
  if (process.env.POSTERN_TEST_FORCE_SPAWN_DROP === '1') return (inProcess = false);
  try {
    process.setgroups?.(process.getgroups?.() ?? []); // no change; throws where Node refuses
    inProcess = true;
  } catch (err) {
    inProcess = (err as NodeJS.ErrnoException).code !== 'ERR_INVALID_STATE';
  }
  return inProcess;
}

/** Root becomes the daemon's user in this process: its group alone, then gid, then uid (the order matters). */
export function dropPrivileges(u: UserEntry): void {
  process.setgroups?.([u.gid]);
  process.setgid?.(u.gid);
  process.setuid?.(u.uid);
}

/**
 * In a process runAs() started: true (and the marker forgotten, so nothing this process
 * starts inherits it) when it is the user it was started as; refused otherwise (a marker
 * must never let root, or anyone else, go on as if it had become that user).
 */
export function startedAs(u: UserEntry | undefined): boolean {
  const mark = process.env[AS_USER];
  if (mark === undefined) return false;
  delete process.env[AS_USER];
  if (!u || mark !== String(u.uid) || euid() !== u.uid || (process.getegid?.() ?? u.gid) !== u.gid) {
    throw failure(`cannot become the ${u?.name ?? 'daemon\'s'} user: started as it (${AS_USER}=${mark}), this process runs as ${userName(euid())}`);
  }
  return true;
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT', 'SIGWINCH'] as const;

/**
 * Runs this very command again as `u`, in a child started with its uid and gid (libuv's
 * spawn changes them in the forked child, before exec, with no supplementary group, so no
 * io_uring of this process ever runs as the user), and becomes its thin supervisor: our
 * signals are passed on, and its exit status is ours (its death by a signal, the same
 * death). The same script path or link name (argv[1]) keeps the personality. `fds` are
 * inherited as descriptors 3, 4, ...; `env` is added to the child's environment. Never
 * resolves: this process exits when the child does.
 */
export function runAs(u: UserEntry, o: { fds?: number[]; env?: Record<string, string>; prefix?: string[] } = {}): Promise<never> {
  const script = process.argv[1] as string;
  const argv = [...process.execArgv, script, ...process.argv.slice(2)];
  const [cmd, ...args] = o.prefix ? [...o.prefix, process.execPath, ...argv] : [process.execPath, ...argv];
  const child = spawn(cmd as string, args, {
    uid: u.uid, gid: u.gid, stdio: ['inherit', 'inherit', 'inherit', ...(o.fds ?? [])],
    env: { ...process.env, ...o.env, [AS_USER]: String(u.uid) },
  });
  const pass = (signal: NodeJS.Signals) => {
    try {
      child.kill(signal);
    } catch { /* gone already */ }
  };
  for (const s of FORWARDED) process.on(s, pass);
  return new Promise<never>(() => {
    child.on('error', (e) => {
      process.stderr.write(`${basename(script)}: cannot run as the ${u.name} user: ${(e as NodeJS.ErrnoException).code ?? e.message}\n`);
      process.exit(EX.SOFTWARE);
    });
    child.on('exit', (code, signal) => {
      if (signal === null) process.exit(code ?? EX.SOFTWARE);
      for (const s of FORWARDED) process.off(s, pass);
      process.removeAllListeners(signal);
      process.exitCode = 128 + (osConstants.signals[signal] ?? 0);
      process.kill(process.pid, signal); // the same death, for the caller to see
      setTimeout(() => process.exit(), 200).unref(); // a signal whose default is to go on
    });
  });
}

/**
 * Root with `user` set runs queue commands as that user, so the spool never gets root's
 * files: in this process where node allows it, else as a child (runAs) whose status is ours.
 */
export async function becomeDaemonUser(config: Config): Promise<void> {
  const u = daemonUser(config);
  if (startedAs(u) || euid() !== 0 || !u) return;
  if (changesIdentityInProcess()) dropPrivileges(u);
  else await runAs(u);
}

/**
 * Makes the maildrop when missing, checks it, and gives it its owner, the drop group
 * (the setgid helper's: receive/postdrop.ts) and mode 1731: only its owner and the
 * group (the helper) may add a file, nobody else may create, rename or link anything
 * in (others may reach a name: the own-messages socket, the configuration copy).
 */
function maildrop(drop: string, owner: UserEntry | undefined, spool: Config['spool']): void {
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
  const group = dropGroup(postdropPath(spool)) ?? owner?.gid ?? st.gid;
  if (euid() === 0) lchownSync(drop, owner?.uid ?? st.uid, group);
  chmodSync(drop, 0o1731); // an older 1733 maildrop is tightened here
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
    maildrop(config.spool.maildrop, owner, config.spool);
    return true;
  } catch {
    return false;
  }
}

/**
 * The daemon's start, before the drop: makes the spool folder, the maildrop and the main
 * log's folder when missing and gives them their owner (`owner`, when root) and modes.
 * Root acts by name only where nobody else can swap a name (rootHolds); what the daemon's
 * user owns is tidied by that user after the drop (tidySpool), and the log opened then.
 */
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

/**
 * Whether root may act by name on what `dir` holds: `dir` and every folder above it are
 * root's, and none may be written by anyone else (but for sticky ones such as /tmp, where
 * others cannot move root's entries). Anywhere else the daemon's user (or another) could
 * swap a name for a link between root's look and root's act.
 */
function rootHolds(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    let st: Stats;
    try {
      st = lstatSync(d);
    } catch {
      return false;
    }
    if (!st.isDirectory() || st.uid !== 0) return false;
    if ((st.mode & 0o022) !== 0 && (d === dir || (st.mode & 0o1000) === 0)) return false;
    if (d === dirname(d)) return true;
  }
}

/**
 * Root gives `path` (a file of root's with one name, or a link itself) to `owner`, with
 * `mode`; a file with more names is left as it is (one may be outside the spool). Only
 * called on what a folder root holds (rootHolds) contains.
 */
function giveAway(path: string, owner: UserEntry, mode?: number): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) lchownSync(path, owner.uid, owner.gid); // the delivery lock: the link itself
  if (!st.isFile() && !st.isDirectory()) return;
  if (st.uid !== 0 || (st.isFile() && st.nlink !== 1)) return;
  lchownSync(path, owner.uid, owner.gid);
  if (mode !== undefined) chmodSync(path, mode);
}

function setUp(config: Config, owner: UserEntry | undefined, at: (path: string) => void): void {
  const root = euid() === 0;
  const spool = config.spool.directory;
  at(spool);
  mkdirSync(spool, { recursive: true, mode: 0o700 });
  if (!statSync(spool).isDirectory()) throw failure(`the spool folder ${spool} is not a folder`);
  if (root && owner) handOverSpool(spool, owner, at);

  at(config.spool.maildrop);
  maildrop(config.spool.maildrop, owner, config.spool);

  // The main log is opened by the daemon after the drop (log/mainlog.ts), as Exim does:
  // here root only makes its folder, and gives the daemon's user a log of root's in a
  // folder root holds (a daemon run as root before `user` was set).
  const log = config.log.file;
  const logDir = dirname(log);
  at(log);
  if (!existsSync(logDir)) {
    mkdirSync(logDir, { recursive: true, mode: 0o750 });
    if (root && owner) giveFolder(logDir, owner, 0o750);
  }
  const ds = statSync(logDir);
  // A folder others may write would let them swap the log for a link to any file.
  if (root && (ds.mode & 0o002) !== 0) throw failure(`the main log's folder ${logDir} is writable by every user; choose a private folder for log.file`);
  if (root && owner && rootHolds(logDir) && lstatSync(log, { throwIfNoEntry: false })?.uid === 0) giveAway(log, owner, 0o640);
}

/**
 * Root hands the spool folder to the daemon's user. A folder root still holds (a spool
 * of a daemon that ran as root, or an older postern's) is tidied first, while nobody
 * else can change it; then it is given away. Root never looks into the folder once the
 * daemon's user has it: tidySpool does that, as that user, after the drop.
 */
function handOverSpool(spool: string, owner: UserEntry, at: (path: string) => void): void {
  if (rootHolds(spool)) {
    for (const name of readdirSync(spool)) {
      const path = join(spool, name);
      at(path);
      const st = lstatSync(path);
      // Big bodies' files, made by a daemon that ran as root before `user` was set.
      if (name === 'bodies' && rootHolds(path)) for (const f of readdirSync(path)) giveAway(join(path, f), owner, 0o600);
      giveAway(path, owner, st.isFile() ? 0o600 : undefined);
    }
  }
  at(spool);
  giveFolder(spool, owner, 0o700);
}

/**
 * Root gives the folder `path` to `owner` with `mode`, through a descriptor: a link
 * swapped in for it is refused (O_NOFOLLOW), and a folder of someone else's is named.
 */
function giveFolder(path: string, owner: UserEntry, mode: number): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (st.uid !== 0 && st.uid !== owner.uid) throw failure(`the folder ${path} belongs to ${userName(st.uid)}, not to root or the ${owner.name} user`);
    fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/**
 * After the drop, as the daemon's user (or as whoever runs the daemon): the spool folder
 * 0700 and its files 0600 (an older postern made them 0755 and 0644). Only what is this
 * process's own, in a folder that is its own and nobody else's to write.
 */
export function tidySpool(config: Config): void {
  const me = euid();
  const spool = config.spool.directory;
  try {
    const fd = openSync(spool, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      if (fstatSync(fd).uid !== me) return;
      fchmodSync(fd, 0o700);
    } finally {
      closeSync(fd);
    }
    // Root (no `user`) goes in only where no one else can swap a name.
    if (me === 0 && !rootHolds(spool)) return;
    for (const name of readdirSync(spool)) {
      const path = join(spool, name);
      const f = lstatSync(path, { throwIfNoEntry: false });
      if (f?.isFile() && f.uid === me && f.nlink === 1 && (f.mode & 0o077) !== 0) chmodSync(path, 0o600);
    }
  } catch { /* best effort: a spool that cannot be tidied still opens, or says why */ }
}
