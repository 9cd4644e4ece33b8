// The command-line contract: exit codes, one-sentence errors, Exim's per-message
// output of the queue commands, -bt/-bV/-bP, with the real bin/ commands.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/postern.js';

describe('command line', () => {
  let p: Instance;
  beforeEach(() => {
    p = new Instance([2599, 2598]);
  });
  afterEach(() => p.cleanup());

  const submit = async (to = 'ops@example.org') => {
    const r = await p.run('sendmail', ['-odq', '-f', 'www-data@web1.example.org', to], { input: 'Subject: t\n\nbody text\n' });
    expect(r.code).toBe(0);
    const ids = (await p.run('postern-qgrep', ['-i'])).stdout.trim().split('\n');
    return ids[ids.length - 1] as string;
  };

  it('-bt shows the route in Exim format and exits 2 for unroutable addresses', async () => {
    const r = await p.run('postern', ['-bt', 'ops@example.org', 'root']);
    expect(r.stdout).toBe('ops@example.org\n  router = smarthost, transport = remote_smtp\n' +
      '  host 127.0.0.1 [127.0.0.1] port=2599\n  host 127.0.0.1 [127.0.0.1] port=2598\n' +
      'root@example.org\n  router = smarthost, transport = remote_smtp\n' +
      '  host 127.0.0.1 [127.0.0.1] port=2599\n  host 127.0.0.1 [127.0.0.1] port=2598\n');
    expect(r.code).toBe(0);
    const bad = await p.run('postern', ['-bt', 'bad address@@x']);
    expect(bad.stdout).toBe('bad address@@x is undeliverable: Unrouteable address\n');
    expect(bad.code).toBe(2);
  });

  it('-bV and -bP report version and settings; a bad config names file, line and key', async () => {
    const v = await p.run('postern', ['-bV']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^postern version \d+\.\d+\.\d+/);
    const one = await p.run('postern', ['-bP', 'qualify_domain', 'smarthost.hosts']);
    expect(one.stdout).toBe('qualify_domain = example.org\nsmarthost.hosts = 127.0.0.1:2599, 127.0.0.1:2598\n');
    const unknown = await p.run('postern', ['-bP', 'nosuchoption']);
    expect(unknown.stderr).toBe('nosuchoption is not a known option\n');
    expect(unknown.code).toBe(1);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"', 'tls = "sometimes"'));
    const bad = await p.run('postern', ['-bV']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`^postern: configuration error in ${p.config} line 11: smarthost\\.tls: .*\\n$`));
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
    // The daemon validates in a worker thread (config/validate-worker.ts): the same sentence.
    const daemon = await p.run('postern', ['-bd', '-q1h']);
    expect(daemon.code).toBe(1);
    expect(daemon.stderr).toMatch(new RegExp(`^postern: configuration error in ${p.config} line 11: smarthost\\.tls: .*\\n$`));
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "sometimes"', 'tls = "none"\ncolour = "blue"'));
    const unk = await p.run('sendmail', ['x@example.org'], { input: 'x\n' });
    expect(unk.code).toBe(1);
    expect(unk.stderr).toMatch(/line 12: smarthost\.colour: unknown key/);
    writeFileSync(p.config, 'hostname = "x\n');
    const syntax = await p.run('postern', ['-bp']);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(/configuration error in .* line 1:/);
  });

  it('the queries (-bV, -bP, -bt, -brt, exigrep) write nothing: no spool folder, no cache', async () => {
    for (const args of [['-bV'], ['-bP'], ['-bP', 'qualify_domain'], ['-bt', 'ops@example.org'], ['-brt', 'ops@example.org']]) {
      expect((await p.run('postern', args)).code, args.join(' ')).toBe(0);
    }
    expect((await p.run('postern-exigrep', ['x'])).code).toBe(1); // nothing found: the log is not there
    expect(readdirSync(p.dir)).toEqual(['postern.toml']);
  });

  it('sendmail exit codes follow sysexits', async () => {
    expect((await p.run('sendmail', ['-Zq', 'a@example.org'])).code).toBe(64);
    expect((await p.run('sendmail', [])).code).toBe(64);
    const noRcpt = await p.run('sendmail', ['-t'], { input: 'Subject: nobody\n\nx\n' });
    expect(noRcpt.code).toBe(65);
    expect(noRcpt.stderr).toBe('sendmail: no recipients found in the message headers\n');
    const badRcpt = await p.run('sendmail', ['bad address@@x'], { input: 'x\n' });
    expect(badRcpt.code).toBe(65);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('sendmail exits 75 when the spool cannot be written', async () => {
    // The spool folder's parent is a plain file: nothing can be created there.
    writeFileSync(`${p.dir}/not-a-folder`, '');
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('directory = "spool"', 'directory = "not-a-folder/spool"'));
    const r = await p.run('sendmail', ['a@example.org'], { input: 'Subject: x\n\ny\n' });
    expect(r.code).toBe(75);
    expect(r.stderr).toMatch(/^sendmail: .*try again/);
  });

  it('-Mf, -Mt, -Mrm print Exim\'s per-message results and log the operator', async () => {
    const id = await submit();
    const other = await submit('dev@example.org');
    expect((await p.run('postern', ['-Mf', id])).stdout).toBe(`Message ${id} is now frozen\n`);
    const again = await p.run('postern', ['-Mf', id]);
    expect(again.stdout).toBe(`Message ${id} is already frozen\n`);
    expect(again.code).toBe(1);
    const bp = (await p.run('mailq', [])).stdout;
    expect(bp).toMatch(new RegExp(`^ {1,2}\\dm +\\d+ ${id} <www-data@web1\\.example\\.org> \\*\\*\\* frozen \\*\\*\\*\\n {10}ops@example\\.org\\n\\n`));
    expect((await p.run('postern', ['-Mt', id])).stdout).toBe(`Message ${id} is no longer frozen\n`);
    const missing = '1xVaAA-000001-00';
    const rm = await p.run('postern', ['-Mrm', id, missing, other]);
    expect(rm.stdout).toBe(`Message ${id} has been removed\nSpool data file for ${missing} does not exist\nMessage ${other} has been removed\n`);
    expect(rm.code).toBe(1);
    const malformed = await p.run('postern', ['-Mrm', 'bogus']);
    expect(malformed.code).toBe(64);
    expect(malformed.stderr).toBe('postern: malformed message id bogus after -Mrm option\n');
    const log = p.log();
    expect(log).toMatch(new RegExp(`${id} frozen by \\S+`));
    expect(log).toMatch(new RegExp(`${id} unfrozen by \\S+`));
    expect(log).toMatch(new RegExp(`${id} removed by \\S+\\n.* ${id} Completed`));
    expect((await p.run('postern', ['-bp'])).stdout).toBe('');
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('-Mvh and -Mvb show headers and body; IDs of both Exim shapes are accepted', async () => {
    const id = await submit();
    const h = await p.run('postern', ['-Mvh', id]);
    expect(h.stdout).toMatch(/^Received: from \S+ by web1\.example\.org with local/);
    expect(h.stdout).toMatch(/^Subject: t$/m);
    expect(h.stdout).toMatch(new RegExp(`^Message-Id: <E${id}@web1\\.example\\.org>$`, 'm'));
    expect((await p.run('postern', ['-Mvb', id])).stdout).toBe('body text\n');
    const long = await p.run('postern', ['-Mvb', '1xVaAA-00000000001-0000']);
    expect(long.stdout).toBe('Spool data file for 1xVaAA-00000000001-0000 does not exist\n');
    expect(long.code).toBe(1);
  });

  it('sendmail -bs runs an SMTP session on stdin/stdout; its messages go through the maildrop', async () => {
    const r = await p.run('sendmail', ['-bs'], {
      input: 'EHLO me\r\nMAIL FROM:<me@example.org>\r\nRCPT TO:<ops@example.org>\r\nDATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n',
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\r\n');
    expect(lines[0]).toMatch(/^220 web1\.example\.org ESMTP/);
    expect(lines).toContain('250 2.1.5 Accepted');
    // The spool ID is made by the pickup, from the maildrop file.
    expect(lines).toContain('250 2.0.0 OK queued');
    expect(lines[lines.length - 1]).toMatch(/^221 /);
    const id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    expect(id).toMatch(/^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$/);
    expect(p.log()).toMatch(new RegExp(`${id} <= me@example\\.org U=\\S+ P=local-esmtp S=\\d+`));
    expect((await p.run('postern', ['-Mvh', id as string])).stdout).toMatch(/^Received: from \S+ by web1\.example\.org with local-esmtp/);
  });

  it('sendmail -bs qualifies a bare local part (MAIL FROM:<www-data>, RCPT TO:<root>) with qualify_domain, as Exim does for local SMTP', async () => {
    const r = await p.run('sendmail', ['-bs'], {
      input: 'EHLO me\r\nMAIL FROM:<www-data>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: bare\r\n\r\nhello\r\n.\r\nQUIT\r\n',
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\r\n');
    expect(lines).toContain('250 2.1.0 Accepted');
    expect(lines).toContain('250 2.1.5 Accepted');
    expect(lines).toContain('250 2.0.0 OK queued');
    const list = (await p.run('postern', ['-bp'])).stdout;
    expect(list).toMatch(/ <www-data@example\.org>\n {10}root@example\.org\n/);
  });

  it('a From: that postern adds carries the user\'s name from the passwd entry (root <root@example.org>)', async () => {
    const r = await p.run('sendmail', ['-odq', 'ops@example.org'], { input: 'Subject: no from\n\nx\n' });
    expect(r.code).toBe(0);
    const id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    const h = (await p.run('postern', ['-Mvh', id])).stdout;
    // The tests run as root, whose passwd entry says "root".
    expect(h).toMatch(/^From: root <root@example\.org>$/m);
  });

  it('postern-qgrep selects like exiqgrep and feeds -Mrm', async () => {
    await submit('a@example.org');
    await p.run('sendmail', ['-odq', '-f', 'spam@bad.example', 'b@example.org'], { input: 'x\n' });
    expect((await p.run('postern-qgrep', ['-c'])).stdout).toBe('2 matches out of 2 messages\n');
    const spam = (await p.run('postern-qgrep', ['-i', '-f', '<spam@'])).stdout.trim();
    expect(spam).toMatch(/^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$/);
    expect((await p.run('postern-qgrep', ['-b', '-r', '^b@'])).stdout).toBe(`${spam} From: <spam@bad.example> To: b@example.org\n`);
    expect((await p.run('postern-qgrep', ['-c', '-f', '^<>$'])).stdout).toBe('0 matches out of 2 messages\n');
    expect((await p.run('postern', ['-Mrm', spam])).code).toBe(0);
    expect((await p.run('postern-qgrep', ['-c'])).stdout).toBe('1 matches out of 1 messages\n');
    const bad = await p.run('postern-qgrep', ['-Q']);
    expect(bad.code).toBe(64);
  });
});
