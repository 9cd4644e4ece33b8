// Sender rewriting on the way out, end to end (real daemon, real sendmail, real test
// hub): GNU-mail-like and cron-like messages reach the hub as user@readhost with names
// and comments kept, envelope too; /etc/email-addresses entries win; the spool keeps
// the original and the body is untouched. Then the small Exim parities: P=utf8esmtp on
// `<=`, a message that needs SMTPUTF8 failing (bounced, Exim's words) at a hub that does
// not offer it, and X=/CV=/A= on `=>` when TLS and AUTH carried the message.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

const headerOf = (data: string, name: string) => new RegExp(`^${name}:.*(?:\\r\\n[ \\t].*)*`, 'mi').exec(data)?.[0];

describe('sender rewriting toward the smarthost', () => {
  let hub: Sink;
  let p: Instance;
  let dir: string;
  afterEach(async () => {
    await p.cleanup();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start() {
    hub = new Sink();
    await hub.listen();
    dir = mkdtempSync(join(tmpdir(), 'postern-rw-'));
    writeFileSync(join(dir, 'email-addresses'), '# Debian\'s format\njane: jane.doe@isp.example\n');
    p = new Instance([hub.port], `[rewrite]\nreadhost = "example.org"\nemail_addresses = "${join(dir, 'email-addresses')}"\n`);
    // A host whose mail name is its own: what Debian's readhost hides.
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('qualify_domain = "example.org"', 'qualify_domain = "web1.example.org"'));
  }

  it('GNU mail and cron: From, To and the envelope sender go out as user@readhost, comments kept; the spool keeps the original', async () => {
    await start();
    // GNU mail: `mail -s "disk full" ops@example.net` runs sendmail -i -- ops@example.net with no From:.
    const mail = await p.run('sendmail', ['-odq', '-i', '--', 'ops@example.net'],
      { input: 'To: ops@example.net\nSubject: disk full\n\nFrom: root@web1.example.org stays in the body\n' });
    expect(mail.code).toBe(0);
    // cron: From: root (Cron Daemon), To: root, sendmail -FCronDaemon -i -B8BITMIME -oem root.
    const cron = await p.run('sendmail', ['-odq', '-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'root'],
      { input: 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> run-parts /etc/cron.daily\n\noutput\n' });
    expect(cron.code).toBe(0);
    const ids = (await p.run('postern-qgrep', ['-i'])).stdout.trim().split('\n');
    expect(ids).toHaveLength(2);
    const held = (await Promise.all(ids.map((id) => p.run('postern', ['-Mvh', id])))).map((r) => r.stdout).join('');
    // The spool holds them as they arrived (qualified, the comment kept), never rewritten.
    expect(held).toContain('\nFrom: root@web1.example.org (Cron Daemon)\nTo: root@web1.example.org\n');
    expect(held).toContain('\nFrom: root <root@web1.example.org>\n'); // the name from root's passwd entry, as Exim adds it
    await p.start();
    expect((await p.run('postern', ['-q'])).code).toBe(0);
    await hub.waitFor(2);
    const gnu = hub.messages.find((m) => m.data.includes('disk full'))!;
    const cronMsg = hub.messages.find((m) => m.data.includes('run-parts'))!;
    expect(gnu.from).toBe('root@example.org');
    expect(headerOf(gnu.data, 'From')).toBe('From: root <root@example.org>');
    expect(headerOf(gnu.data, 'To')).toBe('To: ops@example.net');
    expect(gnu.data).toContain('\r\n\r\nFrom: root@web1.example.org stays in the body\r\n');
    expect(cronMsg.from).toBe('root@example.org');
    expect(headerOf(cronMsg.data, 'From')).toBe('From: root@example.org (Cron Daemon)');
    expect(headerOf(cronMsg.data, 'To')).toBe('To: root@example.org');
    expect(headerOf(cronMsg.data, 'Subject')).toBe('Subject: Cron <root@web1> run-parts /etc/cron.daily');
    // Debian's hub_user: a local user's mail goes to user@readhost, and the log says so as Exim does.
    expect(cronMsg.to).toEqual(['root@example.org']);
    await p.waitForLog(/=> root@example\.org <root@web1\.example\.org> R=hub_user_smarthost T=remote_smtp H=/);
    // The main log names the sender as it arrived.
    expect(p.log()).toMatch(/<= root@web1\.example\.org U=\S+ P=local S=/);
  });

  it('hub_user without hide_hostname: local logins in local domains go to user@readhost, the sender and headers stay; -bt shows it as Exim does', async () => {
    hub = new Sink();
    await hub.listen();
    dir = mkdtempSync(join(tmpdir(), 'postern-rw-'));
    p = new Instance([hub.port], `[rewrite]\nreadhost = "example.org"\nhide_hostname = false\nlocal_domains = ["web1"]\n`);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('qualify_domain = "example.org"', 'qualify_domain = "web1.example.org"'));
    const bt = await p.run('postern', ['-bt', 'root', 'nosuchuser-xq@web1.example.org', 'ops@example.net']);
    expect(bt.code).toBe(0);
    expect(bt.stdout).toMatch(/^root@example\.org\n    <-- root@web1\.example\.org\n  router = hub_user_smarthost, transport = remote_smtp\n  host /);
    expect(bt.stdout).toContain('nosuchuser-xq@web1.example.org\n  router = smarthost, transport = remote_smtp\n');
    await p.start();
    const id = (await sendOne(p.port, 'app@web1.example.org', ['root@web1', 'root@localhost', 'nosuchuser-xq@web1.example.org', 'ops@example.net'],
      'From: app@web1.example.org\nTo: root@web1\nSubject: hub_user\n\nx\n')).slice(-16);
    await hub.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    const m = hub.messages[0]!;
    // Two originals meet in one address: the hub gets it once.
    expect(m.to).toEqual(['root@example.org', 'nosuchuser-xq@web1.example.org', 'ops@example.net']);
    expect(m.from).toBe('app@web1.example.org');
    expect(headerOf(m.data, 'To')).toBe('To: root@web1');
    expect(headerOf(m.data, 'From')).toBe('From: app@web1.example.org');
    expect(p.log()).toMatch(new RegExp(`${id} => root@example\\.org <root@web1> R=hub_user_smarthost T=remote_smtp H=`));
    expect(p.log()).toMatch(new RegExp(`${id} -> root@example\\.org <root@localhost> R=hub_user_smarthost T=remote_smtp H=`));
    expect(p.log()).toMatch(new RegExp(`${id} -> nosuchuser-xq@web1\\.example\\.org R=smarthost T=remote_smtp H=`));
  });

  it('rewrite.aliases as Debian\'s system_aliases, before hub_user: one-address aliases are followed, others left to the hub', async () => {
    hub = new Sink();
    await hub.listen();
    dir = mkdtempSync(join(tmpdir(), 'postern-rw-'));
    writeFileSync(join(dir, 'aliases'), '# /etc/aliases\npostmaster: root\nabuse: ops@example.net\nstaff: root, ops@example.net\n');
    p = new Instance([hub.port], `[rewrite]\nreadhost = "example.org"\naliases = "${join(dir, 'aliases')}"\n`);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('qualify_domain = "example.org"', 'qualify_domain = "web1.example.org"'));
    await p.start();
    const id = (await sendOne(p.port, 'app@web1.example.org', ['postmaster@web1.example.org', 'abuse@localhost', 'staff@web1.example.org'],
      'Subject: aliases\n\nx\n')).slice(-16);
    await hub.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(hub.messages[0]!.to).toEqual(['root@example.org', 'ops@example.net', 'staff@web1.example.org']);
    expect(p.log()).toMatch(new RegExp(`${id} => root@example\\.org <postmaster@web1\\.example\\.org> R=hub_user_smarthost T=remote_smtp H=`));
    expect(p.log()).toMatch(new RegExp(`${id} -> ops@example\\.net <abuse@localhost> R=smarthost T=remote_smtp H=`));
    expect(p.log()).toMatch(new RegExp(`${id} -> staff@web1\\.example\\.org R=smarthost T=remote_smtp H=`));
  });

  it('email-addresses wins over readhost, for the envelope and for headers; other domains are left alone', async () => {
    await start();
    await p.start();
    await sendOne(p.port, 'jane@web1.example.org', ['ops@example.net'],
      'From: "Jane Doe" <jane@web1.example.org>\nReply-To: jane@web1.example.org, app@example.net\nCc: www-data@localhost\nSubject: hi\n\nx\n');
    await hub.waitFor(1);
    const m = hub.messages[0]!;
    expect(m.from).toBe('jane.doe@isp.example');
    expect(headerOf(m.data, 'From')).toBe('From: "Jane Doe" <jane.doe@isp.example>');
    expect(headerOf(m.data, 'Reply-To')).toBe('Reply-To: jane.doe@isp.example, app@example.net');
    expect(headerOf(m.data, 'Cc')).toBe('Cc: www-data@example.org');
  });

  it('SIGHUP reads the email-addresses file again; a bad one on reload keeps the old rules', async () => {
    await start();
    await p.start();
    const file = join(dir, 'email-addresses');
    writeFileSync(file, 'jane: jane@new.example\n');
    p.daemon?.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received: configuration reloaded/);
    await sendOne(p.port, 'jane@web1.example.org', ['ops@example.net'], 'Subject: after reload\n\nx\n');
    await hub.waitFor(1);
    expect(hub.messages[0]!.from).toBe('jane@new.example');
    writeFileSync(file, 'jane jane@\n');
    p.daemon?.kill('SIGHUP');
    await p.waitForLog(new RegExp(`SIGHUP received: configuration error in ${file.replace(/[.]/g, '\\.')} line 1: .*; keeping the old configuration`));
    await sendOne(p.port, 'jane@web1.example.org', ['ops@example.net'], 'Subject: bad reload\n\nx\n');
    await hub.waitFor(2);
    expect(hub.messages[1]!.from).toBe('jane@new.example');
  });

  it('a bad email-addresses line stops the daemon from starting, naming the file and line; -bV says the same', async () => {
    await start();
    writeFileSync(join(dir, 'email-addresses'), 'root: admin@example.org\nbroken line here\n');
    const bv = await p.run('postern', ['-bV']);
    expect(bv.code).toBe(1);
    expect(bv.stderr).toBe(`postern: configuration error in ${join(dir, 'email-addresses')} line 2: "line here" is not an address (user: someone@example.org)\n`);
    await expect(p.start()).rejects.toThrow(/daemon exited 1: postern: configuration error in .*email-addresses line 2/);
  });
});

describe('Exim parities on the way in and out', () => {
  let hub: Sink;
  let p: Instance;
  afterEach(async () => {
    await p.cleanup();
    await hub.close();
  });

  async function utf8Message(port: number): Promise<string> {
    const { client } = await RawSmtp.open(port);
    await client.cmd('EHLO client.test');
    expect(await client.cmd('MAIL FROM:<jürgen@example.org> SMTPUTF8')).toMatch(/^250/);
    expect(await client.cmd('RCPT TO:<zoë@example.org>')).toMatch(/^250/);
    const reply = await client.data('Subject: grüße\n\nx\n');
    client.close();
    return reply.slice(-16);
  }

  it('P=utf8esmtp for an SMTPUTF8 arrival; a hub that offers SMTPUTF8 gets it', async () => {
    hub = new Sink();
    await hub.listen();
    p = new Instance([hub.port]);
    await p.start();
    const id = await utf8Message(p.port);
    await hub.waitFor(1);
    expect(hub.messages[0]!.from).toBe('jürgen@example.org');
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(p.log()).toMatch(new RegExp(`${id} <= jürgen@example\\.org H=\\(client\\.test\\) \\[127\\.0\\.0\\.1\\] P=utf8esmtp S=`));
    const plain = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: ascii\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${plain} <= a@example\\.org .* P=esmtp S=`));
  });

  it('a message that needs SMTPUTF8 fails at a hub that does not offer it, with Exim\'s words, and is bounced; nothing raw goes out', async () => {
    hub = new Sink({ hideSMTPUTF8: true });
    const mails: string[] = [];
    hub.behaviour.mail = (a) => { mails.push(a); return undefined; };
    await hub.listen();
    p = new Instance([hub.port]);
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    await client.cmd('EHLO client.test');
    expect(await client.cmd('MAIL FROM:<app@example.org>')).toMatch(/^250/);
    expect(await client.cmd('RCPT TO:<zoë@example.org>')).toMatch(/^250/);
    const id = (await client.data('Subject: utf8 rcpt\n\nx\n')).slice(-16);
    client.close();
    await p.waitForLog(new RegExp(`${id} \\*\\* zoë@example\\.org R=smarthost T=remote_smtp H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${hub.port}: utf8 support required but not offered for forwarding$`));
    await p.waitForLog(new RegExp(`${id} Completed`));
    // The bounce (ASCII envelope) reaches the sender through the same hub.
    await hub.waitFor(1);
    expect(hub.messages[0]!.from).toBe('');
    expect(hub.messages[0]!.to).toEqual(['app@example.org']);
    expect(hub.messages[0]!.data).toContain('utf8 support required but not offered for forwarding');
    expect(mails).toEqual(['']); // no MAIL FROM for the message itself, only the bounce's
  });
});

describe('X=, CV= and A= on => lines (TLS and AUTH toward the hub)', () => {
  let certDir: string;
  let hub: Sink;
  let p: Instance;
  beforeAll(() => {
    certDir = mkdtempSync(join(tmpdir(), 'postern-x-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'hub.key'), '-out', join(certDir, 'hub.pem')], { stdio: 'ignore' });
    writeFileSync(join(certDir, 'pass'), 'sekret\n');
  });
  afterAll(() => rmSync(certDir, { recursive: true, force: true }));
  afterEach(async () => {
    await p.cleanup();
    await hub.close();
  });

  async function tlsHub(authMethods: string[]) {
    hub = new Sink({
      disabledCommands: [],
      authOptional: false,
      authMethods,
      key: readFileSync(join(certDir, 'hub.key')),
      cert: readFileSync(join(certDir, 'hub.pem')),
      onAuth: (_a: unknown, _s: unknown, cb: (e: Error | null, r?: { user: string }) => void) => cb(null, { user: 'web1' }),
    });
    await hub.listen();
  }

  it.each<[string, string, string[], RegExp]>([
    ['required', `tls_ca_file = "CA"`, ['PLAIN', 'LOGIN'], / X=TLS1\.[23]:[A-Z0-9_-]+:(128|256) CV=yes A=plain C="250 /],
    ['opportunistic', '', ['LOGIN'], / X=TLS1\.[23]:[A-Z0-9_-]+:(128|256) CV=no A=login C="250 /],
  ])('tls = %s', async (tls, extra, methods, want) => {
    await tlsHub(methods);
    p = new Instance([hub.port]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "${tls}"\n${extra.replace('CA', join(certDir, 'hub.pem'))}\nauth_user = "web1"\nauth_password_file = "${join(certDir, 'pass')}"`));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: x\n\nx\n')).slice(-16);
    const [line] = await p.waitForLog(new RegExp(`${id} => ops@example\\.org .*`));
    expect(line).toMatch(new RegExp(`R=smarthost T=remote_smtp H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${hub.port}${want.source}`));
  });

  it('no X= and no A= in cleartext', async () => {
    hub = new Sink();
    await hub.listen();
    p = new Instance([hub.port]);
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: x\n\nx\n')).slice(-16);
    const [line] = await p.waitForLog(new RegExp(`${id} => ops@example\\.org .*`));
    expect(line).toMatch(new RegExp(`H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${hub.port} C="250 `));
    await waitUntil('Completed', () => p.log().includes(`${id} Completed`));
  });
});
