// TLS and AUTH toward the smarthost, against a real smtp-server hub that offers
// STARTTLS with a certificate made here (openssl) and demands AUTH: verified under
// "required", a wrong CA or a wrong password is a host error (deferred, logged).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';

let certDir: string;
const cert = (name: string) => join(certDir, name);

beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'postern-tls-'));
  for (const name of ['hub', 'other']) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', cert(`${name}.key`), '-out', cert(`${name}.pem`)], { stdio: 'ignore' });
  }
  writeFileSync(cert('pass'), 'sekret\nignored second line\n');
  writeFileSync(cert('badpass'), 'wrong\n');
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

describe('smarthost TLS and AUTH', () => {
  let hub: Sink;
  let p: Instance;
  const logins: { user: string; secure: boolean }[] = [];

  async function startHub() {
    hub = new Sink({
      disabledCommands: [],
      authOptional: false,
      authMethods: ['PLAIN', 'LOGIN'],
      key: readFileSync(cert('hub.key')),
      cert: readFileSync(cert('hub.pem')),
      onAuth: (auth: { username: string; password: string }, session: { secure: boolean }, cb: (e: Error | null, r?: { user: string }) => void) => {
        logins.push({ user: auth.username, secure: session.secure });
        if (auth.username === 'web1' && auth.password === 'sekret') cb(null, { user: 'web1' });
        else cb(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
      },
    });
    await hub.listen();
  }
  afterEach(async () => {
    await p.cleanup();
    await hub.close();
    logins.length = 0;
  });

  it('uses STARTTLS, verifies the hub against tls_ca_file and authenticates', async () => {
    await startHub();
    p = new Instance([hub.port]);
    p.writeConfig([hub.port], '');
    const text = readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "required"\ntls_ca_file = "${cert('hub.pem')}"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`);
    writeFileSync(p.config, text);
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: tls\n\nx\n')).slice(-16);
    await hub.waitFor(1);
    expect(logins).toEqual([{ user: 'web1', secure: true }]);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(p.log()).not.toContain('sekret');
    const bp = await p.run('postern', ['-bP']);
    expect(bp.stdout).not.toContain('sekret');
  });

  it('defers, never bounces, when the certificate does not verify or AUTH is refused', async () => {
    await startHub();
    p = new Instance([hub.port]);
    const text = readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "required"\ntls_ca_file = "${cert('other.pem')}"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`);
    writeFileSync(p.config, text);
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: badca\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-37\\): TLS session failure`));
    expect(hub.messages).toHaveLength(0);
    expect(logins).toHaveLength(0); // no credentials went to an unverified host
    await p.stop();

    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace(cert('other.pem'), cert('hub.pem')).replace(cert('pass'), cert('badpass')));
    await p.start();
    const id2 = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: badpass\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id2} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-42\\): authentication failed: 535`));
    expect(p.log()).not.toMatch(/\*\*/);
    expect(p.log()).not.toContain('wrong');
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('2\n');
  });

  it('implicit TLS (port 465 style) is TLS from the first byte, verified', async () => {
    hub = new Sink({
      secure: true,
      disabledCommands: ['STARTTLS'],
      authOptional: true,
      key: readFileSync(cert('hub.key')),
      cert: readFileSync(cert('hub.pem')),
      onAuth: (auth: { username: string }, session: { secure: boolean }, cb: (e: Error | null, r?: { user: string }) => void) => {
        logins.push({ user: auth.username, secure: session.secure });
        cb(null, { user: auth.username });
      },
    });
    await hub.listen();
    p = new Instance([hub.port]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "implicit"\ntls_ca_file = "${cert('hub.pem')}"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: implicit\n\nx\n')).slice(-16);
    await hub.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(logins).toEqual([{ user: 'web1', secure: true }]);
  });

  it('defers when tls = "required" and the hub offers no STARTTLS', async () => {
    hub = new Sink(); // plain SMTP, no STARTTLS
    await hub.listen();
    p = new Instance([hub.port]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"', `tls = "required"\ntls_ca_file = "${cert('hub.pem')}"`));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: needs tls\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-?\\d+\\): `));
    expect(hub.messages).toHaveLength(0);
    expect(p.log()).not.toMatch(/\*\*/);
  });

  it('opportunistic with auth_user delivers without AUTH to a hub that offers no STARTTLS (Exim\'s hosts_try_auth); the password never goes in clear', async () => {
    // The hub offers AUTH in clear and takes mail without it: postern must not log in.
    hub = new Sink({
      disabledCommands: ['STARTTLS'],
      authOptional: true,
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth: (auth: { username: string }, session: { secure: boolean }, cb: (e: Error | null, r?: { user: string }) => void) => {
        logins.push({ user: auth.username, secure: session.secure });
        cb(null, { user: auth.username });
      },
    });
    await hub.listen();
    p = new Instance([hub.port]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "opportunistic"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: no tls\n\nx\n')).slice(-16);
    await hub.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(p.log()).toMatch(new RegExp(`${id} => ops@example\\.org R=smarthost T=remote_smtp H=`));
    expect(p.log()).not.toMatch(/ A=|defer/);
    expect(logins).toEqual([]);
  });

  it('opportunistic TLS encrypts without verifying', async () => {
    await startHub();
    p = new Instance([hub.port]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"',
      `tls = "opportunistic"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`));
    await p.start();
    await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: opp\n\nx\n');
    await hub.waitFor(1);
    expect(logins).toEqual([{ user: 'web1', secure: true }]);
  });
});
