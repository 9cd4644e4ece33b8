// config/validate.ts: checks a parsed TOML file against the schema and the rules the
// schema cannot say (retry syntax, AUTH needs TLS), resolves relative paths, and names
// file, line and key in every error. Loads zod, so it is imported only when the
// validated-configuration cache (load.ts) does not already hold this exact file.
import { hostname as osHostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { configSchema, type Config } from './schema.js';
import { ConfigError } from './errors.js';
import { parseRetryRules, type RetryRule } from '../core/retry-rules.js';

/** Each `key = value` line of a TOML text with the full dotted path it sets, and each table header. */
function keyLines(text: string): { path: string; line: number; header: boolean }[] {
  const out: { path: string; line: number; header: boolean }[] = [];
  let table = '';
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?/.exec(line);
    if (header) {
      table = (header[1] as string).replace(/\s*\.\s*/g, '.');
      out.push({ path: table, line: i + 1, header: true });
      return;
    }
    const m = /^([A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=/.exec(line);
    if (m) out.push({ path: (table ? `${table}.` : '') + (m[1] as string).replace(/\s*\.\s*/g, '.'), line: i + 1, header: false });
  });
  return out;
}

/**
 * The 1-based line where `path` is set, for error messages: the key's own line, else
 * the line that sets its nearest parent (an inline table), else its table's header.
 */
function lineOfKey(text: string, path: (string | number)[]): number | undefined {
  const keys = path.filter((p): p is string => typeof p === 'string');
  const lines = keyLines(text);
  for (let n = keys.length; n > 0; n--) {
    const want = keys.slice(0, n).join('.');
    const hit = lines.find((l) => l.path === want);
    if (hit) return hit.line;
  }
  return undefined;
}

/** The dotted key assigned (or the table opened) on a given line, for syntax errors. */
function keyAtLine(text: string, line: number): string | undefined {
  return keyLines(text).find((l) => l.line === line)?.path;
}

export function parseConfig(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const first = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
      const key = keyAtLine(text, err.line);
      throw new ConfigError(`configuration error in ${file} line ${err.line}: ${key ? `${key}: ` : ''}TOML syntax error: ${first}`);
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
    let line = lineOfKey(text, path);
    let msg = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
    if (line === undefined) {
      // Nothing names it: a required table or key that is missing. Point at the end
      // of the file, where it would go.
      line = Math.max(1, text.split('\n').length - (text.endsWith('\n') ? 1 : 0));
      if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
        msg = path.length === 1 ? `the [${key}] table is missing` : 'is missing';
      }
    }
    const where = ` line ${line}`;
    throw new ConfigError(`configuration error in ${file}${where}: ${key}: ${msg}`);
  }
  const c = result.data;
  const base = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const fail = (path: string[], msg: string): never => {
    const line = lineOfKey(text, path);
    throw new ConfigError(`configuration error in ${file}${line ? ` line ${line}` : ''}: ${path.join('.')}: ${msg}`);
  };
  // Parsed once, here: the configuration carries the rules as values.
  let rules: RetryRule[] = [];
  try {
    rules = parseRetryRules(c.retry.rules);
  } catch (err) {
    // Name the line of the rule itself when the array spans lines.
    const at = lineOfKey(text, ['retry', 'rules']);
    const bad = c.retry.rules[Number(/^rule (\d+):/.exec((err as Error).message)?.[1] ?? 1) - 1] ?? '';
    const lines = text.split('\n');
    const own = at === undefined ? -1 : lines.findIndex((l, i) => i >= at - 1 && bad !== '' && l.includes(bad));
    const line = own >= 0 ? own + 1 : at;
    throw new ConfigError(`configuration error in ${file}${line ? ` line ${line}` : ''}: retry.rules: ${(err as Error).message}`);
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
    spool: { directory: abs(c.spool.directory), maildrop: abs(c.spool.maildrop ?? `${c.spool.directory.replace(/\/+$/, '')}-maildrop`),
      ...(c.spool.postdrop !== undefined ? { postdrop: abs(c.spool.postdrop) } : {}) },
    log: { ...c.log, file: abs(c.log.file) },
    rewrite: { ...c.rewrite, ...(c.rewrite.email_addresses !== undefined ? { email_addresses: abs(c.rewrite.email_addresses) } : {}),
      ...(c.rewrite.aliases !== undefined ? { aliases: abs(c.rewrite.aliases) } : {}) },
    retry: { ...c.retry, rules },
    smarthost: {
      ...c.smarthost,
      ...(c.smarthost.tls_ca_file !== undefined ? { tls_ca_file: abs(c.smarthost.tls_ca_file) } : {}),
      ...(c.smarthost.auth_password_file !== undefined ? { auth_password_file: abs(c.smarthost.auth_password_file) } : {}),
    },
  };
}
