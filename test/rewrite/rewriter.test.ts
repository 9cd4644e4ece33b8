// Sender rewriting as Debian's Exim satellites do it (rewrite/): one row per case of
// the policy. A local user's address (hostname, qualify_domain, localhost) goes out as
// /etc/email-addresses says, else as user@readhost; names, comments, quoting, groups
// and folds stay as written; long headers are folded; a bad email-addresses line is a
// configuration error naming file and line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/validate.js';
import { findAddresses, foldHeader, mapAddresses } from '../../src/rewrite/address-list.js';
import { parseEmailAddresses, rewriteRules } from '../../src/rewrite/load.js';
import { rewriteAddress, rewriteHeaders, rewriteRecipient, rewriteSender, type RewriteRules } from '../../src/rewrite/rewriter.js';

const rules: RewriteRules = {
  localDomains: ['vm.example.org', 'vm', 'localhost'],
  readhost: 'example.org',
  emailAddresses: new Map([['jane', 'jane.doe@isp.example']]),
};
const noReadhost: RewriteRules = { ...rules, readhost: undefined } as RewriteRules;
delete (noReadhost as { readhost?: string }).readhost;

describe('findAddresses: the addr-specs of an address list, where they are', () => {
  it.each<[string, string[] | undefined]>([
    ['root@vm', ['root@vm']],
    ['root@vm (Cron Daemon)', ['root@vm']],
    ['root (Cron Daemon)', ['root']],
    ['"Cron Daemon" <root@vm>', ['root@vm']],
    ['Cron Daemon <root@vm>', ['root@vm']],
    ['a@b, "x, y" <c@d>, e', ['a@b', 'c@d', 'e']],
    ['team: a@b, c@d;, e@f', ['a@b', 'c@d', 'e@f']],
    ['undisclosed-recipients:;', []],
    ['<@relay.example:root@vm>', ['root@vm']],
    ['"john smith"@vm', ['"john smith"@vm']],
    ['John Smith', []],
    ['"Just A Name"', []],
    ['(only a comment)', []],
    ['a@b,,c@d', ['a@b', 'c@d']],
    ['<root@vm> (comment, with comma)', ['root@vm']],
    ['"open quote <root@vm>', undefined],
    ['(open comment root@vm', undefined],
    ['<root@vm', undefined],
  ])('%s', (value, want) => {
    expect(findAddresses(value)?.map((s) => s.address)).toEqual(want);
  });

  it('mapAddresses replaces only the addresses, byte for byte elsewhere', () => {
    const value = ' "Ops, on call" <ops@vm> (pager),\n\troot (Cron Daemon)';
    expect(mapAddresses(value, (a) => a.toUpperCase())).toBe(' "Ops, on call" <OPS@VM> (pager),\n\tROOT (Cron Daemon)');
    expect(mapAddresses(value, () => undefined)).toBeUndefined();
  });
});

describe('rewriteAddress: which addresses change and to what', () => {
  it.each<[string, RewriteRules, string]>([
    ['root@vm', rules, 'root@example.org'],
    ['root@VM.Example.Org', rules, 'root@example.org'],
    ['root@localhost', rules, 'root@example.org'],
    ['root@vm.', rules, 'root@example.org'],
    ['jane@vm', rules, 'jane.doe@isp.example'],
    ['JANE@vm.example.org', rules, 'jane.doe@isp.example'],
    ['jane@elsewhere.example', rules, 'jane@elsewhere.example'],
    ['root@example.org', rules, 'root@example.org'],
    ['root@sub.vm.example.org', rules, 'root@sub.vm.example.org'],
    ['"a b"@vm', rules, '"a b"@example.org'],
    ['root', rules, 'root@example.org'],
    ['root', noReadhost, 'root'],
    ['root@vm', noReadhost, 'root@vm'],
    ['jane@vm', noReadhost, 'jane.doe@isp.example'],
  ])('%s', (address, r, want) => {
    expect(rewriteAddress(address, r)).toBe(want);
  });

  it('the envelope sender: <> stays <>, UTF-8 local parts survive', () => {
    expect(rewriteSender('', rules)).toBe('');
    expect(rewriteSender('root@vm', rules)).toBe('root@example.org');
    expect(rewriteSender('jörg@vm', rules)).toBe('jörg@example.org');
    expect(rewriteSender('app@example.net', rules)).toBe('app@example.net');
  });
});

describe('rewriteHeaders: From, Reply-To, Sender, To, Cc, Bcc on the way out', () => {
  it.each<[string, string]>([
    // cron, GNU mail, a script with a named address, a group
    ['From: root (Cron Daemon)\n', 'From: root@example.org (Cron Daemon)\n'],
    ['From: root@vm (Cron Daemon)\n', 'From: root@example.org (Cron Daemon)\n'],
    ['From: "Jane Doe" <jane@vm>\n', 'From: "Jane Doe" <jane.doe@isp.example>\n'],
    ['Reply-To: root@vm\n', 'Reply-To: root@example.org\n'],
    ['Sender: www-data@vm.example.org\n', 'Sender: www-data@example.org\n'],
    ['To: ops@example.net, root@vm\n', 'To: ops@example.net, root@example.org\n'],
    ['Cc: team: a@vm, b@example.net;\n', 'Cc: team: a@example.org, b@example.net;\n'],
    ['Bcc: root@localhost\n', 'Bcc: root@example.org\n'],
    ['cc: root@vm\n', 'cc: root@example.org\n'],
    ['To: root@vm,\n\tops@vm\n', 'To: root@example.org,\n\tops@example.org\n'],
    // not address headers, or nothing to change, or malformed: as they were
    ['Subject: mail from root@vm\n', 'Subject: mail from root@vm\n'],
    ['Message-Id: <E1@vm>\n', 'Message-Id: <E1@vm>\n'],
    ['Resent-From: root@vm\n', 'Resent-From: root@vm\n'],
    ['From: app@example.net\n', 'From: app@example.net\n'],
    ['From: "broken <root@vm>\n', 'From: "broken <root@vm>\n'],
    ['X-Original-From: root@vm\n', 'X-Original-From: root@vm\n'],
  ])('%j', (block, want) => {
    expect(rewriteHeaders(block, rules)).toBe(want);
  });

  it('keeps other headers, order and a last line without LF', () => {
    const block = 'Received: from root by vm\n\tid 1;\nFrom: root@vm\nSubject: x\nX-Last: y';
    expect(rewriteHeaders(block, rules)).toBe('Received: from root by vm\n\tid 1;\nFrom: root@example.org\nSubject: x\nX-Last: y');
  });

  it('UTF-8 bytes in names and local parts stay as they came', () => {
    const bytes = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
    expect(rewriteHeaders(bytes('From: Jörg <jörg@vm>\n'), rules)).toBe(bytes('From: Jörg <jörg@example.org>\n'));
  });

  it('a header that grows past 78 octets is folded at commas, each line within 78', () => {
    const many = Array.from({ length: 8 }, (_, i) => `user${i}@vm`).join(', ');
    const out = rewriteHeaders(`To: ${many}\n`, { ...rules, readhost: 'a-rather-long-readhost-name.example.org' });
    const lines = out.slice(0, -1).split('\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(78);
    for (const l of lines.slice(0, -1)) expect(l.endsWith(',')).toBe(true);
    expect(out.replace(/\n(?=[ \t])/g, '')).toBe(`To: ${Array.from({ length: 8 }, (_, i) => `user${i}@a-rather-long-readhost-name.example.org`).join(', ')}\n`);
  });
});

describe('foldHeader', () => {
  it.each<[string, string]>([
    ['To: a@b\n', 'To: a@b\n'],
    [`Subject: ${'x'.repeat(100)}\n`, `Subject: ${'x'.repeat(100)}\n`], // no place to fold
    [`To: "${'n '.repeat(45)}" <a@b>\n`, `To: "${'n '.repeat(45)}"\n <a@b>\n`], // never inside quotes
    [`To: ${'a'.repeat(70)}@b, c@d\n`, `To: ${'a'.repeat(70)}@b,\n c@d\n`],
  ])('%j', (raw, want) => {
    expect(foldHeader(raw)).toBe(want);
    for (const line of foldHeader(raw).split('\n')) expect(line.length).toBeLessThanOrEqual(998);
  });
});

describe('email-addresses files (Debian format)', () => {
  it('reads user: address lines, comments, blank lines, continuation lines', () => {
    const map = parseEmailAddresses('# /etc/email-addresses\n\nroot: admin@example.org\nJane:jane.doe@isp.example\n"odd user": <odd@example.org>\nbob\n  bob@example.net\n', '/etc/email-addresses');
    expect([...map]).toEqual([['root', 'admin@example.org'], ['jane', 'jane.doe@isp.example'], ['odd user', 'odd@example.org'], ['bob', 'bob@example.net']]);
  });

  it.each<[string, RegExp]>([
    ['root admin at example.org\n', /line 1: "admin at example\.org" is not an address/],
    ['# ok\nroot:\n', /line 2: no address for "root"/],
    ['root: a@b\nroot: c@d\n', /line 2: "root" is listed twice/],
    ['root: Admin <admin@example.org>\n', /line 1: .* is not an address/],
    ['  root: a@b\n', /line 1: a continuation line/],
  ])('a bad line is a configuration error naming file and line: %j', (text, want) => {
    expect(() => parseEmailAddresses(text, '/etc/email-addresses')).toThrow(/^configuration error in \/etc\/email-addresses line \d+: /);
    expect(() => parseEmailAddresses(text, '/etc/email-addresses')).toThrow(want);
  });

  it('rewriteRules: the sender\'s readhost only with hide_hostname, hub_user with any readhost; the file read each time; none when nothing is asked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-rewrite-'));
    try {
      const file = join(dir, 'email-addresses');
      const passwd = join(dir, 'passwd');
      writeFileSync(file, 'jane: jane.doe@isp.example\n');
      writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nWWW-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n');
      const base = { hostname: 'vm.example.org', qualify_domain: 'vm.example.org' };
      expect(rewriteRules({ ...base, rewrite: { hide_hostname: true, local_domains: [] } })).toBeUndefined();
      expect(rewriteRules({ ...base, rewrite: { hide_hostname: false, readhost: 'example.org', local_domains: ['VM'] } }, passwd))
        .toEqual({ localDomains: ['vm.example.org', 'localhost', 'vm'], emailAddresses: new Map(),
          hubUser: { readhost: 'example.org', users: new Set(['root', 'www-data']), qualifyDomain: 'vm.example.org' } });
      expect(rewriteRules({ ...base, rewrite: { hide_hostname: true, readhost: 'Example.ORG', local_domains: [] } }, passwd))
        .toEqual({ localDomains: ['vm.example.org', 'localhost'], readhost: 'example.org', emailAddresses: new Map(),
          hubUser: { readhost: 'example.org', users: new Set(['root', 'www-data']), qualifyDomain: 'vm.example.org' } });
      const r = rewriteRules({ ...base, rewrite: { hide_hostname: false, readhost: 'example.org', email_addresses: file, local_domains: [] } });
      expect(r?.readhost).toBeUndefined();
      expect([...r!.emailAddresses]).toEqual([['jane', 'jane.doe@isp.example']]);
      writeFileSync(file, 'jane jane@\n');
      expect(() => rewriteRules({ ...base, rewrite: { hide_hostname: true, email_addresses: file, local_domains: [] } })).toThrow(`configuration error in ${file} line 1`);
      expect(() => rewriteRules({ ...base, rewrite: { hide_hostname: true, email_addresses: join(dir, 'missing'), local_domains: [] } }))
        .toThrow(/rewrite\.email_addresses: cannot read .*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('[rewrite] in postern.toml', () => {
  const toml = (rewrite: string) => `qualify_domain = "vm.example.org"\n[smarthost]\nhosts = ["127.0.0.1:25"]\n[rewrite]\n${rewrite}\n`;
  it('defaults: no readhost, hide_hostname on, no file; a relative file is read beside postern.toml', () => {
    expect(parseConfig(toml(''), '/etc/postern/postern.toml').rewrite).toEqual({ hide_hostname: true, local_domains: [] });
    expect(parseConfig(toml('readhost = "example.org"\nemail_addresses = "email-addresses"'), '/etc/postern/postern.toml').rewrite)
      .toEqual({ readhost: 'example.org', hide_hostname: true, email_addresses: '/etc/postern/email-addresses', local_domains: [] });
  });
  it('a readhost that is no domain names its line', () => {
    expect(() => parseConfig(toml('readhost = "example org"'), '/etc/postern/postern.toml'))
      .toThrow('configuration error in /etc/postern/postern.toml line 5: rewrite.readhost: must be a domain such as "example.org"');
  });
});

describe('rewriteRecipient: Debian\'s hub_user router (a local login in a local domain goes to user@readhost)', () => {
  const hub: RewriteRules = { ...noReadhost, hubUser: { readhost: 'example.org', users: new Set(['root', 'www-data']) } };
  it.each<[string, string | undefined]>([
    ['root@vm.example.org', 'root@example.org'],
    ['root@VM', 'root@example.org'],
    ['Root@localhost', 'root@example.org'], // Exim's $local_part is lower case
    ['www-data@vm.example.org.', 'www-data@example.org'],
    ['nosuchuser@vm.example.org', undefined], // check_local_user: not a login here
    ['ops@example.org', undefined], // not a local domain
    ['root@other.example', undefined],
  ])('%s -> %s', (address, want) => {
    expect(rewriteRecipient(address, hub)?.address).toBe(want);
  });
  it('nothing without a readhost', () => {
    expect(rewriteRecipient('root@vm.example.org', rules)).toBeUndefined();
  });
  const aliased: RewriteRules = { ...hub, hubUser: { ...hub.hubUser!, qualifyDomain: 'vm.example.org',
    aliases: new Map([['postmaster', 'root'], ['webmaster', 'www-data@localhost'], ['ops', 'ops@example.net'], ['loop', 'loop'], ['a', 'b'], ['b', 'a']]) } };
  it.each<[string, { address: string; router: string } | undefined]>([
    ['postmaster@vm', { address: 'root@example.org', router: 'hub_user_smarthost' }], // system_aliases, then hub_user
    ['webmaster@vm.example.org', { address: 'www-data@example.org', router: 'hub_user_smarthost' }],
    ['ops@localhost', { address: 'ops@example.net', router: 'smarthost' }], // aliased away from this machine
    ['loop@vm', undefined], // an alias to itself: not followed again, and no login
    ['a@vm', undefined], // a -> b -> a: each followed once, then no login
    ['postmaster@example.net', undefined], // not a local domain
  ])('with aliases: %s -> %j', (address, want) => {
    expect(rewriteRecipient(address, aliased)).toEqual(want);
  });
});
