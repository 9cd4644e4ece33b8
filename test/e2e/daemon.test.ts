// The daemon's life: forced queue runs after a smarthost outage, SIGHUP reloads (a bad
// file is logged and the old one kept), SIGTERM exits 0, max_connections, JSON log.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

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
    expect(await p.stop('SIGTERM')).toBe(0);
    expect(p.log()).toMatch(/postern daemon stopped/);
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
