// Unit tests for src/config/load.ts parseConfig: defaults, path resolution, and the
// ConfigError for every kind of bad file, naming file, line and key.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname as osHostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKey, ConfigError, loadConfig } from '../../src/config/load.js';
import { parseRetryRules } from '../../src/core/retry-rules.js';
import { parseConfig } from '../../src/config/validate.js';
import type { Config } from '../../src/config/schema.js';
import { codeOthersCanRead, ROOT } from '../helpers/postern.js';

const FILE = '/etc/postern/postern.toml';

const MINIMAL = `[smarthost]
hosts = ["mail.example.org"]
`;

/** 1-based line of the only line containing `needle`. */
function lineOf(text: string, needle: string): number {
  const lines = text.split('\n');
  const hits = lines.flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  if (hits.length !== 1) throw new Error(`test bug: "${needle}" is on ${hits.length} lines`);
  return hits[0]!;
}

function error(text: string, file = FILE): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('parseConfig accepted a bad file');
}

describe('parseConfig: a valid file', () => {
  it('a minimal file gets every default', () => {
    const c = parseConfig(MINIMAL, FILE);
    expect(c.file).toBe(FILE);
    expect(c.hostname).toBe(osHostname());
    expect(c.qualify_domain).toBe(osHostname());
    expect(c.listen).toEqual({
      smtp: [{ name: '127.0.0.1', port: 25 }, { name: '::1', port: 25 }],
      relay_from: ['127.0.0.0/8', '::1/128'],
      max_message_size: 50 * 1024 * 1024,
      max_recipients: 1000,
      max_connections: 100,
      idle_timeout: 300_000,
      max_errors: 20,
    });
    expect(c.spool).toEqual({ directory: '/var/spool/postern', maildrop: '/var/spool/postern-maildrop' });
    expect(c.user).toBeUndefined();
    expect(c.smarthost).toEqual({
      hosts: [{ name: 'mail.example.org', port: 25 }],
      tls: 'opportunistic',
      connections: 4,
      timeout: 300_000, probe_interval: 60_000,
    });
    expect(c.retry).toEqual({ rules: parseRetryRules(['* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']), delay_warning: [86_400_000],
      timeout_frozen_after: 7 * 86_400_000, ignore_bounce_errors_after: 2 * 86_400_000 });
    expect(c.queue).toEqual({ active_limit: 500 });
    expect(c.log).toEqual({ file: '/var/log/postern/mainlog', format: 'exim' });
  });

  it('qualify_domain defaults to hostname', () => {
    const c = parseConfig(`hostname = "web1.example.org"\n${MINIMAL}`, FILE);
    expect(c.hostname).toBe('web1.example.org');
    expect(c.qualify_domain).toBe('web1.example.org');
  });

  it('reads the SPEC.md example file', () => {
    const text = `hostname = "web1.example.org"
qualify_domain = "example.org"

[listen]
smtp = ["127.0.0.1:25", "[::1]:25"]
relay_from = ["127.0.0.0/8", "::1/128"]
max_message_size = "50M"
max_recipients = 1000
max_connections = 100

[spool]
directory = "/var/spool/postern"

[smarthost]
hosts = ["mail.example.org:25", "mail2.example.org:587"]
tls = "required"
tls_ca_file = "/etc/postern/hub-ca.pem"
auth_user = "web1"
auth_password_file = "/etc/postern/smarthost.pass"

[retry]
rules = ["* * F,2h,15m; G,16h,1h,1.5; F,4d,6h"]
delay_warning = ["24h", "2d"]

[log]
file = "/var/log/postern/mainlog"
format = "json"
`;
    const c = parseConfig(text, FILE);
    expect(c.hostname).toBe('web1.example.org');
    expect(c.qualify_domain).toBe('example.org');
    expect(c.listen.smtp).toEqual([{ name: '127.0.0.1', port: 25 }, { name: '::1', port: 25 }]);
    expect(c.smarthost.hosts).toEqual([{ name: 'mail.example.org', port: 25 }, { name: 'mail2.example.org', port: 587 }]);
    expect(c.smarthost.tls).toBe('required');
    expect(c.smarthost.auth_user).toBe('web1');
    expect(c.smarthost.auth_password_file).toBe('/etc/postern/smarthost.pass');
    expect(c.retry.delay_warning).toEqual([86_400_000, 2 * 86_400_000]);
    expect(c.log.format).toBe('json');
  });

  it.each([
    ['"512K"', 512 * 1024],
    ['"10m"', 10 * 1024 * 1024],
    ['"1G"', 1024 ** 3],
    ['"2048"', 2048],
    ['4096', 4096],
  ])('max_message_size = %s is %i bytes', (value, bytes) => {
    expect(parseConfig(`[listen]\nmax_message_size = ${value}\n${MINIMAL}`, FILE).listen.max_message_size).toBe(bytes);
  });

  it.each([
    ['"90s"', 90_000],
    ['"30"', 30_000],
    ['"15m"', 900_000],
    ['"1h"', 3_600_000],
  ])('smarthost.timeout = %s is %i ms', (value, ms) => {
    expect(parseConfig(`${MINIMAL}timeout = ${value}\n`, FILE).smarthost.timeout).toBe(ms);
  });

  it('spool.maildrop: next to the spool folder by default, relative to the file\'s folder when set; user is a name', () => {
    const base = '[smarthost]\nhosts = ["mail.example.org"]\n';
    expect(parseConfig(`[spool]\ndirectory = "spool/"\n${base}`, '/etc/postern/postern.toml').spool)
      .toEqual({ directory: '/etc/postern/spool', maildrop: '/etc/postern/spool-maildrop' });
    expect(parseConfig(`user = "postern"\n[spool]\nmaildrop = "drop"\n${base}`, '/etc/postern/postern.toml'))
      .toMatchObject({ user: 'postern', spool: { directory: '/var/spool/postern', maildrop: '/etc/postern/drop' } });
    expect(() => parseConfig(`user = "bad user"\n${base}`, '/x/p.toml')).toThrow(/line 1: user: must be a user name/);
  });

  it('resolves relative paths against the file\'s folder, leaves absolute ones', () => {
    const text = `[spool]
directory = "../var/spool"
[log]
file = "log/mainlog"
[smarthost]
hosts = ["mail.example.org"]
tls = "required"
tls_ca_file = "certs/hub-ca.pem"
auth_user = "web1"
auth_password_file = "./smarthost.pass"
`;
    const c = parseConfig(text, '/srv/postern/config/postern.toml');
    expect(c.spool.directory).toBe('/srv/postern/var/spool');
    expect(c.log.file).toBe('/srv/postern/config/log/mainlog');
    expect(c.smarthost.tls_ca_file).toBe('/srv/postern/config/certs/hub-ca.pem');
    expect(c.smarthost.auth_password_file).toBe('/srv/postern/config/smarthost.pass');

    const abs = parseConfig('[spool]\ndirectory = "/var/spool/x"\n' + MINIMAL, '/srv/postern/config/postern.toml');
    expect(abs.spool.directory).toBe('/var/spool/x');
  });
});

interface BadCase {
  name: string;
  text: string;
  /** Text on the line that must be named. */
  at: string;
  key: string;
  /** More that the message must say. */
  says?: RegExp;
}

const BAD: BadCase[] = [
  {
    name: 'TOML syntax error (missing value)',
    text: `hostname = "web1.example.org"\n[listen]\nmax_recipients =\n${MINIMAL}`,
    at: 'max_recipients =', key: 'max_recipients',
  },
  {
    name: 'unknown key in a table',
    text: `hostname = "web1.example.org"\n[listen]\nmax_recipients = 10\nmax_recipient = 10\n${MINIMAL}`,
    at: 'max_recipient = 10', key: 'listen.max_recipient', says: /unknown key/,
  },
  {
    name: 'unknown key in the smarthost table',
    text: `[listen]\nmax_recipients = 10\n[smarthost]\nhosts = ["a.example"]\nport = 587\n`,
    at: 'port = 587', key: 'smarthost.port', says: /unknown key/,
  },
  {
    name: 'unknown top-level key',
    text: `hostname = "web1.example.org"\nqualify_domian = "example.org"\n${MINIMAL}`,
    at: 'qualify_domian', key: 'qualify_domian', says: /unknown key/,
  },
  {
    name: 'unknown table',
    text: `${MINIMAL}\n[queues]\nactive_limit = 5\n`,
    at: '[queues]', key: 'queues', says: /unknown key/,
  },
  {
    name: 'wrong type (string for a number)',
    text: `[listen]\nsmtp = ["127.0.0.1:25"]\nmax_recipients = "many"\n${MINIMAL}`,
    at: 'max_recipients', key: 'listen.max_recipients', says: /number/,
  },
  {
    name: 'wrong type (string for an array)',
    text: `${MINIMAL}\n[retry]\nrules = "* * F,2h,15m"\n`,
    at: 'rules =', key: 'retry.rules', says: /array/,
  },
  {
    name: 'wrong type (number for hostname)',
    text: `hostname = 42\n${MINIMAL}`,
    at: 'hostname', key: 'hostname', says: /string/,
  },
  {
    name: 'bad duration in smarthost.timeout',
    text: `${MINIMAL}connections = 2\ntimeout = "5 minutes"\n`,
    at: 'timeout', key: 'smarthost.timeout', says: /"5 minutes" is not a duration/,
  },
  {
    name: 'bad duration in retry.delay_warning',
    text: `${MINIMAL}\n[retry]\ndelay_warning = ["24h", "1y"]\n`,
    at: 'delay_warning', key: 'retry.delay_warning', says: /"1y" is not a duration/,
  },
  {
    name: 'bad size',
    text: `[listen]\nmax_message_size = "50MB"\n${MINIMAL}`,
    at: 'max_message_size', key: 'listen.max_message_size', says: /"50MB" is not a size/,
  },
  {
    name: 'bad tls value',
    text: `[smarthost]\nhosts = ["mail.example.org"]\ntls = "starttls"\n`,
    at: 'tls =', key: 'smarthost.tls', says: /opportunistic/,
  },
  {
    name: 'bad host:port',
    text: `[smarthost]\nhosts = ["mail.example.org:99999"]\n`,
    at: 'hosts', key: 'smarthost.hosts', says: /not host:port/,
  },
  {
    name: 'auth_user with tls = "none"',
    text: `[smarthost]\nhosts = ["mail.example.org"]\ntls = "none"\nauth_user = "web1"\nauth_password_file = "/etc/postern/pass"\n`,
    at: 'auth_user', key: 'smarthost.auth_user', says: /TLS/,
  },
  {
    name: 'auth_user without auth_password_file',
    text: `[smarthost]\nhosts = ["mail.example.org"]\nauth_user = "web1"\n`,
    at: 'auth_user', key: 'smarthost.auth_user', says: /auth_password_file/,
  },
  {
    name: 'malformed retry rule',
    text: `${MINIMAL}\n[retry]\ndelay_warning = ["24h"]\nrules = ["* * F,2h,15m; G,16h,1h"]\n`,
    at: 'rules =', key: 'retry.rules', says: /malformed parameter set "G,16h,1h"/,
  },
  {
    name: 'missing smarthost.hosts',
    text: `hostname = "web1.example.org"\n\n[smarthost]\ntls = "none"\n`,
    at: '[smarthost]', key: 'smarthost.hosts',
  },
  {
    name: 'empty smarthost.hosts',
    text: `[smarthost]\nhosts = []\n`,
    at: 'hosts', key: 'smarthost.hosts', says: /at least one host/,
  },
  {
    name: 'zero smarthost.timeout',
    text: `${MINIMAL}timeout = "0s"\n`,
    at: 'timeout', key: 'smarthost.timeout', says: /must be more than 0/,
  },
  {
    name: 'smarthost.timeout beyond what a timer holds',
    text: `${MINIMAL}timeout = "30d"\n`,
    at: 'timeout', key: 'smarthost.timeout', says: /at most 24d/,
  },
  {
    name: 'zero listen.idle_timeout',
    text: `[listen]\nidle_timeout = "0m"\n${MINIMAL}`,
    at: 'idle_timeout', key: 'listen.idle_timeout', says: /must be more than 0/,
  },
  {
    name: 'zero retry.delay_warning',
    text: `${MINIMAL}\n[retry]\ndelay_warning = ["0h"]\n`,
    at: 'delay_warning', key: 'retry.delay_warning', says: /must be more than 0/,
  },
  {
    name: 'zero max_message_size (string)',
    text: `[listen]\nmax_message_size = "0"\n${MINIMAL}`,
    at: 'max_message_size', key: 'listen.max_message_size', says: /must be more than 0/,
  },
  {
    name: 'zero max_message_size (number)',
    text: `[listen]\nmax_message_size = 0\n${MINIMAL}`,
    at: 'max_message_size', key: 'listen.max_message_size',
  },
  {
    name: 'negative listen.max_errors',
    text: `[listen]\nmax_errors = -1\n${MINIMAL}`,
    at: 'max_errors', key: 'listen.max_errors',
  },
  {
    name: 'a size too large to count',
    text: `[listen]\nmax_message_size = "99999999999999999999G"\n${MINIMAL}`,
    at: 'max_message_size', key: 'listen.max_message_size', says: /is not a size/,
  },
  {
    name: 'bad value set with a dotted key',
    text: `listen.max_recipients = "many"\n${MINIMAL}`,
    at: 'listen.max_recipients', key: 'listen.max_recipients', says: /number/,
  },
];

describe('parseConfig: bad files', () => {
  it.each(BAD.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const err = error(c.text, FILE);
    expect(err.message).toContain(FILE);
    expect(err.message).toContain(` line ${lineOf(c.text, c.at)}:`);
    expect(err.message).toMatch(new RegExp(`\\b${c.key.replace(/\./g, '\\.')}\\b`));
    if (c.says) expect(err.message).toMatch(c.says);
    // One plain sentence: no stack, no multi-line code frame.
    expect(err.message).not.toContain('\n');
  });

  it('a missing [smarthost] table is named, at the end of the file', () => {
    expect(error('hostname = "web1.example.org"\n\n[listen]\nmax_errors = 5\n').message)
      .toBe(`configuration error in ${FILE} line 4: smarthost: the [smarthost] table is missing`);
    expect(error('').message).toBe(`configuration error in ${FILE} line 1: smarthost: the [smarthost] table is missing`);
  });

  it('names the file it was given', () => {
    expect(error('bogus = 1\n' + MINIMAL, '/tmp/other.toml').message).toMatch(/^configuration error in \/tmp\/other\.toml line 1: bogus: unknown key$/);
  });
});

describe('loadConfig: what -C may name', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'postern-cfg-'));
  async function refusal(file: string): Promise<string> {
    try {
      await loadConfig(file);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('loadConfig accepted it');
  }

  it('/dev/zero is refused at once, not read without end', async () => {
    expect(await refusal('/dev/zero')).toBe('cannot read configuration file /dev/zero: it is not a regular file');
  });

  it('a folder and a FIFO (with no writer: it must not block) are refused in one sentence', async () => {
    const d = dir();
    try {
      expect(await refusal(d)).toBe(`cannot read configuration file ${d}: it is a directory`);
      const fifo = join(d, 'fifo.toml');
      execFileSync('mkfifo', [fifo]);
      expect(await refusal(fifo)).toBe(`cannot read configuration file ${fifo}: it is not a regular file`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('a file over 1 MB is refused; one just under it is read', async () => {
    const d = dir();
    try {
      mkdirSync(join(d, 'spool'));
      const big = join(d, 'big.toml');
      writeFileSync(big, `${MINIMAL}# ${'x'.repeat(1024 * 1024)}\n`);
      expect(await refusal(big)).toBe(`cannot read configuration file ${big}: it is too large (over 1 MB)`);
      const ok = join(d, 'ok.toml');
      const head = `${MINIMAL}[spool]\ndirectory = "spool"\n# `;
      writeFileSync(ok, `${head}${'x'.repeat(1024 * 1024 - head.length - 1)}\n`);
      expect((await loadConfig(ok)).smarthost.hosts).toEqual([{ name: 'mail.example.org', port: 25 }]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('loadConfig: the validated-configuration cache', () => {
  const withDir = async (body: (d: string) => Promise<void>) => {
    const d = mkdtempSync(join(tmpdir(), 'postern-cache-'));
    try {
      await body(d);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  };
  const { readFileSync, utimesSync, statSync, chmodSync, existsSync } = fs;

  it('a changed file is seen at once, even of the same size and mtime; a bad edit is reported despite the cache', async () => {
    await withDir(async (d) => {
      const file = join(d, 'postern.toml');
      writeFileSync(file, `[spool]\ndirectory = "spool"\n${MINIMAL}[listen]\nmax_recipients = 100\n`);
      expect((await loadConfig(file)).listen.max_recipients).toBe(100);
      expect(existsSync(join(d, 'spool/config.cache.json'))).toBe(true);
      const before = statSync(file);
      writeFileSync(file, `[spool]\ndirectory = "spool"\n${MINIMAL}[listen]\nmax_recipients = 200\n`);
      utimesSync(file, before.atime, before.mtime);
      expect((await loadConfig(file)).listen.max_recipients).toBe(200);
      const bad = `[spool]\ndirectory = "spool"\n${MINIMAL}[listen]\nmax_recipients = "many"\n`;
      writeFileSync(file, bad);
      await expect(loadConfig(file)).rejects.toThrow(`configuration error in ${file} line ${lineOf(bad, 'max_recipients')}: listen.max_recipients:`);
    });
  });

  it('is found without the TOML parser; a spool folder the line scan cannot see still gets a correct configuration and cache', async () => {
    await withDir(async (d) => {
      const file = join(d, 'postern.toml');
      writeFileSync(file, `spool = { directory = "inline" }\n${MINIMAL}`);
      expect((await loadConfig(file)).spool.directory).toBe(join(d, 'inline'));
      expect(existsSync(join(d, 'inline/config.cache.json'))).toBe(true);
      expect((await loadConfig(file)).spool.directory).toBe(join(d, 'inline'));
      writeFileSync(file, `[spool] # the queue\n  directory = 'q' # here\n${MINIMAL}`);
      expect((await loadConfig(file)).spool.directory).toBe(join(d, 'q'));
      const stored = JSON.parse(readFileSync(join(d, 'q/config.cache.json'), 'utf8')) as { key: string; file: string; text: string; config: Config };
      expect(stored.file).toBe(file);
      expect(stored.text).toBe(readFileSync(file, 'utf8'));
      // A cache of our own with the right key is what the next start believes...
      writeFileSync(join(d, 'q/config.cache.json'), JSON.stringify({ ...stored, config: { ...stored.config, hostname: 'cached.example' } }));
      expect((await loadConfig(file)).hostname).toBe('cached.example');
      // ...but not when others may write it: it is validated again (and rewritten).
      chmodSync(join(d, 'q/config.cache.json'), 0o666);
      expect((await loadConfig(file)).hostname).toBe(stored.config.hostname);
      // Nor one keyed for another text (an older postern's, another file's).
      writeFileSync(join(d, 'q/config.cache.json'), JSON.stringify({ key: cacheKey(join(d, 'other.toml'), readFileSync(file, 'utf8')), config: { ...stored.config, hostname: 'cached.example' } }));
      expect((await loadConfig(file)).hostname).toBe(stored.config.hostname);
      // Nor one whose key matches but whose text is another (FNV is no cryptographic
      // hash: a cache is believed for the very name and text it keeps).
      writeFileSync(join(d, 'q/config.cache.json'), JSON.stringify({ ...stored, text: `${stored.text}# other\n`, config: { ...stored.config, hostname: 'cached.example' } }));
      expect((await loadConfig(file)).hostname).toBe(stored.config.hostname);
      writeFileSync(join(d, 'q/config.cache.json'), JSON.stringify({ ...stored, file: join(d, 'other.toml'), config: { ...stored.config, hostname: 'cached.example' } }));
      expect((await loadConfig(file)).hostname).toBe(stored.config.hostname);
    });
  });
});

describe.skipIf(process.getuid?.() !== 0)('the validated-configuration copy in the maildrop', () => {
  it('is believed from root, never by root from the daemon user (who must not choose what root appends to)', async () => {
    const { chownSync, readFileSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'postern-cache-'));
    try {
      const file = join(dir, 'postern.toml');
      const text = `[spool]\ndirectory = "spool"\n${MINIMAL}`;
      writeFileSync(file, text);
      const drop = join(dir, 'spool-maildrop');
      mkdirSync(drop, { mode: 0o1733 });
      chownSync(drop, 1, 1);
      // The first load validates and leaves a copy of root's in the maildrop.
      const real = await loadConfig(file);
      const copy = join(drop, '.config.cache.json');
      const stored = JSON.parse(readFileSync(copy, 'utf8')) as { key: string };
      expect(stored.key).toBe(cacheKey(file, text));
      rmSync(join(dir, 'spool/config.cache.json'));
      const forged = JSON.stringify({ ...stored, config: { ...real, log: { ...real.log, file: '/tmp/forged-log' } } });
      // Root's own copy is believed (so the key above is the one load.ts checks)...
      writeFileSync(copy, forged, { mode: 0o644 });
      expect((await loadConfig(file)).log.file).toBe('/tmp/forged-log');
      // ...the daemon user's is not, by root.
      rmSync(join(dir, 'spool/config.cache.json'));
      writeFileSync(copy, forged, { mode: 0o644 });
      chownSync(copy, 1, 1);
      expect((await loadConfig(file)).log.file).toBe(real.log.file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a user's sendmail believes the maildrop owner's copy, never one another user left there (dist/, as nobody)", async () => {
    const { chmodSync, chownSync, readFileSync } = await import('node:fs');
    let after = () => {};
    const dir = mkdtempSync(join(tmpdir(), 'postern-cache-'));
    try {
      chmodSync(dir, 0o755);
      const file = join(dir, 'postern.toml');
      writeFileSync(file, `[spool]\ndirectory = "spool"\n${MINIMAL}`, { mode: 0o644 });
      const drop = join(dir, 'spool-maildrop');
      mkdirSync(drop, { mode: 0o1733 });
      chownSync(drop, 1, 1);
      const real = await loadConfig(file);
      const copy = join(drop, '.config.cache.json');
      const stored = JSON.parse(readFileSync(copy, 'utf8')) as { key: string };
      const code = codeOthersCanRead(); // nobody imports dist/ from there
      after = () => code !== ROOT && rmSync(code, { recursive: true, force: true });
      const load = join(code, 'dist/config/load.js');
      const asNobody = () => execFileSync(process.execPath, ['--input-type=module', '-e',
        `process.setgid(65534); process.setuid(65534); const { loadConfig } = await import(${JSON.stringify(load)}); process.stdout.write((await loadConfig(${JSON.stringify(file)})).log.file);`], { encoding: 'utf8' });
      const forge = (uid: number) => {
        rmSync(copy);
        writeFileSync(copy, JSON.stringify({ ...stored, config: { ...real, log: { ...real.log, file: '/tmp/forged-log' } } }), { mode: 0o644 });
        chownSync(copy, uid, uid);
      };
      forge(1); // the maildrop's owner (the daemon's user) writes the copy users read
      expect(asNobody()).toBe('/tmp/forged-log');
      forge(2); // anyone else may leave a file there (the folder is 1733): not believed
      expect(asNobody()).toBe(real.log.file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      after();
    }
  });
});
