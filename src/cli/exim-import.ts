// cli/exim-import.ts: reads a Debian Exim satellite's settings (update-exim4.conf.conf,
// exim4.conf.localmacros, /etc/mailname, /etc/email-addresses, passwd.client) under a
// root folder and makes postern's configuration of them: the TOML text, one line per
// setting mapped, and the settings it cannot map, named. Reads only; install.ts writes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEmailAddresses } from '../rewrite/load.js';

export interface EximImport {
  /** postern.toml's text */
  toml: string;
  /** one line per setting mapped (`dc_smarthost: smarthost.hosts = [...]`) */
  mapped: string[];
  /** settings postern cannot map (yet), one sentence each */
  unmapped: string[];
  /** the smarthost password from passwd.client, for the 0600 password file */
  password?: string;
  /** whether Exim's configuration was there at all */
  found: boolean;
}

export const CONFIG_PATHS = {
  conf: '/etc/postern/postern.toml',
  password: '/etc/postern/smarthost.pass',
  spool: '/var/spool/postern',
  maildrop: '/var/spool/postern-maildrop',
  logDir: '/var/log/postern',
  log: '/var/log/postern/mainlog',
};

function read(root: string, path: string): string | undefined {
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
function eximList(value: string): string[] {
  const parts = value.includes(';') ? value.split(';') : value.split(/(?<!:):(?!:)/);
  return parts.map((s) => s.trim()).filter(Boolean);
}

/** `host::port`, `[addr]::port`, `host` → postern's `host:port` / `[addr]:port`. */
export function smarthostEntry(entry: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:\s[\]]+))(?:::(\d{1,5}))?$/.exec(entry);
  if (!m) return undefined;
  const port = m[3] ?? '25';
  return m[1] !== undefined ? `[${m[1]}]:${port}` : `${m[2]}:${port}`;
}

function listenEntry(addr: string): string | undefined {
  if (/^[0-9.]+$/.test(addr)) return `${addr}:25`;
  if (/^[0-9A-Fa-f:]+$/.test(addr)) return `[${addr}]:25`;
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(addr);
  return m ? `[${m[1]}]:${m[2]}` : undefined;
}

const q = (s: string) => JSON.stringify(s);
const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;

/** `*` and `?` of passwd.client's host patterns. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Keys of update-exim4.conf.conf that mean nothing on a postern satellite, and why. */
const NOT_NEEDED: Record<string, string> = {
  dc_localdelivery: 'a satellite delivers no mail locally',
  dc_use_split_config: 'postern has one file',
  dc_minimaldns: 'postern looks up the smarthost when it connects',
  dc_mailname_in_oh: 'postern takes no mail for itself',
  CFILEMODE: 'postern has one file',
};

export function importExim(root: string): EximImport {
  const mapped: string[] = [];
  const unmapped: string[] = [];
  const conf = read(root, '/etc/exim4/update-exim4.conf.conf');
  const vars = parseShellVars(conf ?? '');
  const found = conf !== undefined;
  const get = (k: string) => {
    const v = vars.get(k);
    vars.delete(k);
    return v;
  };

  const type = get('dc_eximconfig_configtype');
  if (type !== undefined && type !== 'satellite') {
    unmapped.push(type === 'smarthost'
      ? `dc_eximconfig_configtype='smarthost': Exim delivered local users' mail on this machine; postern sends all mail to the smarthost`
      : `dc_eximconfig_configtype='${type}': Exim is not a satellite here; postern only relays to a smarthost`);
  } else if (type) mapped.push(`dc_eximconfig_configtype='satellite': postern relays all mail to the smarthost`);

  let hosts: string[] = [];
  const smarthost = get('dc_smarthost');
  if (smarthost) {
    for (const e of eximList(smarthost)) {
      const h = smarthostEntry(e);
      if (h) hosts.push(h);
      else unmapped.push(`dc_smarthost entry "${e}" is not host, host::port or [address]::port`);
    }
    if (hosts.length) mapped.push(`dc_smarthost='${smarthost}': smarthost.hosts = ${list(hosts)}`);
  }
  if (hosts.length === 0) {
    unmapped.push('no smarthost to import: set smarthost.hosts in /etc/postern/postern.toml (mail waits in the queue until then)');
    hosts = ['smarthost.invalid:25'];
  }

  let listen = ['127.0.0.1:25', '[::1]:25'];
  const interfaces = get('dc_local_interfaces');
  if (interfaces !== undefined) {
    const addrs = eximList(interfaces);
    if (addrs.length === 0) {
      listen = ['0.0.0.0:25', '[::]:25'];
      mapped.push(`dc_local_interfaces='': listen.smtp = ${list(listen)} (every interface, as Exim did)`);
    } else {
      const got = addrs.map((a) => [a, listenEntry(a)] as const);
      for (const [a, l] of got) if (!l) unmapped.push(`dc_local_interfaces entry "${a}" is not an address`);
      const ok = got.flatMap(([, l]) => (l ? [l] : []));
      if (ok.length) {
        listen = ok;
        mapped.push(`dc_local_interfaces='${interfaces}': listen.smtp = ${list(listen)}`);
      }
    }
  }

  const relay = ['127.0.0.0/8', '::1/128'];
  const nets = get('dc_relay_nets');
  if (nets) {
    for (const n of eximList(nets)) {
      if (/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(n)) relay.push(n);
      else unmapped.push(`dc_relay_nets entry "${n}" is not an address or network`);
    }
    mapped.push(`dc_relay_nets='${nets}': listen.relay_from = ${list(relay)} (loopback kept)`);
  }

  // Sender rewriting: Debian's readhost, hidden mail name and email-addresses → [rewrite].
  const rewrite: string[] = [];
  const readhost = get('dc_readhost');
  const hide = get('dc_hide_mailname');
  if (readhost) {
    rewrite.push(`readhost = ${q(readhost)}`, `hide_hostname = ${hide === 'true'}`);
    mapped.push(`dc_readhost='${readhost}': rewrite.readhost = ${q(readhost)}`);
    mapped.push(`dc_hide_mailname='${hide ?? ''}': rewrite.hide_hostname = ${hide === 'true'}`);
  } else if (hide === 'true') unmapped.push(`dc_hide_mailname='true' without dc_readhost: nothing to hide the name behind`);
  const addresses = read(root, '/etc/email-addresses');
  if (addresses && addresses.split('\n').some((l) => l.trim() && !l.trim().startsWith('#'))) {
    try {
      const n = parseEmailAddresses(addresses, '/etc/email-addresses').size;
      rewrite.push(`email_addresses = ${q('/etc/email-addresses')}`);
      mapped.push(`/etc/email-addresses (${n} address${n === 1 ? '' : 'es'}): rewrite.email_addresses = "/etc/email-addresses"`);
    } catch (e) {
      unmapped.push(`/etc/email-addresses: ${(e as Error).message.replace(/^configuration error in \/etc\/email-addresses /, '')}; fix it, then set rewrite.email_addresses`);
    }
  }

  for (const k of ['dc_other_hostnames', 'dc_relay_domains']) {
    const v = get(k);
    if (v) unmapped.push(`${k}='${v}': postern takes no mail for other domains`);
  }
  for (const [k, v] of vars) {
    if (NOT_NEEDED[k] !== undefined) mapped.push(`${k}='${v}': not needed (${NOT_NEEDED[k]})`);
    else if (v) unmapped.push(`${k}='${v}': no postern setting for it`);
  }

  const mailname = read(root, '/etc/mailname')?.trim();
  if (mailname) mapped.push(`/etc/mailname: qualify_domain = ${q(mailname)}`);

  // TLS: Debian's macros in exim4.conf.localmacros.
  let tls = 'opportunistic';
  let caFile: string | undefined;
  const macros = parseMacros(read(root, '/etc/exim4/exim4.conf.localmacros') ?? '');
  if (macros.get('REMOTE_SMTP_SMARTHOST_PROTOCOL') === 'smtps') {
    tls = 'implicit';
    mapped.push('REMOTE_SMTP_SMARTHOST_PROTOCOL = smtps: smarthost.tls = "implicit"');
  } else if (macros.has('REMOTE_SMTP_SMARTHOST_HOSTS_REQUIRE_TLS')) {
    tls = 'required';
    mapped.push(`REMOTE_SMTP_SMARTHOST_HOSTS_REQUIRE_TLS = ${macros.get('REMOTE_SMTP_SMARTHOST_HOSTS_REQUIRE_TLS')}: smarthost.tls = "required"`);
  }
  const ca = macros.get('REMOTE_SMTP_SMARTHOST_TLS_VERIFY_CERTIFICATES');
  if (ca) {
    caFile = ca;
    mapped.push(`REMOTE_SMTP_SMARTHOST_TLS_VERIFY_CERTIFICATES = ${ca}: smarthost.tls_ca_file = ${q(ca)}`);
  }
  if (found && tls === 'opportunistic') {
    mapped.push('TLS: smarthost.tls = "opportunistic" (STARTTLS when offered; unlike Debian\'s Exim it does not verify the certificate: set "required" when the hub always offers STARTTLS)');
  }

  // passwd.client: the entry for the first smarthost (by its configured name, where
  // Exim matched the name reverse DNS gave), else a `*` entry.
  let authUser: string | undefined;
  let password: string | undefined;
  const pw = read(root, '/etc/exim4/passwd.client');
  if (pw !== undefined && found) {
    const entries = pw.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
      .map((l) => /^([^:]+):([^:]*):(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
    const first = /^\[?([^\]]+?)\]?:\d+$/.exec(hosts[0] as string)?.[1] ?? '';
    const match = entries.find((m) => globMatch(m[1] as string, first));
    if (match) {
      authUser = match[2] as string;
      password = match[3] as string;
      mapped.push(`/etc/exim4/passwd.client (${match[1]}): smarthost.auth_user = ${q(authUser)}, the password in ${CONFIG_PATHS.password} (0600)`);
      if (tls === 'none') tls = 'opportunistic';
    } else if (entries.length) {
      unmapped.push(`/etc/exim4/passwd.client: no entry matches the smarthost ${first} (Exim matched its reverse DNS name): set smarthost.auth_user and auth_password_file by hand`);
    }
    const others = entries.filter((m) => m !== match && m[1] !== '*');
    if (match && others.length) unmapped.push(`/etc/exim4/passwd.client: entries for ${others.map((m) => m[1]).join(', ')} not used (postern has one login for all its smarthosts)`);
  }

  const lines = [
    `# ${CONFIG_PATHS.conf}: written by \`postern install\`${found ? ' from Debian\'s Exim settings' : ''}; see postern.toml(5).`,
    'user = "postern"',
    ...(mailname ? [`qualify_domain = ${q(mailname)}`] : []),
    '',
    '[listen]',
    `smtp = ${list(listen)}`,
    `relay_from = ${list(relay)}`,
    '',
    '[spool]',
    `directory = ${q(CONFIG_PATHS.spool)}`,
    '',
    '[smarthost]',
    `hosts = ${list(hosts)}`,
    `tls = ${q(tls)}`,
    ...(caFile ? [`tls_ca_file = ${q(caFile)}`] : []),
    ...(authUser !== undefined ? [`auth_user = ${q(authUser)}`, `auth_password_file = ${q(CONFIG_PATHS.password)}`] : []),
    '',
    '[log]',
    `file = ${q(CONFIG_PATHS.log)}`,
    ...(rewrite.length ? ['', '[rewrite]', ...rewrite] : []),
  ];
  return { toml: lines.join('\n') + '\n', mapped, unmapped, ...(password !== undefined ? { password } : {}), found };
}

/** `NAME = value` lines of Exim's macros file. */
function parseMacros(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const x = /^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (x) m.set(x[1] as string, x[2] as string);
  }
  return m;
}
