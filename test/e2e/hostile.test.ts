// End-to-end tests of hostile and faulty SMTP sessions against the real daemon: bytes
// that would forge log lines, the SMTP library's own rejections in the main log, the
// per-session error limit (listen.max_errors), the idle timeout (listen.idle_timeout),
// RFC 5321 address syntax at MAIL/RCPT, and the connection limit's log line; and for
// the commands, a NUL in a `sendmail -t` recipient header, and -C naming a device,
// a FIFO or a folder.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeBoth, runCommand, sinkAndInstance, type Instance } from '../helpers/postern.js';
import type { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';

/** Adds `key = value` lines to the [listen] table of the instance's config. */
function listenKeys(p: Instance, lines: string): void {
  writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('max_recipients = 5\n', `max_recipients = 5\n${lines}\n`));
}

/** Every line of the main log holds only printable characters. */
function assertPrintable(log: string): void {
  for (const line of log.split('\n')) expect(line).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
}

describe('hostile SMTP sessions', () => {
  let sink: Sink;
  let p: Instance;
  beforeEach(async () => {
    [sink, p] = await sinkAndInstance();
  });
  afterEach(async () => {
    await closeBoth(sink, p);
  });

  it('a HELO and a Message-ID with CR and terminal escapes are escaped in the main log', async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    // A bare CR inside a command line is not a line end: the library refuses the name,
    // and the refused command goes to the log (escaped).
    expect(await client.cmd('EHLO evil\r2024-01-01 00:00:00 1forge-000000-XX Completed\x1b]0;owned\x07')).toMatch(/^501 /);
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
    expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await client.cmd('RCPT TO:<b@example.org>')).toMatch(/^250/);
    expect(await client.data('Message-ID: <x\x1b[2J\x1b[31m@evil\r2024-01-01 00:00:00 forged>\nSubject: hi\n\nbody')).toMatch(/^250/);
    client.close();
    const [line] = await p.waitForLog(/^.* <= a@example\.org .*$/);
    // (A bare CR in a header goes out as a space: see cleanup.)
    expect(line).toContain('id=x\\033[2J\\033[31m@evil 2024-01-01 00:00:00 forged');
    expect(p.log()).toContain('SMTP syntax error in "EHLO evil\\r2024-01-01 00:00:00 1forge-000000-XX Completed\\033]0;owned\\007" H=[127.0.0.1]');
    assertPrintable(p.log());
    expect(p.log()).not.toMatch(/^2024-01-01 00:00:00 1forge/m);
  });

  it("the library's own rejections are logged with H= and the reason", async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^503 /);
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
    expect(await client.cmd('FROB x\x1b')).toMatch(/^500 /);
    expect(await client.cmd('MAIL FROM:<a b@example.org>')).toMatch(/^501 /);
    expect(await client.cmd('DATA')).toMatch(/^503 /);
    client.close();
    await p.waitForLog(/SMTP protocol error in "DATA"/);
    const log = p.log();
    expect(log).toMatch(/ SMTP protocol error in "MAIL FROM:<a@example\.org>" H=\[127\.0\.0\.1\] send HELO\/EHLO first$/m);
    expect(log).toMatch(/ SMTP syntax error in "FROB x\\033" H=\(client\.test\) \[127\.0\.0\.1\] command not recognized$/m);
    expect(log).toMatch(/ SMTP syntax error in "MAIL FROM:<a b@example\.org>" H=\(client\.test\) \[127\.0\.0\.1\] Bad sender address syntax$/m);
    expect(log).toMatch(/ SMTP protocol error in "DATA" H=\(client\.test\) \[127\.0\.0\.1\] need RCPT command$/m);
  });

  it('a command line over the limit ends the session and is logged', async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    expect(await client.cmd(`EHLO ${'x'.repeat(20_000)}`)).toMatch(/^421 /);
    await p.waitForLog(/SMTP call from \[127\.0\.0\.1\] dropped: Command line too long/);
  });

  it('after listen.max_errors (default 20) rejected commands the client gets 421 4.7.0 and is dropped', async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
    expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    const replies: string[] = [];
    for (let i = 0; i < 20; i++) {
      // A bad recipient (ours, 553) and bad syntax (the library's, 501) count alike.
      replies.push(await client.cmd(i % 2 ? `RCPT TO:<r${i}@-bad.test>` : `RCPT TO:<r ${i}@example.org>`));
    }
    expect(replies.every((r) => /^5\d\d /.test(r))).toBe(true);
    // Right after the 20th: 421, and the connection closes (the other 280 are never read).
    expect(await client.reply()).toBe('421 4.7.0 web1.example.org Too many syntax or protocol errors');
    await expect(client.reply(5_000)).rejects.toThrow(/connection closed/);
    await p.waitForLog(/SMTP call from \(client\.test\) \[127\.0\.0\.1\] dropped: too many syntax or protocol errors \(last command was "RCPT TO:<r19@-bad\.test>"\)/);
    expect(p.log().match(/rejected RCPT <r\d+@-bad\.test>/g)).toHaveLength(10);
  });

  it('max_errors = 3: the third rejection is followed by 421; accepted commands do not count', async () => {
    listenKeys(p, 'max_errors = 3');
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    await client.cmd('EHLO client.test');
    await client.cmd('MAIL FROM:<a@example.org>');
    expect(await client.cmd('RCPT TO:<x@-a.test>')).toMatch(/^553 5\.1\.3 /);
    expect(await client.cmd('RCPT TO:<ok@example.org>')).toMatch(/^250 /);
    expect(await client.cmd('RCPT TO:<x@-b.test>')).toMatch(/^553 5\.1\.3 /);
    expect(await client.cmd('RCPT TO:<x@-c.test>')).toMatch(/^553 5\.1\.3 /);
    expect(await client.reply()).toMatch(/^421 4\.7\.0 /);
  });

  it('an idle client is dropped after listen.idle_timeout with 421 4.4.2, and it is logged', async () => {
    listenKeys(p, 'idle_timeout = "1s"');
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
    expect(await client.reply(15_000)).toBe('421 4.4.2 web1.example.org SMTP command timeout - closing connection');
    await p.waitForLog(/SMTP command timeout on connection from \(client\.test\) \[127\.0\.0\.1\]$/);
  });

  it('quoted local parts are accepted at MAIL and RCPT; a domain label starting with "-" is refused', async () => {
    await p.start();
    const { client } = await RawSmtp.open(p.port);
    await client.cmd('EHLO client.test');
    expect(await client.cmd('MAIL FROM:<"john smith"@example.org> SIZE=100')).toMatch(/^250 /);
    expect(await client.cmd('RCPT TO:<"a b"@example.org>')).toMatch(/^250 /);
    expect(await client.cmd('RCPT TO:<"x@y"@example.org>')).toMatch(/^250 /);
    expect(await client.cmd('RCPT TO:<a@-hub.test>')).toMatch(/^553 5\.1\.3 /);
    expect(await client.cmd('RCPT TO:<a@hub-.test>')).toMatch(/^5\d\d 5\.1\.3 /);
    expect(await client.data('Subject: quoted\n\nbody')).toMatch(/^250 /);
    client.close();
    const [line] = await p.waitForLog(/<= "john smith"@example\.org .*/);
    expect(line).toContain('P=esmtp');
    // Relayed as spooled (the test hub, smtp-server itself, refuses quoted local parts).
    await p.waitForLog(/^.* (=>|\*\*|==) "a b"@example\.org R=smarthost/);
    await p.waitForLog(/^.* (=>|->|\*\*|==) "x@y"@example\.org R=smarthost/);
    expect(p.log()).toMatch(/rejected RCPT <a@-hub\.test>: Bad recipient address syntax/);
  });

  it('a connection over listen.max_connections is refused with 421 and logged', async () => {
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('max_recipients = 5\n', 'max_recipients = 5\nmax_connections = 1\n'));
    await p.start();
    const first = await RawSmtp.open(p.port);
    expect(first.greeting).toMatch(/^220 /);
    const second = await RawSmtp.open(p.port);
    expect(second.greeting).toMatch(/^421 4\.3\.2 /);
    await p.waitForLog(/Connection from \[127\.0\.0\.1\] refused: too many connections$/);
    first.client.close();
  });

  it('the same for a client outside relay_from (refused by the library itself)', async () => {
    listenKeys(p, 'max_connections = 1\nrelay_from = ["10.0.0.0/8"]');
    await p.start();
    const first = await RawSmtp.open(p.port);
    expect(first.greeting).toMatch(/^220 /);
    const second = await RawSmtp.open(p.port);
    expect(second.greeting).toMatch(/^421 /);
    await p.waitForLog(/Connection from \[127\.0\.0\.1\] refused: too many connections$/);
    first.client.close();
  });
});

describe('hostile input to the commands', () => {
  let sink: Sink;
  let p: Instance;
  beforeEach(async () => {
    [sink, p] = await sinkAndInstance();
  });
  afterEach(async () => {
    await closeBoth(sink, p);
  });

  it('sendmail -t with a NUL in To: exits 65 with one sentence and queues nothing', async () => {
    const r = await p.run('sendmail', ['-t', '-i'], { input: Buffer.from('To: a\0b@example.org\nSubject: x\n\nbody\n', 'latin1') });
    expect(r.stderr).toBe('sendmail: the To: header holds a NUL, so its recipients cannot be read\n');
    expect(r.code).toBe(65);
    expect(p.log()).not.toMatch(/<= /);
  });

  it('sendmail -bs takes a quoted local part as the listener does', async () => {
    const r = await p.run('sendmail', ['-bs'], {
      input: 'EHLO me\r\nMAIL FROM:<"me too"@example.org>\r\nRCPT TO:<"a b"@example.org>\r\nRCPT TO:<x@-bad.test>\r\nQUIT\r\n',
    });
    const lines = r.stdout.trimEnd().split('\r\n');
    expect(lines.filter((l) => l.startsWith('250 2.1.'))).toHaveLength(2);
    expect(lines.some((l) => /^5\d\d 5\.1\.3 /.test(l))).toBe(true);
  });

  it('-C /dev/zero, a FIFO and a folder are refused with one sentence and exit 1, at once', async () => {
    const fifo = `${p.dir}/fifo.toml`;
    execFileSync('mkfifo', [fifo]);
    for (const [file, why] of [['/dev/zero', 'it is not a regular file'], [fifo, 'it is not a regular file'], [p.dir, 'it is a directory']]) {
      const r = await runCommand('postern', ['-C', file as string, '-bV'], { timeoutMs: 20_000 });
      expect(r.stderr).toBe(`postern: cannot read configuration file ${file}: ${why}\n`);
      expect(r.code).toBe(1);
    }
  });
});
