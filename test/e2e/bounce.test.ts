// Failure reports: a recipient the smarthost refuses is reported to the sender in an
// RFC 3464 message with the null sender, committed with the attempt's result; -Mg
// gives up on a message and bounces it; a failing bounce is not bounced again.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeBoth, Instance, sinkAndInstance } from '../helpers/postern.js';
import type { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';

describe('bounces', () => {
  let sink: Sink;
  let p: Instance;
  beforeEach(async () => {
    [sink, p] = await sinkAndInstance();
  });
  afterEach(() => closeBoth(sink, p));

  it('reports a refused recipient to the sender, as Exim does', async () => {
    sink.behaviour.rcpt = (a) => (a.startsWith('bad') ? 550 : undefined);
    await p.start();
    const id = (await sendOne(p.port, 'app@example.org', ['ok@example.org', 'bad@example.org'],
      'Subject: important\nMessage-ID: <orig1@web1.example.org>\n\nthe original text\n')).slice(-16);
    await sink.waitFor(2);
    const report = sink.messages.find((m) => m.from === '')!;
    expect(report.to).toEqual(['app@example.org']);
    const d = report.data;
    expect(d).toMatch(/^X-Failed-Recipients: bad@example\.org\r$/m);
    expect(d).toMatch(/^Auto-Submitted: auto-replied\r$/m);
    expect(d).toMatch(/^From: Mail Delivery System <Mailer-Daemon@example\.org>\r$/m);
    expect(d).toMatch(/^References: <orig1@web1\.example\.org>\r$/m);
    expect(d).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status; boundary=/m);
    expect(d).toMatch(/^Subject: Mail delivery failed: returning message to sender\r$/m);
    expect(d).toContain('The following address(es) failed:\r\n\r\n  bad@example.org\r\n    host 127.0.0.1 [127.0.0.1]\r\n');
    expect(d).toMatch(/^Action: failed\r\nFinal-Recipient: rfc822;bad@example\.org\r\nStatus: 5\.0\.0\r\nRemote-MTA: dns; 127\.0\.0\.1\r\nDiagnostic-Code: smtp; 550 /m);
    expect(d).toContain('Content-type: message/rfc822\r\n\r\nReturn-path: <app@example.org>\r\n');
    expect(d).toContain('the original text');
    // The hub may have the bounce before the log line is written out: wait for the line.
    await p.waitForLog(new RegExp(`${id} Completed`));
    const log = p.log();
    const bounceId = new RegExp(`(\\S+) <= <> R=${id} U=\\S+ P=local S=\\d+`).exec(log)?.[1];
    expect(bounceId).toMatch(/^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$/);
    // Exim's order: the ** line, the bounce's arrival, then Completed.
    const lines = log.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(new RegExp(`${id} \\*\\* bad@`))).toBeLessThan(at(new RegExp(`<= <> R=${id}`)));
    expect(at(new RegExp(`<= <> R=${id}`))).toBeLessThan(at(new RegExp(`${id} Completed`)));
    await p.waitForLog(new RegExp(`${bounceId} Completed`));
  });

  it("carries the hub's enhanced code: a 550 5.1.1 gives Status: 5.1.1 and the reply as Diagnostic-Code", async () => {
    sink.behaviour.rcpt = (a) => (a.startsWith('bad') ? '550 5.1.1 <bad@example.org>: Recipient address rejected' : undefined);
    await p.start();
    const id = (await sendOne(p.port, 'app@example.org', ['ok@example.org', 'bad@example.org'], 'Subject: exact\n\nx\n')).slice(-16);
    await sink.waitFor(2);
    const d = sink.messages.find((m) => m.from === '')!.data;
    expect(d).toMatch(/^Action: failed\r\nFinal-Recipient: rfc822;bad@example\.org\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; 127\.0\.0\.1\r\n/m);
    expect(d).toContain('Diagnostic-Code: smtp; 550 5.1.1 <bad@example.org>: Recipient address rejected\r\n');
    expect(p.log()).toContain(`${id} ** bad@example.org R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1]:${sink.port}: ` +
      'SMTP error from remote mail server after RCPT TO:<bad@example.org>: 550 5.1.1 <bad@example.org>: Recipient address rejected');
  });

  it('warns the sender when a message waits past delay_warning', async () => {
    const fs = await import('node:fs');
    fs.writeFileSync(p.config, fs.readFileSync(p.config, 'utf8') + '[retry]\ndelay_warning = ["1s"]\n');
    sink.behaviour.rcpt = (a) => (a.startsWith('tmp') ? 451 : undefined);
    await p.start();
    const id = (await sendOne(p.port, 'app@example.org', ['tmp@example.org'], 'Subject: slow one\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} == tmp@example\\.org`));
    // The next attempt must come when the message is older than delay_warning.
    const { waitUntil } = await import('../helpers/postern.js');
    const arrival = JSON.parse((await p.run('postern', ['-bp', '--json'])).stdout).arrival as string;
    await waitUntil('the message to pass delay_warning', () => Date.now() - Date.parse(arrival) > 1100);
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    await sink.waitFor(1);
    const w = sink.messages[0]!;
    expect(w.from).toBe('');
    expect(w.to).toEqual(['app@example.org']);
    expect(w.data).toMatch(new RegExp(`^Subject: Warning: message ${id} delayed \\d+ minutes\r$`, 'm'));
    expect(w.data).toContain('The subject of the message is: slow one');
    expect(w.data).toMatch(/^Action: delayed\r\nFinal-Recipient: rfc822;tmp@example\.org\r\nStatus: 4\.0\.0\r$/m);
    expect(w.data).toContain('Content-type: text/rfc822-headers');
    // The hub may have the warning before its arrival line is written out.
    await p.waitForLog(new RegExp(`<= <> R=${id} `));
  });

  it('-Mg leaves a message being delivered alone, and works with no daemon running', async () => {
    sink.behaviour.delayMs = 1500;
    await p.start();
    const id = (await sendOne(p.port, 'a@example.org', ['ops@example.org'], 'Subject: in flight\n\nx\n')).slice(-16);
    const { waitUntil } = await import('../helpers/postern.js');
    await waitUntil('the delivery to start', () => sink.connections > 0);
    const g = await p.run('postern', ['-Mg', id]);
    expect(g.stdout).toBe(`Message ${id} is locked\n`);
    expect(g.code).toBe(1);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(p.log()).not.toMatch(/<= <> R=/);
    await p.stop();
    expect((await p.run('sendmail', ['-odq', '-f', 'x@example.org', 'y@example.org'], { input: 'Subject: q\n\nx\n' })).code).toBe(0);
    const queued = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    expect((await p.run('postern', ['-Mg', queued])).code).toBe(0);
    const left = (await p.run('postern', ['-bp', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(left).toHaveLength(1);
    expect(left[0].sender).toBe('');
    expect(left[0].recipients[0].address).toBe('x@example.org');
  });

  it('does not bounce a bounce: one the hub refuses is frozen for the postmaster, as Exim does', async () => {
    sink.behaviour.rcpt = () => 550;
    await p.start();
    const id = (await sendOne(p.port, '', ['bad@example.org'], 'Subject: a bounce itself\n\nx\n')).slice(-16);
    await p.waitForLog(new RegExp(`${id} Frozen \\(delivery error message\\)`));
    expect(p.log()).not.toMatch(/<= <> R=/);
    expect(p.log()).not.toMatch(new RegExp(`${id} Completed`));
    const bp = await p.run('postern', ['-bp']);
    expect(bp.stdout).toMatch(new RegExp(`${id} <> \\*\\*\\* frozen \\*\\*\\*`));
    expect(bp.stdout).toMatch(/^ {10}bad@example\.org$/m);
  });

  it('-Mg gives up on a message and bounces it to the sender', async () => {
    const r = await p.run('sendmail', ['-odq', '-f', 'cron@example.org', 'ops@example.org', 'dev@example.org'], { input: 'Subject: give up\n\nx\n' });
    expect(r.code).toBe(0);
    const id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    await p.start();
    const g = await p.run('postern', ['-Mg', id]);
    expect(g.code).toBe(0);
    expect(g.stdout).toBe('');
    await sink.waitFor(1);
    const report = sink.messages[0]!;
    expect(report.from).toBe('');
    expect(report.to).toEqual(['cron@example.org']);
    expect(report.data).toContain('failed:\r\n\r\n  ops@example.org\r\n  dev@example.org\r\n');
    expect(report.data).not.toContain('Diagnostic-Code');
    const log = p.log();
    expect(log).toMatch(new RegExp(`${id} cancelled by \\S+`));
    expect(log).toMatch(new RegExp(`<= <> R=${id} `));
    expect(log).toMatch(new RegExp(`${id} Completed`));
    expect(sink.messages.filter((m) => m.to.includes('ops@example.org'))).toHaveLength(0);
    const missing = await p.run('postern', ['-Mg', '1xVaAA-000001-00']);
    expect(missing.stdout).toBe('Spool data file for 1xVaAA-000001-00 does not exist\n');
    expect(missing.code).toBe(1);
  });
});
