// The mail path end to end: real daemon (child process), real LMDB spool in a temp
// folder, real SMTP smarthost sink, real bin/ commands.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sink } from '../helpers/sink.js';
import { closeBoth, Instance, sinkAndInstance } from '../helpers/postern.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

const ID = '[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}';

describe('mail path', () => {
  let sink: Sink;
  let p: Instance;

  beforeEach(async () => {
    [sink, p] = await sinkAndInstance();
  });
  afterEach(() => closeBoth(sink, p));

  it('relays an SMTP message to the smarthost and logs it in Exim format', async () => {
    await p.start();
    const reply = await sendOne(p.port, 'app@web1.example.org', ['ops@example.org', 'dev@example.org'],
      'Subject: hello\nMessage-ID: <abc123@web1.example.org>\n\nbody line\n');
    expect(reply).toMatch(new RegExp(`^250 2\\.0\\.0 OK id=${ID}$`));
    const id = reply.slice(-16);
    await sink.waitFor(1);
    expect(sink.messages[0]!.from).toBe('app@web1.example.org');
    expect(sink.messages[0]!.to).toEqual(['ops@example.org', 'dev@example.org']);
    expect(sink.messages[0]!.data).toMatch(/^Received: from .*\[127\.0\.0\.1\]/);
    expect(sink.messages[0]!.data).toContain(`id ${id}`);
    expect(sink.messages[0]!.data).toContain('\r\n\r\nbody line\r\n');
    await p.waitForLog(new RegExp(`${id} Completed`));
    const log = p.log();
    expect(log).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d ${id} <= app@web1\\.example\\.org H=\\(client\\.test\\) \\[127\\.0\\.0\\.1\\] P=esmtp S=\\d+ id=abc123@web1\\.example\\.org$`, 'm'));
    expect(log).toMatch(new RegExp(`${id} => ops@example\\.org R=smarthost T=remote_smtp H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${sink.port} C="250 .*Ok: queued as Q1"`));
    expect(log).toMatch(new RegExp(`${id} -> dev@example\\.org R=smarthost T=remote_smtp H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${sink.port}`));
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('relays messages of every size up to the 1 MB held in memory, sent on one client connection, each intact', async () => {
    // Around the socket buffer (16 KB), where the transport stops corking message and
    // dot line together, and up to the largest body sent from memory in DATA form.
    await p.start();
    const sizes = [100, 16_000, 16_500, 40_000, 200_000, 1_000_000];
    const line = (i: number) => `${i % 7 === 0 ? '.' : 'x'}${'y'.repeat(70)}${i}\n`;
    const bodies = sizes.map((n) => {
      let b = '';
      for (let i = 0; b.length < n; i++) b += line(i);
      return b;
    });
    const { client } = await RawSmtp.open(p.port);
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
    for (const [i, body] of bodies.entries()) {
      expect(await client.cmd('MAIL FROM:<app@web1.example.org>')).toMatch(/^250/);
      expect(await client.cmd('RCPT TO:<ops@example.org>')).toMatch(/^250/);
      expect(await client.data(`Subject: size ${i}\n\n${body}`)).toMatch(/^250/); // data() stuffs the dots
    }
    client.close();
    await sink.waitFor(sizes.length);
    for (const [i, body] of bodies.entries()) {
      const got = sink.messages.find((m) => m.data.includes(`Subject: size ${i}\r\n`));
      expect(got, `message ${i} (${sizes[i]} bytes)`).toBeDefined();
      // data() ends the text with one more CRLF before the dot line: an empty last line.
      expect(got!.data.endsWith(`\r\n\r\n${body.replace(/\n/g, '\r\n')}\r\n`), `message ${i} (${sizes[i]} bytes) intact`).toBe(true);
    }
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('relays 8-bit bodies and SMTPUTF8 addresses unchanged', async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    await client.cmd('EHLO client.test');
    expect(await client.cmd('MAIL FROM:<jürgen@example.org> BODY=8BITMIME SMTPUTF8')).toMatch(/^250/);
    expect(await client.cmd('RCPT TO:<zoë@example.org>')).toMatch(/^250/);
    expect(await client.data('Subject: grüße\nContent-Type: text/plain; charset=utf-8\n\nÄrger über Öl – ✓\n')).toMatch(/^250/);
    client.close();
    await sink.waitFor(1);
    expect(sink.messages[0]!.from).toBe('jürgen@example.org');
    expect(sink.messages[0]!.to).toEqual(['zoë@example.org']);
    expect(sink.messages[0]!.data).toContain('\r\n\r\nÄrger über Öl – ✓\r\n');
  });

  it('keeps header and body bytes that are not UTF-8 (Latin-1) exactly', async () => {
    const latin1 = Buffer.from('Subject: Gr\xfc\xdfe aus K\xf6ln\nTo: ops@example.org\n\nK\xe4se\n', 'latin1');
    expect((await p.run('sendmail', ['-odq', '-t', '-i'], { input: latin1 })).code).toBe(0);
    const id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    const { spawnSync } = await import('node:child_process');
    const { BIN } = await import('../helpers/postern.js');
    const mvh = spawnSync(process.execPath, [BIN('postern'), '-C', p.config, '-Mvh', id]);
    expect(mvh.stdout.includes(Buffer.from('Subject: Gr\xfc\xdfe aus K\xf6ln\n', 'latin1'))).toBe(true);
    await p.start();
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await sink.waitFor(1);
    const raw = sink.messages[0]!.raw;
    expect(raw.includes(Buffer.from('\r\nSubject: Gr\xfc\xdfe aus K\xf6ln\r\n', 'latin1'))).toBe(true);
    expect(raw.includes(Buffer.from('\r\n\r\nK\xe4se\r\n', 'latin1'))).toBe(true);
  });

  it('resolves a smarthost given by name and logs name and address', async () => {
    const fs = await import('node:fs');
    fs.writeFileSync(p.config, fs.readFileSync(p.config, 'utf8').replace(`"127.0.0.1:${sink.port}"`, `"localhost:${sink.port}"`));
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: byname\n\nx\n')).slice(-16);
    await sink.waitFor(1);
    await p.waitForLog(new RegExp(`${id} => ops@example\\.org R=smarthost T=remote_smtp H=localhost \\[127\\.0\\.0\\.1\\]:${sink.port} C=`));
  });

  it('accepts sendmail -t -i while the daemon is down and delivers when it starts', async () => {
    const r = await p.run('sendmail', ['-t', '-i'], { input: 'To: ops@example.org, root\nBcc: hidden@example.org\nSubject: hi\n\nbody\n.\nmore\n' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const q = await p.run('mailq', []);
    expect(q.stdout).toMatch(new RegExp(`^ {1,2}\\dm +\\d+ ${ID} <[^>]+@example\\.org>\\n {10}ops@example\\.org\\n {10}root@example\\.org\\n {10}hidden@example\\.org\\n\\n$`));
    await p.start();
    await sink.waitFor(1);
    const m = sink.messages[0]!;
    expect(m.to).toEqual(['ops@example.org', 'root@example.org', 'hidden@example.org']);
    expect(m.data).not.toMatch(/^Bcc:/im);
    expect(m.data).toMatch(/^To: ops@example\.org, root@example\.org$/m);
    expect(m.data).toMatch(/^Message-Id: <E[^@]+@web1\.example\.org>$/m);
    expect(m.data).toMatch(/^Date: /m);
    expect(m.data).toMatch(/^From: /m);
    expect(m.data).toContain('body\r\n.\r\nmore\r\n'); // -i: the lone dot is data
    expect(p.log()).toMatch(/<= \S+@example\.org U=\S+ P=local S=\d+/);
  });

  it('hands sendmail submissions to a running daemon, which delivers at once', async () => {
    await p.start();
    const r = await p.run('sendmail', ['-f', 'cron@web1.example.org', 'ops@example.org'], { input: 'Subject: x\n\nline\n.\nnot sent\n' });
    expect(r.code).toBe(0);
    await sink.waitFor(1);
    expect(sink.messages[0]!.from).toBe('cron@web1.example.org');
    expect(sink.messages[0]!.data).toContain('line\r\n');
    expect(sink.messages[0]!.data).not.toContain('not sent'); // without -i a lone dot ends the message
  });

  it('records per-recipient results: 2xx delivered, 4xx deferred, 5xx failed', async () => {
    sink.behaviour.rcpt = (a) => (a.startsWith('bad') ? 550 : a.startsWith('tmp') ? 451 : undefined);
    await p.start();
    const reply = await sendOne(p.port, 'app@example.org', ['ok@example.org', 'bad@example.org', 'tmp@example.org'], 'Subject: mixed\n\nx\n');
    const id = reply.slice(-16);
    await p.waitForLog(new RegExp(`${id} == tmp@example\\.org`));
    const log = p.log();
    expect(log).toMatch(new RegExp(`${id} => ok@example\\.org R=smarthost`));
    expect(log).toMatch(new RegExp(`${id} \\*\\* bad@example\\.org R=smarthost T=remote_smtp H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:\\d+: SMTP error from remote mail server after RCPT TO:<bad@example\\.org>: 550`));
    expect(log).toMatch(new RegExp(`${id} == tmp@example\\.org R=smarthost T=remote_smtp defer \\(-44\\) H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:\\d+: SMTP error from remote mail server after RCPT TO:<tmp@example\\.org>: 451`));
    expect(log).not.toMatch(new RegExp(`${id} Completed`));
    const q = (await p.run('postern', ['-bp'])).stdout;
    expect(q).toContain(`        D ok@example.org\n        D bad@example.org\n          tmp@example.org\n`);
    const json = JSON.parse((await p.run('postern', ['-bp', '--json'])).stdout);
    expect(json.recipients.map((r: { state: string }) => r.state)).toEqual(['delivered', 'failed', 'pending']);
    expect(json.last_error).toMatch(/451/);
    // -Mvl shows the message's own log; -qf retries the deferred recipient.
    expect((await p.run('postern', ['-Mvl', id])).stdout).toMatch(/== tmp@example\.org/);
    sink.behaviour.rcpt = undefined;
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(sink.messages.filter((m) => m.to.includes('tmp@example.org'))).toHaveLength(1);
    expect(sink.messages.filter((m) => m.to.includes('ok@example.org'))).toHaveLength(1);
  });

  it('defers everything when the smarthost is down, and fails over to the next host', async () => {
    const down = new Sink();
    const downPort = await down.listen();
    await down.close(); // a port where nothing listens
    p.writeConfig([downPort, sink.port]);
    await p.start();
    const reply = await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: failover\n\nx\n');
    const id = reply.slice(-16);
    await sink.waitFor(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(p.log()).toMatch(new RegExp(`${id} H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${downPort} Connection refused`));
    expect(p.log()).toMatch(new RegExp(`${id} => ops@example\\.org .*:${sink.port} C=`));
    await p.stop();
    p.writeConfig([downPort]);
    await p.start();
    const r2 = await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: down\n\nx\n');
    const id2 = r2.slice(-16);
    await p.waitForLog(new RegExp(`${id2} == ops@example\\.org R=smarthost T=remote_smtp defer \\(111\\): Connection refused`));
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('1\n');
  });

  it('fails all recipients on a 5xx after the data and defers them on a 4xx', async () => {
    sink.behaviour.data = (m) => (m.data.includes('Subject: reject') ? 554 : m.data.includes('Subject: later') ? 452 : undefined);
    await p.start();
    const a = (await sendOne(p.port, 's@example.org', ['x@example.org', 'y@example.org'], 'Subject: reject\n\nx\n')).slice(-16);
    const b = (await sendOne(p.port, 's@example.org', ['z@example.org'], 'Subject: later\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${a} \\*\\* y@example\\.org .*after end of data: 554`));
    await p.waitForLog(new RegExp(`${b} == z@example\\.org .*after end of data: 452`));
    await p.waitForLog(new RegExp(`${a} Completed`));
  });

  it('defers when the smarthost drops the connection at the end of data or stops answering', async () => {
    let drops = 1;
    sink.behaviour.dropAtData = () => drops-- > 0;
    const text = (await import('node:fs')).readFileSync(p.config, 'utf8').replace('timeout = "10s"', 'timeout = "2s"');
    (await import('node:fs')).writeFileSync(p.config, text);
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: drop\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} == ops@example\\.org R=smarthost T=remote_smtp defer \\(-?\\d+\\): `));
    expect(sink.messages).toHaveLength(0);
    // The host now waits for its retry time; a forced run tries it at once.
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await p.waitForLog(new RegExp(`${id} Completed`));
    sink.behaviour.delayMs = 4000; // longer than smarthost.timeout
    const id2 = (await sendOne(p.port, 'a@example.org', ['slow@example.org'], 'Subject: slow\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id2} == slow@example\\.org R=smarthost T=remote_smtp defer \\(110\\): Connection timed out`));
    sink.behaviour.delayMs = 0;
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await p.waitForLog(new RegExp(`${id2} Completed`));
    expect(sink.messages.map((m) => m.to[0])).toEqual(['ops@example.org', 'slow@example.org']);
  });

  it('enforces relay_from, max_recipients and max_message_size with enhanced codes', async () => {
    p.writeConfig([sink.port], '');
    const text = (await import('node:fs')).readFileSync(p.config, 'utf8').replace('max_recipients = 5', 'max_recipients = 2\nrelay_from = ["10.0.0.0/8"]');
    (await import('node:fs')).writeFileSync(p.config, text);
    await p.start();
    const { client, greeting } = await RawSmtp.open(p.port);
    expect(greeting).toMatch(/^220 web1\.example\.org ESMTP/);
    const ehlo = await client.cmd('EHLO client.test');
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'SIZE 1048576']) expect(ehlo).toContain(ext);
    expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await client.cmd('RCPT TO:<x@example.org>')).toBe('550 5.7.1 Relay not permitted');
    client.close();
    await p.waitForLog(/H=\(client\.test\) \[127\.0\.0\.1\] F=<a@example\.org> rejected RCPT <x@example\.org>: Relay not permitted/);
    await p.stop();
    p.writeConfig([sink.port]);
    (await import('node:fs')).writeFileSync(p.config, (await import('node:fs')).readFileSync(p.config, 'utf8').replace('max_recipients = 5', 'max_recipients = 2'));
    await p.start();
    const c2 = (await RawSmtp.open(p.port)).client;
    await c2.cmd('EHLO client.test');
    expect(await c2.cmd('MAIL FROM:<a@example.org> SIZE=2000000')).toMatch(/^552 5\.3\.4/);
    expect(await c2.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c2.cmd('RCPT TO:<1@example.org>')).toMatch(/^250/);
    expect(await c2.cmd('RCPT TO:<2@example.org>')).toMatch(/^250/);
    expect(await c2.cmd('RCPT TO:<3@example.org>')).toBe('452 4.5.3 Too many recipients');
    expect(await c2.data(`Subject: big\n\n${'x'.repeat(100)}\n`.repeat(12000))).toMatch(/^552/);
    // The session goes on after a rejection, and the next message is accepted.
    expect(await c2.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c2.cmd('RCPT TO:<1@example.org>')).toMatch(/^250/);
    expect(await c2.data('Subject: small\n\nok\n')).toMatch(/^250 2\.0\.0 OK id=/);
    c2.close();
    await sink.waitFor(1);
    expect(sink.messages).toHaveLength(1);
  });
});
