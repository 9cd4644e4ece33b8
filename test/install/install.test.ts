// test/install/install.test.ts: `postern install` / `uninstall` on a throwaway --root folder
// holding a fake Debian Exim satellite (update-exim4.conf.conf, mailname,
// email-addresses, passwd.client, Exim's links and queue): the mapping printed, what is
// not mapped named on stderr, the queue counted, --dry-run changing nothing, the
// written configuration valid, the links keeping what they pointed to; mail sent by the
// installed /usr/sbin/sendmail under `env -i` (cron's style of call) reaching a sink
// through the imported smarthost; uninstall leaving Exim's links as they were.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/validate.js';
import { importExim, smarthostAnswer } from '../../src/migrate/exim-import.js';
import { withAnswers } from '../../src/install/install.js';
import { Instance, ROOT, runCommand, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

let root: string;

/** Every path under root with its kind, mode and link target: the tree's fingerprint. */
function tree(dir = root): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = relative(root, p);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/ ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else out.push(`${rel} ${(st.mode & 0o7777).toString(8)} ${readFileSync(p, 'utf8').length}`);
    }
  };
  walk(dir);
  return out;
}

function write(path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), text);
}

/** A Debian Exim satellite as dpkg-reconfigure exim4-config leaves it. */
function eximSatellite(smarthost: string): void {
  write('/etc/exim4/update-exim4.conf.conf', `# /etc/exim4/update-exim4.conf.conf
dc_eximconfig_configtype='satellite'
dc_other_hostnames=''
dc_local_interfaces='127.0.0.1 ; ::1'
dc_readhost='example.org'
dc_relay_domains=''
dc_minimaldns='false'
dc_relay_nets='192.168.1.0/24'
dc_smarthost='${smarthost}'
CFILEMODE='644'
dc_use_split_config='false'
dc_hide_mailname='true'
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
`);
  write('/etc/mailname', 'web1.example.org\n');
  write('/etc/email-addresses', '# comment\nroot: ops@example.org\n');
  write('/usr/sbin/exim4', '#!/bin/sh\n');
  symlinkSync('exim4', join(root, '/usr/sbin/sendmail'));
  mkdirSync(join(root, '/usr/lib'), { recursive: true });
  symlinkSync('../sbin/sendmail', join(root, '/usr/lib/sendmail'));
  mkdirSync(join(root, '/usr/bin'), { recursive: true });
  symlinkSync('../sbin/exim4', join(root, '/usr/bin/mailq'));
  symlinkSync('../sbin/exim4', join(root, '/usr/bin/newaliases'));
  write('/var/spool/exim4/input/1xVME4-0001HS-0Y-H', 'h');
  write('/var/spool/exim4/input/1xVME4-0001HS-0Y-D', 'd');
  write('/var/spool/exim4/input/A/1xVMEA-0001HS-0Y-H', 'h');
}

const postern = (args: string[]) => runCommand('postern', args);
const importedToml = () => importExim(root).toml;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'postern-install-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('postern install --root', () => {
  it('--dry-run prints every step and changes nothing', async () => {
    eximSatellite('mail.example.org::587;mail2.example.org');
    const before = tree();
    const r = await postern(['install', '--root', root, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no user or group is created');
    expect(r.stdout).toContain('would write /etc/postern/postern.toml');
    expect(r.stdout).toContain('would link /usr/sbin/sendmail -> postern (was -> exim4)');
    expect(r.stdout).toContain('would ship /etc/systemd/system/postern.service');
    expect(tree()).toEqual(before);
  });

  it('imports the Exim satellite, names what it cannot map, counts Exim\'s queue, and uninstall restores the links', async () => {
    eximSatellite('mail.example.org::587;mail2.example.org');
    write('/etc/exim4/passwd.client', '# host:login:password\n*.example.org:web1:s3cr:et\nother.test:x:y\n');
    const before = tree();
    const r = await postern(['install', '--root', root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`dc_smarthost='mail.example.org::587;mail2.example.org': smarthost.hosts = ["mail.example.org:587", "mail2.example.org:25"]`);
    expect(r.stdout).toContain(`dc_local_interfaces='127.0.0.1 ; ::1': listen.smtp = ["127.0.0.1:25", "[::1]:25"]`);
    expect(r.stdout).toContain(`dc_relay_nets='192.168.1.0/24': listen.relay_from = ["127.0.0.0/8", "::1/128", "192.168.1.0/24"] (loopback kept)`);
    expect(r.stdout).toContain('/etc/mailname: qualify_domain = "web1.example.org"');
    expect(r.stdout).toContain('/etc/exim4/passwd.client (*.example.org): smarthost.auth_user = "web1"');
    expect(r.stdout).toContain(`dc_readhost='example.org': rewrite.readhost = "example.org"`);
    expect(r.stdout).toContain(`dc_hide_mailname='true': rewrite.hide_hostname = true`);
    expect(r.stdout).toContain('/etc/email-addresses (1 address): rewrite.email_addresses = "/etc/email-addresses"');
    expect(r.stderr).not.toMatch(/readhost|hide_mailname|email-addresses/);
    expect(r.stderr).toContain('entries for other.test not used');
    expect(r.stderr).toContain('Exim\'s queue still holds 2 messages: `postern install --import-queue` takes them over into postern\'s queue');

    const toml = readFileSync(join(root, '/etc/postern/postern.toml'), 'utf8');
    const c = parseConfig(toml, '/etc/postern/postern.toml');
    expect(c.user).toBe('postern');
    expect(c.qualify_domain).toBe('web1.example.org');
    expect(c.smarthost.hosts).toEqual([{ name: 'mail.example.org', port: 587 }, { name: 'mail2.example.org', port: 25 }]);
    expect(c.smarthost.auth_user).toBe('web1');
    expect(c.listen.relay_from).toEqual(['127.0.0.0/8', '::1/128', '192.168.1.0/24']);
    expect(c.rewrite).toEqual({ readhost: 'example.org', hide_hostname: true, email_addresses: '/etc/email-addresses', local_domains: [] });
    const pass = join(root, '/etc/postern/smarthost.pass');
    expect(readFileSync(pass, 'utf8')).toBe('s3cr:et\n');
    expect(statSync(pass).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, '/var/spool/postern')).mode & 0o7777).toBe(0o700);
    expect(statSync(join(root, '/var/spool/postern-maildrop')).mode & 0o7777).toBe(0o1731);
    expect(readFileSync(join(root, '/etc/systemd/system/postern.service'), 'utf8')).toContain('User=postern');
    expect(readFileSync(join(root, '/etc/logrotate.d/postern'), 'utf8')).toContain('USR1');
    for (const [path, target] of [['/usr/sbin/sendmail', 'postern'], ['/usr/lib/sendmail', '../sbin/postern'], ['/usr/bin/mailq', '../sbin/postern'], ['/usr/bin/newaliases', '../sbin/postern']]) {
      expect(readlinkSync(join(root, path!)), path).toBe(target);
    }
    expect(readFileSync(join(root, '/usr/sbin/postern'), 'utf8')).toContain(`\nUV_USE_IO_URING=0\nexport UV_USE_IO_URING\nexec '${process.execPath}'`);

    // A second install keeps the first record: uninstall still goes back to Exim.
    const again = await postern(['install', '--root', root]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('keeping /etc/postern/postern.toml as it is');
    expect(again.stdout).toContain('/usr/sbin/sendmail already points to postern');

    const dry = await postern(['uninstall', '--root', root, '--dry-run']);
    expect(dry.stdout).toContain('would /usr/sbin/sendmail: point it back to exim4');
    expect(readlinkSync(join(root, '/usr/sbin/sendmail'))).toBe('postern');

    const u = await postern(['uninstall', '--root', root]);
    expect(u.code).toBe(0);
    expect(u.stdout).toContain('kept: /etc/postern/postern.toml');
    // Exim's links and files exactly as they were; postern's configuration, spool and log kept.
    const kept = /^(etc\/postern|var\/spool\/postern|var\/log|var\/lib\/ |etc\/systemd|etc\/logrotate\.d)/;
    expect(tree().filter((l) => !kept.test(l))).toEqual(before);
    expect(readdirSync(join(root, '/usr/sbin')).sort()).toEqual(['exim4', 'sendmail']);
  });

  it('an /etc/email-addresses with a bad line is named, not mapped', async () => {
    eximSatellite('mail.example.org');
    write('/etc/email-addresses', 'root: ops@example.org\nwww-data: a b c\n');
    const r = await postern(['install', '--root', root, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('not mapped: /etc/email-addresses: line 2: "a b c" is not an address');
    expect(r.stdout).not.toContain('rewrite.email_addresses');
  });

  it('a file (not a link) at /usr/sbin/sendmail is saved and put back; no Exim: defaults and a placeholder smarthost', async () => {
    write('/usr/sbin/sendmail', '#!/bin/sh\necho old sendmail\n');
    const r = await postern(['install', '--root', root]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('link /usr/sbin/sendmail -> postern (the file there saved as /var/lib/postern/saved/usr/sbin/sendmail)');
    expect(r.stderr).toContain('no smarthost to import: set smarthost.hosts');
    expect(readlinkSync(join(root, '/usr/sbin/sendmail'))).toBe('postern');
    const u = await postern(['uninstall', '--root', root]);
    expect(u.code).toBe(0);
    expect(readFileSync(join(root, '/usr/sbin/sendmail'), 'utf8')).toBe('#!/bin/sh\necho old sendmail\n');
    expect(readdirSync(join(root, '/usr/bin'))).toEqual([]);
  });

  it('a smarthost on the smtps port (465), by number, by name or by protocol = smtps, is imported as port 465 with implicit TLS', async () => {
    eximSatellite('hub.example.org::465');
    let r = await postern(['install', '--root', root, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`dc_smarthost='hub.example.org::465': smarthost.hosts = ["hub.example.org:465"]`);
    expect(r.stdout).toContain('smarthost.tls = "implicit"');
    rmSync(root, { recursive: true, force: true });
    root = mkdtempSync(join(tmpdir(), 'postern-install-'));
    eximSatellite('hub.example.org::smtps');
    r = await postern(['install', '--root', root]);
    let c = parseConfig(readFileSync(join(root, '/etc/postern/postern.toml'), 'utf8'), '/etc/postern/postern.toml');
    expect(c.smarthost.hosts).toEqual([{ name: 'hub.example.org', port: 465 }]);
    expect(c.smarthost.tls).toBe('implicit');
    rmSync(root, { recursive: true, force: true });
    root = mkdtempSync(join(tmpdir(), 'postern-install-'));
    eximSatellite('hub.example.org');
    write('/etc/exim4/exim4.conf.localmacros', 'REMOTE_SMTP_SMARTHOST_PROTOCOL = smtps\n');
    r = await postern(['install', '--root', root]);
    expect(r.stdout).toContain('REMOTE_SMTP_SMARTHOST_PROTOCOL = smtps (/etc/exim4/exim4.conf.localmacros): smarthost.tls = "implicit"');
    c = parseConfig(readFileSync(join(root, '/etc/postern/postern.toml'), 'utf8'), '/etc/postern/postern.toml');
    expect(c.smarthost.hosts).toEqual([{ name: 'hub.example.org', port: 465 }]);
    expect(c.smarthost.tls).toBe('implicit');
  });

  it('every setting of the Exim satellite is in the report: mapped, not needed, or not mapped, one line each', async () => {
    eximSatellite('mail.example.org::587');
    write('/etc/exim4/update-exim4.conf.conf', readFileSync(join(root, '/etc/exim4/update-exim4.conf.conf'), 'utf8')
      .replace("dc_other_hostnames=''", "dc_other_hostnames='web1;web1.local'")
      .replace("dc_use_split_config='false'", "dc_use_split_config='true'") + "dc_weird_local='x'\n");
    write('/etc/exim4/exim4.conf.localmacros', 'MAIN_TLS_ENABLE = yes\nDAEMON_SMTP_PORTS = 25 : 587\n');
    write('/etc/exim4/conf.d/main/000_localmacros', [
      'disable_ipv6 = true', 'MESSAGE_SIZE_LIMIT = 20M', 'MAIN_TIMEOUT_FROZEN_AFTER = 3d', 'SOME_SITE_MACRO = 1',
      'domainlist my_list = a.example', 'REMOTE_SMTP_HELO_DATA = web1.example.org', 'MAIN_LOG_SELECTOR = +all', ''].join('\n'));
    write('/etc/exim4/conf.d/main/02_exim4-config_options', 'SHIPPED_BY_DEBIAN = 1\n'); // Debian's own file: not the admin's
    write('/etc/hostname', 'web1\n');
    write('/etc/hosts', '127.0.0.1 localhost\n127.0.1.1 web1.example.org web1\n');
    write('/etc/aliases', 'postmaster: root\nroot: ops@example.net\nstaff: a, b\nlog: /var/log/mail\n');
    write('/etc/default/exim4', "QUEUEINTERVAL='30m'\n");
    const r = await postern(['install', '--root', root, '--dry-run']);
    expect(r.code).toBe(0);
    const report = (r.stdout + r.stderr).split('\n');
    const line = (what: string) => report.filter((l) => l.includes(what));
    // Each setting, one line, somewhere in the report.
    for (const what of ["dc_eximconfig_configtype=", "dc_other_hostnames=", "dc_local_interfaces=", "dc_readhost=", "dc_relay_domains=",
      "dc_minimaldns=", "dc_relay_nets=", "dc_smarthost=", "CFILEMODE=", "dc_use_split_config=", "dc_hide_mailname=", "dc_mailname_in_oh=",
      "dc_localdelivery=", "dc_weird_local=", 'MAIN_TLS_ENABLE', 'DAEMON_SMTP_PORTS', 'disable_ipv6', 'MESSAGE_SIZE_LIMIT',
      'MAIN_TIMEOUT_FROZEN_AFTER', 'SOME_SITE_MACRO', 'domainlist my_list', 'REMOTE_SMTP_HELO_DATA', 'MAIN_LOG_SELECTOR', '/etc/aliases',
      'QUEUEINTERVAL', '/etc/mailname', 'primary_hostname']) {
      expect(line(what).length, `${what} in ${JSON.stringify(report, null, 1)}`).toBeGreaterThanOrEqual(1);
    }
    expect(r.stdout).toContain('listen.smtp = ["127.0.0.1:25", "127.0.0.1:587"]');
    expect(r.stderr).toContain('not mapped: MAIN_TLS_ENABLE = yes (/etc/exim4/exim4.conf.localmacros): postern\'s listeners offer no STARTTLS');
    expect(r.stderr).toContain('not mapped: SOME_SITE_MACRO = 1 (/etc/exim4/conf.d/main/000_localmacros): no postern setting for it');
    expect(r.stdout).toContain('/etc/aliases (2 entries: postmaster: root, root: ops@example.net): rewrite.aliases = "/etc/aliases"');
    expect(r.stdout).toContain(`dc_other_hostnames='web1;web1.local': rewrite.local_domains = ["web1", "web1.local"]`);
    expect(r.stdout).toContain('primary_hostname (the host name web1, fully qualified by /etc/hosts): hostname = "web1.example.org"');
    expect(report.join('\n')).not.toContain('SHIPPED_BY_DEBIAN');
    // The configuration it would write, parsed.
    const c = parseConfig(importedToml(), '/etc/postern/postern.toml');
    expect(c.hostname).toBe('web1.example.org');
    expect(c.listen.smtp).toEqual([{ name: '127.0.0.1', port: 25 }, { name: '127.0.0.1', port: 587 }]);
    expect(c.listen.max_message_size).toBe(20 * 1024 * 1024);
    expect(c.retry.timeout_frozen_after).toBe(3 * 86_400_000);
    expect(c.rewrite.local_domains).toEqual(['web1', 'web1.local']);
    expect(c.rewrite.aliases).toBe('/etc/aliases');
    expect(r.stderr).toContain('not mapped: /etc/aliases (2 entries: staff: a, b; log: /var/log/mail): postern follows an alias of one address only');
  });

  it('a mail name that is not one of Exim\'s local domains is named: Exim did not send root@<mailname> to the readhost', async () => {
    eximSatellite('mail.example.org');
    write('/etc/mailname', 'mail.example.org\n');
    write('/etc/hostname', 'web1.example.org\n');
    const r = await postern(['install', '--root', root, '--dry-run']);
    expect(r.stderr).toContain('not mapped: qualify_domain mail.example.org is not one of Exim\'s local domains (web1.example.org, localhost): Exim sent mail for root@mail.example.org');
  });

  it('bad arguments and a missing record are one sentence', async () => {
    expect((await postern(['install', '--bogus'])).code).toBe(64);
    const u = await postern(['uninstall', '--root', root]);
    expect(u.code).toBe(1);
    expect(u.stderr).toBe('postern: postern install\'s record /var/lib/postern/install.json is missing: nothing to undo\n');
  });

  it('uninstall on a package install points to apt', async () => {
    write('/var/lib/dpkg/info/postern.list', '/usr/sbin/postern\n');
    const u = await postern(['uninstall', '--root', root]);
    expect(u.code).toBe(1);
    expect(u.stderr).toBe('postern: postern was installed by its Debian package, not by `postern install`: remove it with `apt remove postern` (`apt purge postern` also removes its configuration and log)\n');
  });
});

describe('postern install with the package\'s debconf answers (--smarthost, --readhost: postinst passes them)', () => {
  /** A package install: postern's own wrapper is the package's, dpkg lists it. */
  function packaged(): void {
    write('/usr/sbin/postern', '#!/bin/sh\nexec node /usr/lib/postern/bin/postern "$@"\n');
    write('/var/lib/dpkg/info/postern.list', '/usr/sbin/postern\n');
  }

  it('smarthostAnswer reads exim4-config\'s dc_smarthost syntax and postern\'s host:port', () => {
    expect(smarthostAnswer('hub.example.org::587')).toEqual(['hub.example.org:587']);
    expect(smarthostAnswer('hub.example.org:587')).toEqual(['hub.example.org:587']);
    expect(smarthostAnswer('a.example::587; b.example')).toEqual(['a.example:587', 'b.example:25']);
    expect(smarthostAnswer('a.example:b.example')).toEqual(['a.example:25', 'b.example:25']);
    expect(smarthostAnswer('[::1]:2525')).toEqual(['[::1]:2525']);
    expect(smarthostAnswer('[2001:db8::1]::587')).toEqual(['[2001:db8::1]:587']);
    expect(smarthostAnswer('hub::smtps')).toEqual(['hub:465']);
    expect(smarthostAnswer('two words')).toBeUndefined();
  });

  it('a new file: the answers win over Exim\'s dc_smarthost and dc_readhost, the rest is Exim\'s', async () => {
    eximSatellite('mail.example.org::587');
    packaged();
    const r = await postern(['install', '--root', root, '--smarthost', 'hub.example.net::2525', '--readhost', 'example.com']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('debconf postern/smarthost=\'hub.example.net::2525\': smarthost.hosts = ["hub.example.net:2525"] (instead of dc_smarthost=\'mail.example.org::587\')');
    const c = parseConfig(readFileSync(join(root, 'etc/postern/postern.toml'), 'utf8'), 'postern.toml');
    expect(c.smarthost.hosts).toEqual([{ name: 'hub.example.net', port: 2525 }]);
    expect(c.rewrite?.readhost).toBe('example.com');
    expect(c.listen.relay_from).toContain('192.168.1.0/24');
  });

  it('answers equal to Exim\'s (the config script takes them from there) change nothing of the import', async () => {
    eximSatellite('mail.example.org::587');
    packaged();
    const r = await postern(['install', '--root', root, '--smarthost', 'mail.example.org::587', '--readhost', 'example.org']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('debconf postern/');
    expect(readFileSync(join(root, 'etc/postern/postern.toml'), 'utf8')).toBe(importExim(root).toml);
  });

  it('an existing file: only smarthost.hosts and rewrite.readhost change, every other line stays; the same answers again: nothing', async () => {
    packaged();
    const mine = '# mine\nuser = "postern"\n\n[smarthost]\nhosts = [\n  "old.example.org:25",\n]\ntls = "required"  # my choice\n\n[rewrite]\nreadhost = "old.example"\n';
    write('/etc/postern/postern.toml', mine);
    const r = await postern(['install', '--root', root, '--smarthost', 'hub.example.net:587', '--readhost', 'example.com']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('set smarthost.hosts and rewrite.readhost in /etc/postern/postern.toml (the rest of it as it was)');
    expect(r.stdout).not.toContain('importing Debian');
    const now = readFileSync(join(root, 'etc/postern/postern.toml'), 'utf8');
    expect(now).toBe('# mine\nuser = "postern"\n\n[smarthost]\nhosts = ["hub.example.net:587"]\ntls = "required"  # my choice\n\n[rewrite]\nreadhost = "example.com"\n');
    const again = await postern(['install', '--root', root, '--smarthost', 'hub.example.net::587', '--readhost', 'example.com']);
    expect(again.stdout).toContain('keeping /etc/postern/postern.toml as it is (its smarthost and readhost are the answers given)');
    expect(readFileSync(join(root, 'etc/postern/postern.toml'), 'utf8')).toBe(now);
    // No smarthost answer: the hosts stay; an empty readhost removes it.
    await postern(['install', '--root', root, '--smarthost', '', '--readhost', '']);
    expect(readFileSync(join(root, 'etc/postern/postern.toml'), 'utf8')).toBe(now.replace('readhost = "example.com"\n', ''));
  });

  it('withAnswers adds a missing key or table', () => {
    expect(withAnswers('[smarthost]\nhosts = ["a:25"]\n', { hosts: ['a:25'] }, { readhost: 'example.org' }, undefined))
      .toBe('[smarthost]\nhosts = ["a:25"]\n\n[rewrite]\nreadhost = "example.org"\n');
    expect(withAnswers('[rewrite]\nhide_hostname = false\n', { hosts: [] }, { readhost: 'example.org' }, undefined))
      .toBe('[rewrite]\nreadhost = "example.org"\nhide_hostname = false\n');
  });
});

describe.skipIf(process.getuid?.() !== 0)('postern install from a tree others may change (needs root)', () => {
  // A copy of the commands in a folder nobody owns (node_modules linked): what a clone
  // in a user's home, run by root, looks like.
  let tree: string;
  beforeEach(() => {
    tree = mkdtempSync(join(tmpdir(), 'postern-tree-'));
    for (const f of ['bin', 'config', 'dist', 'package.json']) cpSync(join(ROOT, f), join(tree, f), { recursive: true, preserveTimestamps: true });
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    chownSync(tree, Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout), 0);
  });
  afterEach(() => rmSync(tree, { recursive: true, force: true }));
  const run = (args: string[]) => spawnSync(process.execPath, [join(tree, 'bin/postern'), ...args], { encoding: 'utf8' });

  it('a real install is refused, naming the folder and its owner; --root installs with a loud warning', () => {
    const real = run(['install', '--dry-run']); // refused before any step, so even a dry run tells
    expect(real.stderr).toBe(`postern: the wrapper would have root run postern from ${tree}, but ${tree} belongs to nobody: install from folders only root may change (a copy under /usr/local, or the Debian package)\n`);
    expect(real.status).toBe(1);
    const into = run(['install', '--root', root]);
    expect(into.status).toBe(0);
    expect(into.stderr).toContain(`postern install: WARNING: the wrapper would have root run postern from ${tree}, but ${tree} belongs to nobody\n`);
  });

  it('names the first of a path and the folders above it that others may write, through links too', async () => {
    const { notRootsAlone } = await import('../../src/install/install.js');
    chownSync(tree, 0, 0);
    expect(notRootsAlone(join(tree, 'bin/postern'))).toBeUndefined();
    chmodSync(tree, 0o775);
    chownSync(tree, 0, 4242);
    expect(notRootsAlone(join(tree, 'bin/postern'))).toBe(`${tree} may be written by the group 4242`);
    chmodSync(tree, 0o777);
    expect(notRootsAlone(join(tree, 'bin/postern'))).toBe(`${tree} may be written by every user`);
    chmodSync(tree, 0o755);
    symlinkSync(join(tree, 'bin/postern'), join(root, 'linked'));
    chownSync(join(tree, 'bin'), 65534, 0);
    expect(notRootsAlone(join(root, 'linked'))).toBe(`${join(tree, 'bin')} belongs to nobody`);
  });
});

describe('mail through an installed postern', () => {
  let sink: Sink;
  let p: Instance;
  afterEach(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it('env -i /usr/sbin/sendmail (cron style) reaches the imported smarthost', async () => {
    sink = new Sink();
    await sink.listen();
    eximSatellite(`127.0.0.1::${sink.port}`);
    const r = await postern(['install', '--root', root]);
    expect(r.code).toBe(0);
    // The installed configuration, with its paths moved into a test folder (no postern user here).
    p = new Instance([sink.port]);
    const toml = readFileSync(join(root, '/etc/postern/postern.toml'), 'utf8')
      .replace('user = "postern"\n', '')
      .replace(/^smtp = .*$/m, 'smtp = ["127.0.0.1:0"]')
      .replace('"/var/spool/postern"', JSON.stringify(join(p.dir, 'spool')))
      .replace('"/var/log/postern/mainlog"', JSON.stringify(join(p.dir, 'log/mainlog')))
      .replace('tls = "opportunistic"', 'tls = "none"')
      .replace(/\n\[rewrite\][^[]*$/, '\n'); // the hub's side of the import; rewriting has its own tests
    expect(toml).toContain(`hosts = ["127.0.0.1:${sink.port}"]`);
    writeFileSync(p.config, toml);
    await p.start();
    // What cron runs: no PATH, no HOME, nothing.
    const cron = spawnSync('env', ['-i', join(root, '/usr/sbin/sendmail'), '-C', p.config, '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root'], {
      input: 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> run-parts\n\nran\n', encoding: 'utf8',
    });
    expect(cron.stderr).toBe('');
    expect(cron.status).toBe(0);
    const got = await waitUntil('the sink to get the cron mail', () => sink.messages.find((m) => m.data.includes('run-parts')));
    expect(got.to).toEqual(['root@web1.example.org']);
    expect(got.from).toBe('root@web1.example.org');
    const mailq = spawnSync('env', ['-i', join(root, '/usr/bin/mailq'), '-C', p.config], { encoding: 'utf8' });
    expect(mailq.status).toBe(0);
    const u = await postern(['uninstall', '--root', root]);
    expect(u.code).toBe(0);
    expect(readlinkSync(join(root, '/usr/sbin/sendmail'))).toBe('exim4');
  });
});
