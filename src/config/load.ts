// config/load.ts: finds the configuration file (-C, $POSTERN_CONFIG, /etc, the
// package's development default) and returns the validated configuration. Validation
// (zod, about 80 ms to load) runs only when the file changed: the result is kept in
// the spool folder as config.cache.json, keyed by a hash of the file, with a copy in
// the maildrop (.config.cache.json, readable by name) for the users who cannot enter
// the private spool folder, so `sendmail` starts almost as fast as bare node.
// Every failure is a ConfigError naming file, line and key: never a stack trace.
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { ConfigError } from './errors.js';
import type { Config } from './schema.js';

export { ConfigError };

const PACKAGE_DEFAULT = resolve(dirname(fileURLToPath(import.meta.url)), '../../config/postern.toml');
// 3: retry.rules are parsed values; 4: smarthost.probe_interval; 5: [rewrite].
const CACHE_VERSION = 5;

export function findConfigFile(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.POSTERN_CONFIG) return resolve(process.env.POSTERN_CONFIG);
  if (existsSync('/etc/postern/postern.toml')) return '/etc/postern/postern.toml';
  return PACKAGE_DEFAULT;
}

/** The maildrop's copy of the cache; the pickup leaves files of this name alone when they are root's or its own. */
export const DROP_CACHE = '.config.cache.json';

/**
 * Where the validated form of this file is kept: in its spool folder (for root and the
 * daemon's user), and a copy in its maildrop for everyone else (folder mode 1733: a
 * file there is read by name, and replaced only by the folder's owner).
 */
function cachePaths(file: string, text: string): { spool: string; drop: string } | undefined {
  try {
    const raw = parse(text) as { spool?: { directory?: unknown; maildrop?: unknown } };
    const base = dirname(file);
    const dir = resolve(base, typeof raw.spool?.directory === 'string' ? raw.spool.directory : '/var/spool/postern');
    const drop = typeof raw.spool?.maildrop === 'string' ? resolve(base, raw.spool.maildrop) : `${dir}-maildrop`;
    return { spool: join(dir, 'config.cache.json'), drop: join(drop, DROP_CACHE) };
  } catch {
    return undefined; // a syntax error: validation will name it
  }
}

function ownerOf(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch {
    return undefined;
  }
}

/**
 * Only a cache written by root, by ourselves or (for the maildrop's copy) by the
 * maildrop's owner, and writable by nobody else, is believed: a user who may write
 * where it lies must not be able to hand the daemon a configuration of their own.
 */
function readTrusted(path: string, trusted?: number): string | undefined {
  let fd: number | undefined;
  try {
    // One descriptor, no symlinks: what is checked is what is read.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = fstatSync(fd);
    const me = process.getuid?.() ?? 0;
    if (!st.isFile() || !(st.uid === 0 || st.uid === me || st.uid === trusted) || (st.mode & 0o022) !== 0) return undefined;
    return readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A configuration file is small: anything larger is a mistake (-C /dev/zero, a log file). */
export const MAX_CONFIG_SIZE = 1024 * 1024;

/**
 * The file's text, read from one descriptor: a regular file of at most MAX_CONFIG_SIZE
 * bytes. A FIFO is opened without blocking and refused, as are devices and folders.
 */
function readConfigText(file: string): string {
  let fd: number | undefined;
  const fail = (why: string) => new ConfigError(`cannot read configuration file ${file}: ${why}`);
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (st.isDirectory()) throw fail('it is a directory');
    if (!st.isFile()) throw fail('it is not a regular file');
    const buf = Buffer.alloc(MAX_CONFIG_SIZE + 1);
    let len = 0;
    for (let n; len < buf.length && (n = readSync(fd, buf, len, buf.length - len, null)) > 0;) len += n;
    if (len > MAX_CONFIG_SIZE) throw fail(`it is too large (over ${MAX_CONFIG_SIZE / 1024 / 1024} MB)`);
    return buf.toString('utf8', 0, len);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw fail(e.code === 'EISDIR' ? 'it is a directory' : e.code ?? e.message);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A new file of our own (O_EXCL: never through a link someone left there), renamed into place. */
function writeAside(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, data, { mode: 0o644, flag: 'wx' });
  chmodSync(tmp, 0o644); // readable by all whatever the umask (the daemon's is 027)
  renameSync(tmp, path);
}

export async function loadConfig(explicit?: string): Promise<Config> {
  const file = findConfigFile(explicit);
  const text = readConfigText(file);
  const hash = createHash('sha256').update(`${CACHE_VERSION}\0${file}\0${text}`).digest('hex');
  const cache = cachePaths(file, text);
  const dropOwner = cache ? ownerOf(dirname(cache.drop)) : undefined;
  const fresh = (cached: string | undefined): Config | undefined => {
    if (cached === undefined) return undefined;
    try {
      const stored = JSON.parse(cached) as { hash: string; config: Config };
      return stored.hash === hash ? stored.config : undefined;
    } catch {
      return undefined; // unreadable: validate
    }
  };
  const inSpool = cache ? fresh(readTrusted(cache.spool)) : undefined;
  // Root never believes a file of the daemon's user: that user must not be able to
  // choose, say, the log file root's commands append to.
  const me = process.getuid?.() ?? 0;
  const dropFresh = cache ? fresh(readTrusted(cache.drop, dropOwner)) : undefined;
  const inDrop = me !== 0 ? dropFresh : cache ? fresh(readTrusted(cache.drop)) : undefined;
  let config = inSpool ?? inDrop;
  if (!config) {
    const { parseConfig } = await import('./validate.js');
    config = parseConfig(text, file);
  }
  if (cache) {
    const data = JSON.stringify({ hash, config });
    if (!inSpool) {
      try {
        // The daemon's first start comes before the spool exists: make its folder.
        mkdirSync(dirname(cache.spool), { recursive: true, mode: 0o700 });
        writeAside(cache.spool, data);
      } catch { /* the spool may not exist yet or not be ours to write: fine */ }
    }
    // Only the maildrop's owner (or root) writes its copy: nobody else's is believed.
    if (!dropFresh && dropOwner !== undefined && (me === 0 || me === dropOwner)) {
      try {
        writeAside(cache.drop, data);
      } catch { /* next time */ }
    }
  }
  return config;
}
