// config/load.ts: finds the configuration file (-C, $POSTERN_CONFIG, /etc, the
// package's development default) and returns the validated configuration. Validation
// (zod, about 80 ms to load) runs only when the file changed: the result is kept in
// the spool folder as config.cache.json, keyed by postern's version and the file's
// name and text, with a copy in the maildrop (.config.cache.json, readable by name) for
// the users who cannot enter the private spool folder. A fresh cache is found and
// checked without the TOML parser or node:crypto (a line scan finds the spool folder,
// a 128-bit FNV-1a hash checks the text), so `sendmail` starts almost as fast as bare node.
// Every failure is a ConfigError naming file, line and key: never a stack trace.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { version } from '../core/version.js';
import { ConfigError } from './errors.js';
import type { Config } from './schema.js';

// node:fs by process.getBuiltinModule: an ESM `import` of it builds its whole facade
// (fs/promises, streams, readline: 1.5 ms of sendmail's start).
const { closeSync, constants, existsSync, fchmodSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } = process.getBuiltinModule('node:fs');

export { ConfigError };

const PACKAGE_DEFAULT = resolve(dirname(fileURLToPath(import.meta.url)), '../../config/postern.toml');
// 3: retry.rules are parsed values; 4: smarthost.probe_interval; 5: [rewrite]; 6: keyed without sha256;
// 7: the file's name and text kept in the cache and compared whole; 8: rewrite.local_domains, rewrite.aliases;
// 9: [limits].
const CACHE_VERSION = 9;

/** postern's version, part of the cache's key: an upgrade validates again. */
const packageVersion = version;

/**
 * The cache's key: a 128-bit hash (four FNV-1a lanes) of the cache format, postern's
 * version, the file's name and its whole text. A quick first test only: FNV is no
 * cryptographic hash, so a cache is believed when the name and text it keeps are the
 * file's, byte for byte (copiesAt); who may write a cache is checked on its owner
 * (readTrusted).
 */
export function cacheKey(file: string, text: string): string {
  const s = `${CACHE_VERSION}\0${packageVersion()}\0${file}\0${text}`;
  // One pass, four lanes (this runs before the JIT has warmed up: sendmail's start).
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  let c = 0x3b1a2e4d;
  let d = 0x6f4e3c2b;
  for (let i = 0; i < s.length; i++) {
    const x = s.charCodeAt(i);
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x ^ 0x10000, 0x01000193);
    c = Math.imul(c ^ x ^ 0x20000, 0x01000193);
    d = Math.imul(d ^ x ^ 0x30000, 0x01000193);
  }
  return [a, b, c, d].map((h) => (h >>> 0).toString(16).padStart(8, '0')).join('') + `:${s.length}`;
}

function findConfigFile(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.POSTERN_CONFIG) return resolve(process.env.POSTERN_CONFIG);
  if (existsSync('/etc/postern/postern.toml')) return '/etc/postern/postern.toml';
  return PACKAGE_DEFAULT;
}

/** The maildrop's copy of the cache; the pickup leaves files of this name alone when they are root's or its own. */
export const DROP_CACHE = '.config.cache.json';

/**
 * sendmail's fast front end's settings (src/postdrop/sendmail.c), beside the maildrop's
 * cache (its name starts with DROP_CACHE's, so the pickup leaves it alone): flat
 * `key=value` lines a C program reads without a JSON parser, then the configuration's
 * text, which it compares byte for byte with the file's; believed on the same terms as
 * the cache (root's, the reader's own, or, for a reader other than root, the
 * maildrop owner's). Root writes its own: it believes no one else's.
 */
const SENDMAIL_SETTINGS = `${DROP_CACHE}.sendmail`;

function sendmailSettings(config: Config, source: { file: string; text: string }): string | undefined {
  const values: [string, string][] = [['version', packageVersion()], ['file', source.file], ['maildrop', config.spool.maildrop],
    ['postdrop', config.spool.postdrop ?? ''], ['max_message_size', String(config.listen.max_message_size)],
    ['max_recipients', String(config.listen.max_recipients)], ['qualify_domain', config.qualify_domain], ['hostname', config.hostname]];
  if (values.some(([, v]) => /[\n\0]/.test(v))) return undefined;
  return `postern-sendmail-config 1\n${values.map(([k, v]) => `${k}=${v}\n`).join('')}text=${Buffer.byteLength(source.text)}\n${source.text}`;
}

/** Where the caches of a validated configuration are: its spool folder, and its maildrop (folder mode 1733: a file there is read by name, and replaced only by the folder's owner). */
function cachePaths(config: Config): { spool: string; drop: string } {
  return { spool: join(config.spool.directory, 'config.cache.json'), drop: join(config.spool.maildrop, DROP_CACHE) };
}

/**
 * Where the caches of this file should be, found without the TOML parser: a line scan
 * for `directory` and `maildrop` in the [spool] table (plain one-line strings). Only a
 * guess: a cache found there is believed when its key matches the whole text, and a
 * wrong guess is a miss (the caches are written where the validated file says).
 */
function guessCachePaths(file: string, text: string): { spool: string; drop: string } {
  const found: { directory?: string; maildrop?: string } = {};
  let table = '';
  for (const line of text.split('\n')) {
    const header = /^\s*\[\[?\s*([^\]]*?)\s*\]/.exec(line);
    if (header) {
      table = header[1] as string;
      continue;
    }
    const key = table === 'spool' ? /^\s*(directory|maildrop)\s*=/.exec(line) : table === '' ? /^\s*spool\.(directory|maildrop)\s*=/.exec(line) : null;
    if (!key) continue;
    const value = /^\s*(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?\r?$/.exec(line.slice(key[0].length));
    if (value) found[key[1] as 'directory' | 'maildrop'] = value[1] ?? value[2];
  }
  const base = dirname(file);
  const directory = found.directory ?? '/var/spool/postern';
  const spool = resolve(base, directory);
  const drop = found.maildrop !== undefined ? resolve(base, found.maildrop) : resolve(base, `${directory.replace(/\/+$/, '')}-maildrop`);
  return { spool: join(spool, 'config.cache.json'), drop: join(drop, DROP_CACHE) };
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
const MAX_CONFIG_SIZE = 1024 * 1024;

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
    const buf = Buffer.allocUnsafe(MAX_CONFIG_SIZE + 1); // only the bytes read are used
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

/**
 * A new file of our own (O_EXCL: never through a link someone left there), renamed into
 * place. Its mode is set on its own descriptor: a chmod by name would follow a symlink
 * the folder's owner (the daemon's user) swapped in meanwhile, and make root chmod
 * another file.
 */
function writeAside(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    writeFileSync(fd, data);
    fchmodSync(fd, 0o644); // readable by all whatever the umask (the daemon's is 027)
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** What a cache is for: the key, and the file's name and text it must keep to be believed. */
type Source = { key: string; file: string; text: string };
type Found = { source: Source; guess: { spool: string; drop: string }; at: ReturnType<typeof copiesAt>; config?: Config };

/** The fresh cache of this text, if any: its key, where it was looked for, and the configuration. */
function lookUp(file: string, text: string): Found {
  const source = { key: cacheKey(file, text), file, text };
  const guess = guessCachePaths(file, text);
  const at = copiesAt(guess, source);
  const config = at.inSpool ?? at.inDrop;
  return config ? { source, guess, at, config } : { source, guess, at };
}

/** What the copies at `paths` hold for this file and text, each believed only from whom it may come. */
function copiesAt(paths: { spool: string; drop: string }, source: Source) {
  const fresh = (cached: string | undefined): Config | undefined => {
    if (cached === undefined) return undefined;
    try {
      const stored = JSON.parse(cached) as { key?: unknown; file?: unknown; text?: unknown; config: Config };
      return stored.key === source.key && stored.file === source.file && stored.text === source.text ? stored.config : undefined;
    } catch {
      return undefined; // unreadable: validate
    }
  };
  const me = process.getuid?.() ?? 0;
  const dropOwner = ownerOf(dirname(paths.drop));
  const inSpool = fresh(readTrusted(paths.spool));
  // The maildrop's copy names the maildrop it lies in, or it is not believed: its owner
  // must not send a user's mail (or the choice of setgid helper) to another folder.
  const inOwnDrop = (c: Config | undefined) => (c && resolve(c.spool.maildrop) === dirname(paths.drop) ? c : undefined);
  const dropFresh = inOwnDrop(fresh(readTrusted(paths.drop, dropOwner)));
  // Root never believes a file of the daemon's user: that user must not be able to
  // choose, say, the log file root's commands append to.
  const inDrop = me !== 0 ? dropFresh : fresh(readTrusted(paths.drop));
  return { me, dropOwner, inSpool, dropFresh, inDrop };
}

/** Writes the copies of a validated configuration that are missing or stale and are ours to write. */
function keepCopies(config: Config, found: Found): void {
  const paths = cachePaths(config);
  const at = paths.spool === found.guess.spool && paths.drop === found.guess.drop ? found.at : copiesAt(paths, found.source);
  const data = JSON.stringify({ ...found.source, config });
  if (!at.inSpool) {
    try {
      // The daemon's first start comes before the spool exists: make its folder.
      mkdirSync(dirname(paths.spool), { recursive: true, mode: 0o700 });
      writeAside(paths.spool, data);
    } catch { /* the spool may not exist yet or not be ours to write: fine */ }
  }
  // Only the maildrop's owner (or root) writes its copy: nobody else's is believed.
  if (!at.dropFresh && at.dropOwner !== undefined && (at.me === 0 || at.me === at.dropOwner)) {
    try {
      writeAside(paths.drop, data);
    } catch { /* next time */ }
  }
  if (at.dropOwner !== undefined && (at.me === 0 || at.me === at.dropOwner)) {
    const settings = sendmailSettings(config, found.source);
    const path = join(config.spool.maildrop, SENDMAIL_SETTINGS);
    if (settings !== undefined && readTrusted(path) !== settings) {
      try {
        writeAside(path, settings);
      } catch { /* next time */ }
    }
  }
}

/**
 * The configuration when a fresh cache holds it, without validating (nor loading the
 * validator); undefined when there is none or the file cannot be read, for loadConfig
 * to validate and say what is wrong. sendmail's fast start (cli/submit.ts) uses it.
 */
export function cachedConfig(explicit?: string): Config | undefined {
  try {
    const file = findConfigFile(explicit);
    const found = lookUp(file, readConfigText(file));
    if (found.config) keepCopies(found.config, found);
    return found.config;
  } catch {
    return undefined;
  }
}

/**
 * parseConfig in a worker thread (validate-worker.ts): the validator's modules die with
 * the worker instead of staying in a long-lived process. The same result or
 * ConfigError. A worker that cannot start or dies without an answer (no threads left:
 * ulimit -u, TasksMax) is no reason to refuse a good file: it is validated here instead.
 */
async function validateApart(text: string, file: string): Promise<Config> {
  const answer = await new Promise<{ config?: Config; error?: string; configError?: boolean } | undefined>((resolve) => {
    let got: { config?: Config; error?: string; configError?: boolean } | undefined;
    try {
      const worker = new Worker(new URL('./validate-worker.js', import.meta.url), { workerData: { text, file } });
      worker.once('message', (m: typeof got) => { got = m; });
      worker.once('error', () => resolve(undefined));
      worker.once('exit', () => resolve(got));
    } catch {
      resolve(undefined);
    }
  });
  if (answer?.config) return answer.config;
  if (answer?.error !== undefined && answer.configError) throw new ConfigError(answer.error);
  return (await import('./validate.js')).parseConfig(text, file);
}

/**
 * The configuration, from a fresh cache or validated. `keep: false` for the queries
 * (-bV, -bP, -bt, -brt, exigrep): they read a cache but write none, nor make the spool
 * folder that holds it; a query on any file leaves no trace. `keep` may be asked once
 * the file is validated (a daemon's reload overtaken by a later one keeps none).
 * `apart: true` (the daemon) validates in a worker thread (validateApart).
 */
export async function loadConfig(explicit?: string, { keep = true, apart = false }: { keep?: boolean | (() => boolean); apart?: boolean } = {}): Promise<Config> {
  const file = findConfigFile(explicit);
  const text = readConfigText(file);
  const found = lookUp(file, text);
  let config = found.config;
  if (!config && apart) config = await validateApart(text, file);
  if (!config) {
    const { parseConfig } = await import('./validate.js');
    config = parseConfig(text, file);
  }
  if (typeof keep === 'function' ? keep() : keep) keepCopies(config, found);
  return config;
}
