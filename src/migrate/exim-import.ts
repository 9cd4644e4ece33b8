// migrate/exim-import.ts: maps a Debian Exim satellite's settings (update-exim4.conf.conf,
// the macros and main options of exim4.conf.localmacros and of the admin's own files in
// conf.d/main, /etc/mailname, the host name, /etc/email-addresses, /etc/aliases,
// passwd.client) under a root folder and makes postern's configuration of them: the
// TOML text and a report with one line per setting found: mapped (and to what), not
// needed on postern (and why), or not mapped (and what that changes). exim-files.ts
// reads the files in Exim's syntax; this file is the policy. Reads only;
// install.ts writes.
import {
  adminMainFiles, eximHostname, eximList, globMatch, listenEntries, optionList, parseEximSettings, parseShellVars, portOf, read, smarthostEntry,
} from './exim-files.js';
import { parseDuration, parseSize } from '../core/units.js';
import { parseAliases, parseEmailAddresses, plainTarget } from '../rewrite/load.js';

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

const q = (s: string) => JSON.stringify(s);
const list = (xs: string[]) => `[${xs.map(q).join(', ')}]`;

/** Keys of update-exim4.conf.conf that mean nothing on a postern satellite, and why. */
const NOT_NEEDED: Record<string, string> = {
  dc_localdelivery: 'a satellite delivers no mail locally',
  dc_use_split_config: 'postern has one file; exim4.conf.localmacros and the admin\'s files in conf.d/main were read either way',
  dc_minimaldns: 'postern looks up the smarthost when it connects; its hostname is imported from the host\'s name',
  dc_mailname_in_oh: 'debconf\'s own note; dc_other_hostnames is what counts',
  CFILEMODE: 'postern has one file',
};

/** Macros and main options of Exim that mean nothing on a postern satellite, and why. */
const NOT_NEEDED_MACROS: Record<string, string> = {
  MAIN_LOG_SELECTOR: 'postern\'s main log has Exim\'s default fields and Debian\'s tls_certificate_verified',
  log_selector: 'postern\'s main log has Exim\'s default fields and Debian\'s tls_certificate_verified',
  CHECK_RCPT_LOCAL_LOCALPARTS: 'postern takes no mail for local mailboxes',
  CHECK_RCPT_REMOTE_LOCALPARTS: 'postern relays only for listen.relay_from',
  SPOOLDIR: 'postern has its own spool (spool.directory)',
  spool_directory: 'postern has its own spool (spool.directory)',
  MAIN_FREEZE_TELL: 'postern tells no one of a frozen message; -bp and the metrics show it',
  freeze_tell: 'postern tells no one of a frozen message; -bp and the metrics show it',
  keep_environment: 'postern runs no commands',
  add_environment: 'postern runs no commands',
};

/**
 * The answer to the package's debconf question postern/smarthost: exim4-config's
 * dc_smarthost syntax (`host::port`, several separated by `;`, or Exim's `:` list), or
 * postern's own `host:port` (how the config script shows the current file's hosts).
 * Undefined when an entry is neither.
 */
export function smarthostAnswer(value: string, defaultPort = 25): string[] | undefined {
  const own = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
  const v = value.trim();
  const entries = v.includes(';') ? v.split(';').map((e) => e.trim()).filter(Boolean) : own.test(v) || smarthostEntry(v, defaultPort) ? [v] : eximList(v);
  const hosts = entries.map((e) => (own.test(e) && !/::/.test(e.replace(/^\[[^\]]*\]/, '')) ? e : smarthostEntry(e, defaultPort)));
  return hosts.length > 0 && hosts.every((h) => h !== undefined) ? hosts as string[] : undefined;
}

/** The answers to the package's debconf questions, which win over Exim's files (an empty smarthost is no answer). */
export interface Answers {
  smarthost?: string;
  /** `''`: no readhost */
  readhost?: string;
}

export function importExim(root: string, answers: Answers = {}): EximImport {
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

  // Macros and main options: exim4.conf.localmacros (the one-file scheme), the admin's
  // files in conf.d/main (the split scheme); later files win, as Exim's do.
  const settings = new Map<string, { value: string; file: string }>();
  for (const file of ['/etc/exim4/exim4.conf.localmacros', ...adminMainFiles(root)]) {
    for (const [k, v] of parseEximSettings(read(root, file) ?? '')) settings.set(k, { value: v, file });
  }
  const setting = (...names: string[]) => {
    let got: { name: string; value: string; file: string } | undefined;
    for (const n of names) {
      const s = settings.get(n);
      if (s) {
        got = { name: n, ...s };
        settings.delete(n);
      }
    }
    return got;
  };
  const where = (x: { name: string; value: string; file: string }) => `${x.name}${x.value || !/\s/.test(x.name) ? ` = ${x.value}` : ''} (${x.file})`;

  const type = get('dc_eximconfig_configtype');
  if (type !== undefined && type !== 'satellite') {
    unmapped.push(type === 'smarthost'
      ? `dc_eximconfig_configtype='smarthost': Exim delivered local users' mail on this machine; postern sends all mail to the smarthost`
      : `dc_eximconfig_configtype='${type}': Exim is not a satellite here; postern only relays to a smarthost`);
  } else if (type) mapped.push(`dc_eximconfig_configtype='satellite': postern relays all mail to the smarthost`);

  // TLS toward the smarthost: Debian's macros. With smtps the transport's default port is 465.
  let tls = 'opportunistic';
  let caFile: string | undefined;
  const protocol = setting('REMOTE_SMTP_SMARTHOST_PROTOCOL', 'REMOTE_SMTP_PROTOCOL');
  const smtps = protocol?.value.toLowerCase() === 'smtps';
  if (protocol && !smtps) unmapped.push(`${where(protocol)}: postern speaks SMTP or smtps only`);

  let hosts: string[] = [];
  let smarthost = get('dc_smarthost');
  const answered = answers.smarthost?.trim() ? smarthostAnswer(answers.smarthost, smtps ? 465 : 25) : undefined;
  if (answers.smarthost?.trim() && !answered) unmapped.push(`debconf postern/smarthost "${answers.smarthost}" is not host, host:port, host::port or [address]::port: not used`);
  if (answered && (!smarthost || answered.join() !== eximList(smarthost).map((e) => smarthostEntry(e, smtps ? 465 : 25)).join())) {
    hosts = answered;
    mapped.push(`debconf postern/smarthost='${answers.smarthost}': smarthost.hosts = ${list(hosts)}${smarthost ? ` (instead of dc_smarthost='${smarthost}')` : ''}`);
    smarthost = undefined;
  }
  if (smarthost) {
    for (const e of eximList(smarthost)) {
      const h = smarthostEntry(e, smtps ? 465 : 25);
      if (h) hosts.push(h);
      else unmapped.push(`dc_smarthost entry "${e}" is not host, host::port or [address]::port`);
    }
    if (hosts.length) mapped.push(`dc_smarthost='${smarthost}': smarthost.hosts = ${list(hosts)}`);
  }
  if (hosts.length === 0) {
    unmapped.push('no smarthost to import: set smarthost.hosts in /etc/postern/postern.toml (mail waits in the queue until then)');
    hosts = ['smarthost.invalid:25'];
  }
  // Port 465 is TLS from the first byte (smtps): what Exim speaks there with protocol = smtps.
  const on465 = hosts.filter((h) => h.endsWith(':465'));
  if (smtps) {
    tls = 'implicit';
    mapped.push(`${where(protocol!)}: smarthost.tls = "implicit" (TLS from the first byte; hosts without a port on 465)`);
  } else if (on465.length > 0 && on465.length === hosts.length) {
    tls = 'implicit';
    mapped.push(`dc_smarthost port 465 (smtps): smarthost.tls = "implicit" (TLS from the first byte, verified)`);
  } else if (on465.length > 0) {
    unmapped.push(`dc_smarthost: ${on465.join(', ')} on port 465 (smtps) among hosts that are not: postern has one TLS mode for all its smarthosts; those get STARTTLS, which a port-465 hub does not speak`);
  }
  const require = setting('REMOTE_SMTP_SMARTHOST_HOSTS_REQUIRE_TLS');
  if (require && tls !== 'implicit') {
    if (require.value.trim() === '') mapped.push(`${where(require)}: nothing required (smarthost.tls = "opportunistic")`);
    else {
      tls = 'required';
      mapped.push(`${where(require)}: smarthost.tls = "required"`);
    }
  } else if (require) mapped.push(`${where(require)}: implied by smarthost.tls = "implicit"`);
  const ca = setting('REMOTE_SMTP_SMARTHOST_TLS_VERIFY_CERTIFICATES');
  if (ca) {
    caFile = ca.value;
    mapped.push(`${where(ca)}: smarthost.tls_ca_file = ${q(ca.value)}`);
  }
  const verifyHosts = setting('REMOTE_SMTP_SMARTHOST_TLS_VERIFY_HOSTS');
  if (verifyHosts) {
    if (verifyHosts.value.trim() === '' && tls !== 'opportunistic') {
      unmapped.push(`${where(verifyHosts)}: Exim did not verify the hub's certificate; postern's "${tls}" always does (tls_ca_file names the hub's CA)`);
    } else mapped.push(`${where(verifyHosts)}: ${tls === 'opportunistic' ? 'smarthost.tls = "opportunistic" verifies nothing' : `smarthost.tls = "${tls}" verifies the hub`}`);
  }
  if (found && tls === 'opportunistic') {
    mapped.push('TLS: smarthost.tls = "opportunistic" (STARTTLS when offered; unlike Debian\'s Exim it does not verify the certificate: set "required" when the hub always offers STARTTLS)');
  }

  // Listeners: dc_local_interfaces × DAEMON_SMTP_PORTS (daemon_smtp_ports), without IPv6 under disable_ipv6.
  const portsSetting = setting('DAEMON_SMTP_PORTS', 'daemon_smtp_ports');
  let ports = [25];
  if (portsSetting) {
    const named = optionList(portsSetting.value);
    const got = named.map(portOf);
    if (got.every((p) => p !== undefined) && got.length > 0) {
      ports = got as number[];
      if (ports.includes(465)) unmapped.push(`${where(portsSetting)}: port 465 is TLS on connect in Exim (tls_on_connect_ports); postern's listeners speak plain SMTP`);
    } else unmapped.push(`${where(portsSetting)}: not a list of ports`);
  }
  const tlsOnConnect = setting('tls_on_connect_ports', 'MAIN_TLS_ON_CONNECT_PORTS');
  if (tlsOnConnect) unmapped.push(`${where(tlsOnConnect)}: postern's listeners offer no TLS`);
  const ipv6Off = setting('disable_ipv6');
  const noV6 = ipv6Off !== undefined && /^(true|yes|1)$/i.test(ipv6Off.value);
  let listen = ['127.0.0.1:25', '[::1]:25'];
  let listenWhy = 'the default';
  const interfaces = get('dc_local_interfaces') ?? setting('MAIN_LOCAL_INTERFACES', 'local_interfaces')?.value;
  if (interfaces !== undefined) {
    const addrs = interfaces.includes(';') || /^<\s*;/.test(interfaces) ? eximList(interfaces.replace(/^<\s*;/, '')) : optionList(interfaces);
    if (addrs.length === 0) {
      listen = ['0.0.0.0', '::'].flatMap((a) => listenEntries(a, ports) ?? []);
      listenWhy = `dc_local_interfaces='': every interface, as Exim did`;
    } else {
      const got = addrs.map((a) => [a, listenEntries(a, ports)] as const);
      for (const [a, l] of got) if (!l) unmapped.push(`dc_local_interfaces entry "${a}" is not an address`);
      const ok = got.flatMap(([, l]) => l ?? []);
      if (ok.length) {
        listen = ok;
        listenWhy = `dc_local_interfaces='${interfaces}'`;
      }
    }
  } else listen = ['127.0.0.1', '::1'].flatMap((a) => listenEntries(a, ports) ?? []);
  if (noV6) listen = listen.filter((l) => !l.startsWith('['));
  if (listen.length === 0) listen = ['127.0.0.1:25'];
  const listenParts = [listenWhy, ...(portsSetting ? [`ports ${ports.join(', ')} from ${portsSetting.name}`] : []), ...(noV6 ? ['no IPv6 (disable_ipv6)'] : [])];
  if (interfaces !== undefined || portsSetting || noV6) mapped.push(`${listenParts.join('; ')}: listen.smtp = ${list(listen)}`);
  if (ipv6Off) {
    mapped.push(`${where(ipv6Off)}: ${noV6 ? 'no IPv6 listener; postern still connects to the hub\'s IPv6 addresses when its name has them (name the hub by its IPv4 address to avoid that)' : 'IPv6 stays on'}`);
  }

  const relay = ['127.0.0.0/8', '::1/128'];
  const nets = get('dc_relay_nets');
  if (nets) {
    for (const n of eximList(nets)) {
      if (/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(n)) relay.push(n);
      else unmapped.push(`dc_relay_nets entry "${n}" is not an address or network`);
    }
    mapped.push(`dc_relay_nets='${nets}': listen.relay_from = ${list(relay)} (loopback kept)`);
  } else if (nets !== undefined) mapped.push(`dc_relay_nets='': listen.relay_from = ${list(relay)} (loopback only, as Exim)`);

  // Names: Exim's primary_hostname and qualify_domain (MAIN_QUALIFY_DOMAIN, else /etc/mailname).
  const hardcoded = setting('MAIN_HARDCODE_PRIMARY_HOSTNAME', 'primary_hostname');
  const host = hardcoded ? { name: hardcoded.value, from: where(hardcoded) } : eximHostname(root);
  if (host) mapped.push(`primary_hostname (${host.from}): hostname = ${q(host.name)}`);
  const mailname = read(root, '/etc/mailname')?.trim().split('\n')[0]?.trim();
  const qualifyMacro = setting('MAIN_QUALIFY_DOMAIN', 'qualify_domain');
  const asHostname = setting('MAIN_PRIMARY_HOSTNAME_AS_QUALIFY_DOMAIN');
  let qualify: string | undefined;
  if (asHostname && host) {
    qualify = host.name;
    mapped.push(`${where(asHostname)}: qualify_domain = ${q(qualify)} (the host name)`);
  } else if (qualifyMacro) {
    qualify = qualifyMacro.value;
    mapped.push(`${where(qualifyMacro)}: qualify_domain = ${q(qualify)}`);
    if (mailname) mapped.push(`/etc/mailname (${mailname}): not needed (${qualifyMacro.name} overrides it, as in Exim)`);
  } else if (mailname) {
    qualify = mailname;
    mapped.push(`/etc/mailname: qualify_domain = ${q(mailname)}`);
  }

  // Exim's local domains: the host name, localhost and dc_other_hostnames (MAIN_LOCAL_DOMAINS);
  // postern adds qualify_domain itself.
  const others: string[] = [];
  const other = get('dc_other_hostnames');
  if (other) {
    for (const d of eximList(other)) {
      if (/^[A-Za-z0-9.-]+$/.test(d)) others.push(d);
      else unmapped.push(`dc_other_hostnames entry "${d}" is not a domain (Exim's patterns and lookups have no postern form)`);
    }
    if (others.length) mapped.push(`dc_other_hostnames='${other}': rewrite.local_domains = ${list(others)} (this machine's names: a local user's mail there goes to the readhost)`);
  } else if (other !== undefined) mapped.push(`dc_other_hostnames='': no more local domains than the host name and localhost`);
  const localDomainsMacro = setting('MAIN_LOCAL_DOMAINS');
  if (localDomainsMacro) unmapped.push(`${where(localDomainsMacro)}: set rewrite.local_domains by hand (postern takes the host name, qualify_domain and localhost itself)`);

  // Rewriting: Debian's readhost (hub_user for recipients; with hide_mailname the sender
  // and From:/Reply-To:/Sender: too), and email-addresses.
  const rewrite: string[] = [];
  let readhost = get('dc_readhost');
  const hide = get('dc_hide_mailname');
  if (answers.readhost !== undefined && answers.readhost !== (readhost ?? '')) {
    mapped.push(`debconf postern/readhost='${answers.readhost}': ${answers.readhost ? `rewrite.readhost = ${q(answers.readhost)}` : 'no readhost'}${readhost ? ` (instead of dc_readhost='${readhost}')` : ''}`);
    readhost = answers.readhost || undefined;
  }
  if (readhost) {
    rewrite.push(`readhost = ${q(readhost)}`, `hide_hostname = ${hide === 'true'}`);
    mapped.push(`dc_readhost='${readhost}': rewrite.readhost = ${q(readhost)} (Debian's hub_user: mail for a local user goes to user@${readhost})`);
    mapped.push(`dc_hide_mailname='${hide ?? ''}': rewrite.hide_hostname = ${hide === 'true'}${hide === 'true' ? ` (the sender and From:, Reply-To:, Sender: go out as user@${readhost})` : ' (the sender and headers keep this machine\'s name, as Exim\'s)'}`);
    // postern treats qualify_domain as local; Exim did only when it was one of its local domains.
    const exims = [host?.name, 'localhost', ...others].filter((d): d is string => d !== undefined).map((d) => d.toLowerCase());
    if (qualify && host && !exims.includes(qualify.toLowerCase())) {
      unmapped.push(`qualify_domain ${qualify} is not one of Exim's local domains (${exims.join(', ')}): Exim sent mail for root@${qualify} (cron's "root") to the hub as it was; postern treats ${qualify} as this machine's and sends it to root@${readhost}`);
    }
    if (!host) unmapped.push(`hostname: not found (no /etc/hostname, or no fully qualified name for it in /etc/hosts): postern takes the machine's name at start; set hostname if it is not the name Exim used`);
  } else if (hide === 'true') unmapped.push(`dc_hide_mailname='true' without dc_readhost: nothing to hide the name behind`);
  else if (hide !== undefined) mapped.push(`dc_hide_mailname='${hide}': nothing hidden (no readhost)`);
  if (others.length) rewrite.push(`local_domains = ${list(others)}`);
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
  const noEaa = setting('NO_EAA_REWRITE_REWRITE');
  if (noEaa) unmapped.push(`${where(noEaa)}: Exim ignored /etc/email-addresses; postern reads it when rewrite.email_addresses names it`);
  // /etc/aliases: Debian's system_aliases router runs before hub_user, on a satellite too.
  const aliases = parseAliases(read(root, '/etc/aliases') ?? '');
  if (aliases.size > 0) {
    const followed = [...aliases].filter(([, v]) => v.length === 1 && plainTarget(v[0] as string));
    const others = [...aliases].filter(([, v]) => !(v.length === 1 && plainTarget(v[0] as string)));
    if (readhost && followed.length > 0) {
      rewrite.push(`aliases = ${q('/etc/aliases')}`);
      const shown = followed.slice(0, 4).map(([k, v]) => `${k}: ${v[0]}`).join(', ');
      mapped.push(`/etc/aliases (${followed.length} entr${followed.length === 1 ? 'y' : 'ies'}: ${shown}${followed.length > 4 ? ', ...' : ''}): rewrite.aliases = "/etc/aliases" (followed before hub_user, as Debian's system_aliases)`);
    }
    const left = readhost ? others : [...aliases];
    if (left.length > 0) {
      const shown = left.slice(0, 4).map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ');
      unmapped.push(`/etc/aliases (${left.length} entr${left.length === 1 ? 'y' : 'ies'}: ${shown}${left.length > 4 ? '; ...' : ''}): ${readhost
        ? 'postern follows an alias of one address only; Exim delivered to each of these targets: mail for these names goes to the hub as it is; set them up on the hub'
        : 'without dc_readhost Exim\'s satellite routed them nowhere postern can; set them up on the hub'}`);
    }
  }

  const relayDomains = get('dc_relay_domains');
  if (relayDomains) unmapped.push(`dc_relay_domains='${relayDomains}': postern relays only for listen.relay_from, for no other domains`);
  else if (relayDomains !== undefined) mapped.push(`dc_relay_domains='': nothing to relay for (as postern)`);

  // Limits and timers with a postern key.
  const extra: { section: string; line: string }[] = [];
  const size = setting('MESSAGE_SIZE_LIMIT', 'message_size_limit');
  if (size) {
    const n = parseSize(size.value);
    if (n) {
      extra.push({ section: 'listen', line: `max_message_size = ${q(size.value.toUpperCase())}` });
      mapped.push(`${where(size)}: listen.max_message_size = ${q(size.value.toUpperCase())}`);
    } else unmapped.push(`${where(size)}: not a size postern reads ("50M")`);
  }
  for (const [macro, option, key] of [
    ['MAIN_TIMEOUT_FROZEN_AFTER', 'timeout_frozen_after', 'timeout_frozen_after'],
    ['MAIN_IGNORE_BOUNCE_ERRORS_AFTER', 'ignore_bounce_errors_after', 'ignore_bounce_errors_after'],
  ] as const) {
    const t = setting(macro, option);
    if (!t) continue;
    if (parseDuration(t.value) !== undefined) {
      extra.push({ section: 'retry', line: `${key} = ${q(t.value)}` });
      mapped.push(`${where(t)}: retry.${key} = ${q(t.value)}`);
    } else unmapped.push(`${where(t)}: not a duration postern reads ("7d")`);
  }
  const tlsEnable = setting('MAIN_TLS_ENABLE');
  if (tlsEnable) unmapped.push(`${where(tlsEnable)}: postern's listeners offer no STARTTLS (its clients are this machine and listen.relay_from)`);
  for (const k of ['MAIN_TLS_CERTIFICATE', 'MAIN_TLS_PRIVATEKEY', 'MAIN_TLS_CERTKEY']) {
    const t = setting(k);
    if (t) unmapped.push(`${where(t)}: postern's listeners offer no STARTTLS`);
  }
  const noTls = setting('AUTH_CLIENT_ALLOW_NOTLS_PASSWORDS');
  if (noTls) unmapped.push(`${where(noTls)}: postern never sends the password in clear; a hub without STARTTLS gets the mail without AUTH`);

  for (const [k, v] of vars) {
    if (NOT_NEEDED[k] !== undefined) mapped.push(`${k}='${v}': not needed (${NOT_NEEDED[k]})`);
    else unmapped.push(`${k}='${v}': no postern setting for it`);
  }
  for (const [k, v] of settings) {
    const why = NOT_NEEDED_MACROS[k];
    if (why !== undefined) mapped.push(`${where({ name: k, ...v })}: not needed (${why})`);
    else unmapped.push(`${where({ name: k, ...v })}: no postern setting for it`);
  }
  const queueInterval = parseShellVars(read(root, '/etc/default/exim4') ?? '').get('QUEUEINTERVAL');
  if (queueInterval !== undefined) mapped.push(`QUEUEINTERVAL='${queueInterval}' (/etc/default/exim4): not needed (postern delivers new mail at once and retries each message at its own retry time; postern.service runs -q15m as a backstop)`);

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
      mapped.push(`/etc/exim4/passwd.client (${match[1]}): smarthost.auth_user = ${q(authUser)}, the password in ${CONFIG_PATHS.password} (0600); AUTH when the session can, as Exim's hosts_try_auth`);
      if (tls === 'none') tls = 'opportunistic';
    } else if (entries.length) {
      unmapped.push(`/etc/exim4/passwd.client: no entry matches the smarthost ${first} (Exim matched its reverse DNS name): set smarthost.auth_user and auth_password_file by hand`);
    }
    const rest = entries.filter((m) => m !== match && m[1] !== '*');
    if (match && rest.length) unmapped.push(`/etc/exim4/passwd.client: entries for ${rest.map((m) => m[1]).join(', ')} not used (postern has one login for all its smarthosts)`);
  }

  const section = (name: string) => extra.filter((e) => e.section === name).map((e) => e.line);
  const lines = [
    `# ${CONFIG_PATHS.conf}: written by \`postern install\`${found ? ' from Debian\'s Exim settings' : ''}; see postern.toml(5).`,
    'user = "postern"',
    ...(host ? [`hostname = ${q(host.name)}`] : []),
    ...(qualify ? [`qualify_domain = ${q(qualify)}`] : []),
    '',
    '[listen]',
    `smtp = ${list(listen)}`,
    `relay_from = ${list(relay)}`,
    ...section('listen'),
    '',
    '[spool]',
    `directory = ${q(CONFIG_PATHS.spool)}`,
    '',
    '[smarthost]',
    `hosts = ${list(hosts)}`,
    `tls = ${q(tls)}`,
    ...(caFile ? [`tls_ca_file = ${q(caFile)}`] : []),
    ...(authUser !== undefined ? [`auth_user = ${q(authUser)}`, `auth_password_file = ${q(CONFIG_PATHS.password)}`] : []),
    ...(section('retry').length ? ['', '[retry]', ...section('retry')] : []),
    '',
    '[log]',
    `file = ${q(CONFIG_PATHS.log)}`,
    ...(rewrite.length ? ['', '[rewrite]', ...rewrite] : []),
  ];
  return { toml: lines.join('\n') + '\n', mapped, unmapped, ...(password !== undefined ? { password } : {}), found };
}
