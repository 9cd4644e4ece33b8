// rewrite/load.ts: the rewrite rules of a configuration: reads and checks the
// `rewrite.email_addresses` file (Debian's /etc/email-addresses: `user: address` lines,
// `#` comments, blank lines) each time the rules are built (start, SIGHUP, -q, -bV), so
// an edit to it is seen without touching postern.toml. A bad line is a ConfigError
// naming the file and the line.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { RewriteRules } from './rewriter.js';

/** A byte string (one char per byte) holding the UTF-8 of `s`: how headers are held. */
const bytes = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

/** An address as a value: local@domain, no blanks, brackets, commas or quotes around it. */
const ADDRESS = /^[^\s@<>(),;:"]+(?:\.[^\s@<>(),;:"]+)*@[A-Za-z0-9\x80-\uffff](?:[A-Za-z0-9\x80-\uffff.-]*[A-Za-z0-9\x80-\uffff])?$/;

/**
 * The entries of an email-addresses file: local part (lower case, as bytes) → address
 * (as bytes). Lines as lsearch reads them: `key: value` (the colon may be left out),
 * the key quoted when it must be; a line starting with a blank continues the one before.
 */
export function parseEmailAddresses(text: string, file: string): Map<string, string> {
  const map = new Map<string, string>();
  const lines = text.split('\n');
  const fail = (line: number, why: string): never => {
    throw new ConfigError(`configuration error in ${file} line ${line}: ${why}`);
  };
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).replace(/\r$/, '');
    const number = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^\s/.test(line)) fail(number, 'a continuation line with no entry before it');
    // Continuation lines of this entry.
    while (i + 1 < lines.length && /^[ \t]+\S/.test(lines[i + 1] as string) && !/^\s*#/.test(lines[i + 1] as string)) {
      line += ` ${(lines[++i] as string).trim()}`;
    }
    const m = /^(?:"((?:[^"\\]|\\.)*)"|([^\s:"]+))\s*:?\s*(.*?)\s*$/.exec(line);
    if (!m) return fail(number, `"${line}" is not "user: address"`);
    const key = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string);
    const value = (m[3] as string).replace(/^<(.*)>$/, '$1');
    if (value === '') return fail(number, `no address for "${key}"`);
    if (!ADDRESS.test(value)) return fail(number, `"${value}" is not an address (user: someone@example.org)`);
    const k = bytes(key).toLowerCase();
    // lsearch takes the first line for a key; a second one is a mistake worth naming.
    if (map.has(k)) return fail(number, `"${key}" is listed twice`);
    map.set(k, bytes(value));
  }
  return map;
}

/** The rules for a configuration; undefined when it asks for no rewriting. Throws ConfigError. */
export function rewriteRules(config: Pick<Config, 'hostname' | 'qualify_domain' | 'rewrite'>, passwd = '/etc/passwd'): RewriteRules | undefined {
  const r = config.rewrite;
  const readhost = r.readhost !== undefined && r.hide_hostname ? r.readhost : undefined;
  let emailAddresses = new Map<string, string>();
  if (r.email_addresses !== undefined) {
    let text: string;
    try {
      text = readFileSync(r.email_addresses, 'utf8');
    } catch (err) {
      throw new ConfigError(`configuration error: rewrite.email_addresses: cannot read ${r.email_addresses}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    emailAddresses = parseEmailAddresses(text, r.email_addresses);
  }
  if (r.readhost === undefined && emailAddresses.size === 0) return undefined;
  const localDomains = [...new Set([config.hostname, config.qualify_domain, 'localhost', ...r.local_domains]
    .map((d) => d.toLowerCase().replace(/\.$/, '')))];
  // hub_user's check_local_user: the logins of this machine, read once per build (start, SIGHUP).
  const hubUser = r.readhost !== undefined ? {
    readhost: r.readhost.toLowerCase(), users: localUsers(passwd), qualifyDomain: config.qualify_domain.toLowerCase(),
    ...(r.aliases !== undefined ? { aliases: singleAliases(readAliases(r.aliases)) } : {}),
  } : undefined;
  return { localDomains, emailAddresses, ...(readhost !== undefined ? { readhost: readhost.toLowerCase() } : {}), ...(hubUser ? { hubUser } : {}) };
}

/** The entries of an aliases file (`name: target, target`, `#` comments, blank-led continuation lines): name (lower case) → targets. */
export function parseAliases(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const raw of text.replace(/\n[ \t]+(?=\S)/g, ' ').split('\n')) {
    const x = /^\s*([^#:\s][^:]*?)\s*:\s*(.*?)\s*$/.exec(raw);
    if (x && !m.has((x[1] as string).toLowerCase())) m.set((x[1] as string).toLowerCase(), (x[2] as string).split(',').map((t) => t.trim()).filter(Boolean));
  }
  return m;
}

/** Whether an alias target is one address (`jane`, `ops@example.net`, `<ops@example.net>`), not a pipe, file, include or :fail:. */
export function plainTarget(t: string): boolean {
  return /^<?[^\s|/:"<>,]+>?$/.test(t) && !t.startsWith(':');
}

/** The aliases postern follows: one plain target each (the rest stays with the hub; postern install names them). */
function singleAliases(all: Map<string, string[]>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of all) if (v.length === 1 && plainTarget(v[0] as string)) m.set(k, (v[0] as string).replace(/^<(.*)>$/, '$1'));
  return m;
}

function readAliases(file: string): Map<string, string[]> {
  try {
    return parseAliases(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`configuration error: rewrite.aliases: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The login names in a passwd file, lower case (Exim matches local parts caselessly). */
function localUsers(passwd = '/etc/passwd'): Set<string> {
  let text = '';
  try {
    text = readFileSync(passwd, 'utf8');
  } catch { /* no passwd: no local users */ }
  return new Set(text.split('\n').map((l) => l.split(':')[0]?.trim().toLowerCase() ?? '').filter((n) => n && !n.startsWith('#')));
}
