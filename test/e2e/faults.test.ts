// Faults at the smarthost that once stalled or lost mail: a hub that drops the
// connection in the middle of AUTH (the delivery slot was held forever, nothing was
// logged, and after `connections` such messages nothing went out at all), a hub whose
// STARTTLS handshake fails under tls = "opportunistic" (Exim and Postfix go on in
// cleartext), and a bounce the hub refuses (frozen, never dropped).
import { execFileSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
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
  certDir = mkdtempSync(join(tmpdir(), 'postern-faults-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', cert('hub.key'), '-out', cert('hub.pem')], { stdio: 'ignore' });
  writeFileSync(cert('pass'), 'sekret\n');
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

/**
 * A minimal hub on raw sockets: offers STARTTLS but answers the handshake with
 * garbage; in cleartext it takes the message and remembers it.
 */
class BrokenTlsHub {
  readonly messages: string[] = [];
  starttls = 0;
  private server: Server;
  private sockets = new Set<Socket>();
  port = 0;
  constructor() {
    this.server = createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      let buf = '';
      let inData = false;
      let data = '';
      s.write('220 hub.test ESMTP\r\n');
      s.on('data', (d) => {
        buf += d.toString('latin1');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl + 1);
          buf = buf.slice(nl + 1);
          if (inData) {
            if (line === '.\r\n') {
              inData = false;
              this.messages.push(data);
              s.write(`250 2.0.0 Ok: queued as H${this.messages.length}\r\n`);
            } else data += line;
            continue;
          }
          const cmd = line.trim().toUpperCase();
          if (cmd.startsWith('EHLO')) s.write('250-hub.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n');
          else if (cmd === 'STARTTLS') {
            this.starttls++;
            s.write('220 2.0.0 Ready to start TLS\r\n');
            s.end('this is not a TLS server hello\r\n\r\n');
          } else if (cmd.startsWith('MAIL') || cmd.startsWith('RCPT') || cmd === 'RSET' || cmd === 'NOOP') s.write('250 2.1.0 Ok\r\n');
          else if (cmd === 'DATA') { inData = true; data = ''; s.write('354 End data with <CR><LF>.<CR><LF>\r\n'); }
          else if (cmd === 'QUIT') s.end('221 2.0.0 Bye\r\n');
          else s.write('502 5.5.2 Error: command not recognized\r\n');
        }
      });
    });
  }
  listen(): Promise<number> {
    return new Promise((r) => this.server.listen(0, '127.0.0.1', () => {
      this.port = (this.server.address() as { port: number }).port;
      r(this.port);
    }));
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('smarthost faults', () => {
  let p: Instance | undefined;
  let hub: Sink | undefined;
  let raw: BrokenTlsHub | undefined;
  afterEach(async () => {
    await p?.cleanup();
    await hub?.close();
    await raw?.close();
    p = hub = raw = undefined;
  });

  it('a hub that drops the connection during AUTH defers and logs every message, and nothing stalls', async () => {
    let authOk = false;
    const h: Sink = new Sink({
      disabledCommands: [], authOptional: false, authMethods: ['PLAIN', 'LOGIN'],
      key: readFileSync(cert('hub.key')), cert: readFileSync(cert('hub.pem')),
      onAuth: (_a: unknown, _s: unknown, cb: (e: Error | null, r?: { user: string }) => void) => {
        if (authOk) return cb(null, { user: 'web1' });
        h.dropAll(); // gone without a reply, as a crashing auth backend does
      },
    });
    hub = h;
    await h.listen();
    const inst = new Instance([h.port]);
    p = inst;
    // One connection: a slot held by a stuck AUTH would stop everything after it.
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('tls = "none"',
      `tls = "required"\ntls_ca_file = "${cert('hub.pem')}"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"\nconnections = 1`));
    await inst.start();
    const id1 = (await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: one\n\nx\n')).slice(-16);
    await inst.waitForLog(new RegExp(`${id1} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-42\\): authentication failed`));
    // The next message is looked at too (new mail while the host waits is logged as deferred or held).
    const id2 = (await sendOne(inst.port, 'a@example.org', ['dev@example.org'], 'Subject: two\n\nx\n')).slice(-16);
    expect((await inst.run('postern', ['-bpc'])).stdout).toBe('2\n');
    // The hub is fixed: a forced run delivers both at once; no restart needed.
    authOk = true;
    const run = await inst.run('postern', ['-qf']);
    expect(run.code).toBe(0);
    await h.waitFor(2);
    await inst.waitForLog(new RegExp(`${id1} Completed`));
    await inst.waitForLog(new RegExp(`${id2} Completed`));
    expect(inst.log()).not.toContain('sekret');
  });

  it('a stand-alone queue run against a hub dropping AUTH ends, leaving the mail deferred', async () => {
    const h: Sink = new Sink({
      disabledCommands: [], authOptional: false, authMethods: ['PLAIN'],
      key: readFileSync(cert('hub.key')), cert: readFileSync(cert('hub.pem')),
      onAuth: () => h.dropAll(),
    });
    hub = h;
    await h.listen();
    const inst = new Instance([h.port]);
    p = inst;
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('tls = "none"',
      `tls = "required"\ntls_ca_file = "${cert('hub.pem')}"\nauth_user = "web1"\nauth_password_file = "${cert('pass')}"`));
    // No daemon: sendmail leaves the message for a queue run.
    const sent = await inst.run('sendmail', ['-odq', 'ops@example.org'], { input: 'Subject: q\n\nbody\n' });
    expect(sent.code).toBe(0);
    const run = await inst.run('postern', ['-qf'], { timeoutMs: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    await inst.waitForLog(/== ops@example\.org R=smarthost T=remote_smtp defer \(-42\): authentication failed/);
    expect((await inst.run('postern', ['-bpc'])).stdout).toBe('1\n');
  });

  it('tls = "opportunistic" delivers in cleartext when the STARTTLS handshake fails, and logs it', async () => {
    raw = new BrokenTlsHub();
    await raw.listen();
    const inst = new Instance([raw.port]);
    p = inst;
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('tls = "none"', 'tls = "opportunistic"'));
    await inst.start();
    const id = (await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: clear\n\nx\n')).slice(-16);
    await inst.waitForLog(new RegExp(`${id} Completed`));
    expect(raw.starttls).toBeGreaterThanOrEqual(1);
    expect(raw.messages).toHaveLength(1);
    expect(inst.log()).toMatch(new RegExp(`${id} H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${raw.port} TLS session failure: .*; delivering unencrypted`));
  });

  it('tls = "required" never falls back to cleartext', async () => {
    raw = new BrokenTlsHub();
    await raw.listen();
    const inst = new Instance([raw.port]);
    p = inst;
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('tls = "none"', `tls = "required"\ntls_ca_file = "${cert('hub.pem')}"`));
    await inst.start();
    const id = (await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: never\n\nx\n')).slice(-16);
    await inst.waitForLog(new RegExp(`${id} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-37\\): TLS session failure`));
    expect(raw.messages).toHaveLength(0);
  });

  it('a stand-alone queue run that makes a bounce and a delay warning delivers them and ends cleanly', async () => {
    const h = new Sink();
    hub = h;
    h.behaviour = { rcpt: (a) => (a.startsWith('bad') ? 550 : a.startsWith('slow') ? 451 : undefined) };
    await h.listen();
    const inst = new Instance([h.port], '[retry]\ndelay_warning = ["1s"]\n');
    p = inst;
    // No daemon: both wait in the maildrop for the queue run.
    expect((await inst.run('sendmail', ['-f', 'app@example.org', 'bad@example.org'], { input: 'Subject: b\n\nx\n' })).code).toBe(0);
    expect((await inst.run('sendmail', ['-f', 'app@example.org', 'slow@example.org'], { input: 'Subject: w\n\nx\n' })).code).toBe(0);
    const sent = Date.now();
    // Old enough for the 1 s delay warning on its first deferral.
    await new Promise((r) => setTimeout(r, Math.max(0, sent + 1200 - Date.now())));
    const run = await inst.run('postern', ['-qf'], { timeoutMs: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // The failure report and the warning went out in the same run, to the sender.
    const toSender = h.messages.filter((m) => m.to.includes('app@example.org'));
    expect(toSender.some((m) => /Subject: Mail delivery failed/.test(m.data))).toBe(true);
    expect(toSender.some((m) => /Subject: Warning: message .* delayed/.test(m.data))).toBe(true);
    expect(inst.log()).not.toMatch(/Database is closed|panic/);
  });
});
