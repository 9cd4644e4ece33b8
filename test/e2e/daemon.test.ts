// The daemon's life: forced queue runs after a smarthost outage, SIGHUP reloads (a bad
// file is logged and the old one kept), SIGTERM exits 0, max_connections, JSON log.
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

async function waitUntilConnected(sink: Sink): Promise<void> {
  const { waitUntil } = await import('../helpers/postern.js');
  await waitUntil('the daemon at the sink', () => sink.connections > 0);
}

async function freePort(): Promise<number> {
  const s = new Sink();
  const port = await s.listen();
  await s.close();
  return port;
}

describe('daemon', () => {
  let p: Instance | undefined;
  const sinks: Sink[] = [];
  afterEach(async () => {
    await p?.cleanup();
    for (const s of sinks.splice(0)) await s.close();
  });

  it('delivers deferred mail on -qf once the smarthost is back', async () => {
    const port = await freePort();
    p = new Instance([port]);
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: outage\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} == ops@example\\.org .*defer \\(111\\): Connection refused`));
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen(port);
    // The host is still in its retry wait: -q alone leaves it; -qf forces.
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await sink.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
  });

  it('reloads on SIGHUP, keeps the old configuration when the new one is bad, exits 0 on SIGTERM', async () => {
    const a = new Sink();
    const b = new Sink();
    sinks.push(a, b);
    await a.listen();
    await b.listen();
    p = new Instance([a.port]);
    await p.start();
    await sendOne(p.port, 'x@example.org', ['one@example.org'], 'Subject: 1\n\nx\n');
    await a.waitFor(1);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace(`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`));
    p.daemon!.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received: configuration reloaded/);
    await sendOne(p.port, 'x@example.org', ['two@example.org'], 'Subject: 2\n\nx\n');
    await b.waitFor(1);
    writeFileSync(p.config, readFileSync(p.config, 'utf8') + '\nbogus_key = 1\n');
    p.daemon!.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received: configuration error in .* log\.bogus_key: unknown key; keeping the old configuration/);
    await sendOne(p.port, 'x@example.org', ['three@example.org'], 'Subject: 3\n\nx\n');
    await b.waitFor(2);
    // A moved maildrop takes a restart, and the log says so (sendmail follows the file at once).
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('\nbogus_key = 1\n', '\n').replace('directory = "spool"', 'directory = "spool"\nmaildrop = "elsewhere"'));
    p.daemon!.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received: spool\.maildrop changed from \S+ to \S+elsewhere: this daemon goes on with the old one, while sendmail already uses the new one; restart the daemon/);
    // logrotate: the file is moved away, SIGHUP makes the daemon open a new one.
    const { renameSync } = await import('node:fs');
    renameSync(`${p.dir}/log/mainlog`, `${p.dir}/log/mainlog.1`);
    p.daemon!.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received/);
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(p.log()).toMatch(/postern daemon stopped/);
  });

  it('fails recipients the hub refuses without holding back other mail', async () => {
    const sink = new Sink({ size: 4000 });
    sinks.push(sink);
    await sink.listen();
    sink.behaviour.rcpt = (a) => (a.startsWith('bad') ? 550 : undefined);
    p = new Instance([sink.port]);
    await p.start();
    const a = (await sendOne(p.port, 's@example.org', ['bad1@example.org', 'bad2@example.org'], 'Subject: all refused\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${a} \\*\\* bad2@example\\.org .*RCPT TO:<bad2@example\\.org>: 550`));
    await p.waitForLog(new RegExp(`${a} Completed`));
    const big = (await sendOne(p.port, 's@example.org', ['ok@example.org'], `Subject: big\n\n${'y'.repeat(6000)}\n`)).slice(-16);
    await p.waitForLog(new RegExp(`${big} \\*\\* ok@example\\.org .*message refused before sending`));
    // The smarthost is still in good standing: the next message goes out at once.
    const b = (await sendOne(p.port, 's@example.org', ['ok@example.org'], 'Subject: fine\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${b} Completed`));
    expect(p.log()).not.toMatch(/H=127\.0\.0\.1 \[127\.0\.0\.1\]:\d+ SMTP error/);
  });

  it('-q delivers sendmail -odq mail; a second queue runner is kept out by the delivery lock', async () => {
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen();
    p = new Instance([sink.port]);
    expect((await p.run('sendmail', ['-odq', 'ops@example.org'], { input: 'Subject: odq\n\nx\n' })).code).toBe(0);
    // A live postern process holds the lock: no second runner.
    const { spawn } = await import('node:child_process');
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'postern-lock-holder'], { stdio: 'ignore' });
    try {
      symlinkSync(String(holder.pid), `${p.dir}/spool/deliver.lock`); // the lock names its owner's pid
      const held = await p.run('postern', ['-q']);
      expect(held.code).toBe(75);
      expect(held.stderr).toMatch(new RegExp(`another postern process \\(pid ${holder.pid}\\) is delivering`));
    } finally {
      holder.kill('SIGKILL');
    }
    // A dead owner's lock is taken over.
    rmSync(`${p.dir}/spool/deliver.lock`, { force: true });
    symlinkSync('999999999', `${p.dir}/spool/deliver.lock`);
    const run = await p.run('postern', ['-q']);
    expect(run.code).toBe(0);
    await sink.waitFor(1);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('takes no messages on its control socket, refuses malformed requests and keeps serving', async () => {
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen();
    p = new Instance([sink.port]);
    await p.start();
    const { request } = await import('../../src/admin/control-client.js');
    const dir = `${p.dir}/spool`;
    expect(await request(dir, null as unknown as object)).toEqual({ ok: false, error: 'malformed request' });
    // Messages come through the maildrop only: the old submit request is refused (its
    // body, which the daemon no longer waits for, is not sent: the daemon closes at once).
    const forged = { op: 'submit', bodyLength: 2, msg: { id: '1xVaAA-000001-00', sender: '', recipients: ['a@example.org'], headers: 'X: y\n' } };
    expect(await request(dir, forged)).toEqual({ ok: false, error: 'malformed request' });
    const r = await p.run('sendmail', ['ops@example.org'], { input: 'Subject: still here\n\nx\n' });
    expect(r.code).toBe(0);
    await sink.waitFor(1);
  });

  it('does not deliver a message twice when SIGHUP comes during its delivery', async () => {
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen();
    sink.behaviour.delayMs = 1500;
    p = new Instance([sink.port]);
    await p.start();
    const id = (await sendOne(p.port, 's@example.org', ['ops@example.org'], 'Subject: hup\n\nx\n')).slice(-16);
    await waitUntilConnected(sink);
    p.daemon!.kill('SIGHUP');
    await p.waitForLog(/SIGHUP received: configuration reloaded/);
    await p.waitForLog(new RegExp(`${id} Completed`));
    sink.behaviour.delayMs = 0;
    const next = (await sendOne(p.port, 's@example.org', ['ops@example.org'], 'Subject: after\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${next} Completed`));
    expect(sink.messages.filter((m) => m.data.includes('Subject: hup'))).toHaveLength(1);
    expect(p.log().match(new RegExp(`${id} =>`, 'g'))).toHaveLength(1);
  });

  it('answers 421 past max_connections and serves the others', async () => {
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen();
    p = new Instance([sink.port], '');
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('max_recipients = 5', 'max_recipients = 5\nmax_connections = 2'));
    await p.start();
    const c1 = await RawSmtp.open(p.port);
    const c2 = await RawSmtp.open(p.port);
    const c3 = await RawSmtp.open(p.port);
    expect(c1.greeting).toMatch(/^220 /);
    expect(c2.greeting).toMatch(/^220 /);
    expect(c3.greeting).toMatch(/^421 4\.3\.2 /);
    expect(await c1.client.cmd('EHLO a.test')).toMatch(/^250/);
    c1.client.close();
    c2.client.close();
  });

  it('writes the main log as JSON lines when log.format = "json"', async () => {
    const sink = new Sink();
    sinks.push(sink);
    await sink.listen();
    p = new Instance([sink.port], '');
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('file = "log/mainlog"', 'file = "log/mainlog"\nformat = "json"'));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: j\n\nx\n')).slice(-16);
    await p.waitForLog(/"type":"completed"/);
    const events = p.log().trim().split('\n').map((l) => JSON.parse(l) as { type: string; id?: string; time: string });
    const mine = events.filter((e) => e.id === id).map((e) => e.type);
    expect(mine).toEqual(['received', 'delivered', 'completed']);
    expect(events[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});
