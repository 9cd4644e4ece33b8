// config/validate.ts: checks a parsed TOML file against the schema and the rules the
// schema cannot say (retry syntax, AUTH needs TLS), resolves relative paths, and names
// file, line and key in every error. Loads zod, so it is imported only when the
// validated-configuration cache (load.ts) does not already hold this exact file.
import { hostname as osHostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { configSchema, type Config } from './schema.js';
import { ConfigError } from './load.js';
import { parseRetryRules } from '../scheduler/retry-rules.js';

/** The 1-based line where `key` (a dotted path) is set, for error messages. */
export function lineOfKey(text: string, path: (string | number)[]): number | undefined {
  const keys = path.filter((p): p is string => typeof p === 'string');
  if (keys.length === 0) return undefined;
  const lines = text.split('\n');
  const leaf = keys[keys.length - 1] as string;
  const table = keys.slice(0, -1).join('.');
  let current = '';
  let tableLine: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    const header = /^\[([^\]]+)\]/.exec(line);
    if (header) {
      current = (header[1] as string).trim();
      if (current === keys.join('.')) tableLine = i + 1;
      continue;
    }
    const m = /^([A-Za-z0-9_-]+)\s*=/.exec(line);
    if (m && m[1] === leaf && current === table) return i + 1;
    if (m && table === '' && current === '' && m[1] === leaf) return i + 1;
  }
  return tableLine;
}

export function parseConfig(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0];
      throw new ConfigError(`configuration error in ${file} line ${err.line}: ${first}`);
    }
    throw err;
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    let path = issue.path as (string | number)[];
    // For an unknown key zod reports the table; name the key itself.
    if (issue.code === 'unrecognized_keys' && issue.keys.length) path = [...path, issue.keys[0] as string];
    const key = path.filter((p) => typeof p === 'string').join('.') || '(top level)';
    const line = lineOfKey(text, path);
    const where = line ? ` line ${line}` : '';
    const msg = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
    throw new ConfigError(`configuration error in ${file}${where}: ${key}: ${msg}`);
  }
  const c = result.data;
  const base = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const fail = (path: string[], msg: string): never => {
    const line = lineOfKey(text, path);
    throw new ConfigError(`configuration error in ${file}${line ? ` line ${line}` : ''}: ${path.join('.')}: ${msg}`);
  };
  try {
    parseRetryRules(c.retry.rules);
  } catch (err) {
    fail(['retry', 'rules'], (err as Error).message);
  }
  if (c.smarthost.auth_user !== undefined) {
    if (c.smarthost.tls === 'none') fail(['smarthost', 'auth_user'], 'AUTH needs TLS: set tls to "opportunistic", "required" or "implicit"');
    if (c.smarthost.auth_password_file === undefined) fail(['smarthost', 'auth_user'], 'auth_password_file must be set too');
  }
  const hostname = c.hostname ?? osHostname();
  return {
    ...c,
    file,
    hostname,
    qualify_domain: c.qualify_domain ?? hostname,
    spool: { directory: abs(c.spool.directory) },
    log: { ...c.log, file: abs(c.log.file) },
    smarthost: {
      ...c.smarthost,
      ...(c.smarthost.tls_ca_file !== undefined ? { tls_ca_file: abs(c.smarthost.tls_ca_file) } : {}),
      ...(c.smarthost.auth_password_file !== undefined ? { auth_password_file: abs(c.smarthost.auth_password_file) } : {}),
    },
  };
}
