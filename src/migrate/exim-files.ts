// migrate/exim-files.ts: reads the files of a Debian Exim satellite under a root folder, in
// Exim's own syntax: shell variables (update-exim4.conf.conf), lists (`;`, `:` with `::`,
// `<;`), host and port forms (`host::port`, `::smtps`, `127.0.0.1.2525`), macros and
// main options, /etc/aliases, and the host name as Exim qualifies it. No policy: what
// each setting becomes on postern is exim-import.ts's.
import { readdirSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';

export function read(root: string, path: string): string | undefined {
  try {
    return readFileSync(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
}

/** `key='value'` lines of a shell variables file (Debian's update-exim4.conf.conf). */
export function parseShellVars(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(?:'([^']*)'|"([^"]*)"|(\S*))/.exec(line);
    if (m) vars.set(m[1] as string, m[2] ?? m[3] ?? m[4] ?? '');
  }
  return vars;
}

/** Exim's list: `;`-separated, or (older files) `:`-separated where `::` is not a separator. */
export function eximList(value: string): string[] {
  const parts = value.includes(';') ? value.split(';') : value.split(/(?<!:):(?!:)/);
  return parts.map((s) => s.trim()).filter(Boolean);
}

/** Exim's port names (as /etc/services gives them): smtp, submission, smtps (and its old name ssmtp). */
const SERVICES: Record<string, number> = { smtp: 25, submission: 587, smtps: 465, ssmtp: 465, urd: 465 };

/** A port as Exim takes it: a number or a service name. */
export function portOf(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  const n = /^\d{1,5}$/.test(t) ? Number(t) : SERVICES[t];
  return n !== undefined && n > 0 && n <= 65535 ? n : undefined;
}

/**
 * `host::port`, `[addr]::port`, `host` → postern's `host:port` / `[addr]:port`. The port
 * may be a service name (`::smtps`); with none, the transport's default: 25, or 465
 * when the transport speaks smtps (Exim's `protocol = smtps`).
 */
export function smarthostEntry(entry: string, defaultPort = 25): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s[\]]+))(?:::([A-Za-z0-9]{1,16}))?$/.exec(entry);
  if (!m) return undefined;
  const port = m[3] === undefined ? defaultPort : portOf(m[3]);
  if (port === undefined) return undefined;
  return m[1] !== undefined ? `[${m[1]}]:${port}` : `${m[2]}:${port}`;
}

/** A local_interfaces entry with the daemon's ports: `127.0.0.1`, `::1`, `127.0.0.1.2525`, `[::1]:2525`. */
export function listenEntries(addr: string, ports: number[]): string[] | undefined {
  const dotted = /^([0-9]+(?:\.[0-9]+){3})(?:\.(\d{1,5}))?$/.exec(addr);
  if (dotted) return dotted[2] ? [`${dotted[1]}:${dotted[2]}`] : ports.map((p) => `${dotted[1]}:${p}`);
  const v6port = /^([0-9A-Fa-f:]+)\.(\d{1,5})$/.exec(addr);
  if (v6port && v6port[1]!.includes(':')) return [`[${v6port[1]}]:${v6port[2]}`];
  if (/^[0-9A-Fa-f:]+$/.test(addr) && addr.includes(':')) return ports.map((p) => `[${addr}]:${p}`);
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(addr);
  return m ? [m[1]!.includes(':') ? `[${m[1]}]:${m[2]}` : `${m[1]}:${m[2]}`] : undefined;
}

/** Exim's list syntax: `<; a ; b` (another separator), else `:` with `::` as a literal colon. */
export function optionList(value: string): string[] {
  const sep = /^<\s*(\S)/.exec(value);
  const body = sep ? value.slice(sep[0].length) : value;
  const parts = sep ? body.split(sep[1] as string) : body.split(/(?<!:):(?!:)/).map((x) => x.replace(/::/g, ':'));
  return parts.map((x) => x.trim()).filter(Boolean);
}

/** `*` and `?` of passwd.client's host patterns. */
export function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** A file of Exim's configuration: `NAME = value` macros and `name = value` main options, outside conditionals' meaning. */
export function parseEximSettings(text: string): Map<string, string> {
  const m = new Map<string, string>();
  const lines = text.replace(/\\\n\s*/g, '').split('\n');
  for (const line of lines) {
    const x = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*==?\s*(.*?)\s*$/.exec(line);
    if (x) m.set(x[1] as string, (x[2] as string).replace(/^"(.*)"$/, '$1'));
    else {
      // A boolean main option written bare (`disable_ipv6`, `no_disable_ipv6`); any
      // other line (`domainlist local_domains = ...`) is kept whole, so it is named.
      const b = /^\s*(no_)?([a-z_][a-z0-9_]*)\s*$/.exec(line);
      const t = line.trim();
      if (b) m.set(b[2] as string, b[1] ? 'false' : 'true');
      else if (t && !t.startsWith('#') && !t.startsWith('.')) m.set(t, '');
    }
  }
  return m;
}

/** Debian ships conf.d/main/NN_exim4-config_*; anything else there is the admin's. */
export function adminMainFiles(root: string): string[] {
  try {
    return readdirSync(join(root, '/etc/exim4/conf.d/main')).filter((f) => !/^\d+_exim4-config_/.test(f) && !/\.(dpkg-[a-z]+|ucf-[a-z]+|bak|orig)$|~$/.test(f)).sort()
      .map((f) => `/etc/exim4/conf.d/main/${f}`);
  } catch {
    return [];
  }
}

/** Exim's primary_hostname: uname's name, made fully qualified by the resolver (here: /etc/hosts) when it has no dot. */
export function eximHostname(root: string): { name: string; from: string } | undefined {
  const own = root === '/' ? osHostname() : read(root, '/etc/hostname')?.trim().split(/\s+/)[0];
  if (!own) return undefined;
  if (own.includes('.')) return { name: own.toLowerCase(), from: `the host name ${own}` };
  for (const raw of (read(root, '/etc/hosts') ?? '').split('\n')) {
    const names = raw.replace(/#.*/, '').trim().split(/\s+/).slice(1);
    if (names.some((n) => n.toLowerCase() === own.toLowerCase()) && names[0]?.includes('.')) {
      return { name: names[0].toLowerCase(), from: `the host name ${own}, fully qualified by /etc/hosts` };
    }
  }
  return undefined;
}
