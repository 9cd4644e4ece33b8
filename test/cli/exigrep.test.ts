// test/cli/exigrep.test.ts: postern-exigrep over a main log and its rotations (plain,
// numbered, gzipped), a message whose lines span two files, lines of no message, -l,
// -I, -v, JSON lines, and the log of a real daemon found through log.file.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { logFiles } from '../../src/cli/exigrep.js';
import { closeBoth, runCommand, sinkAndInstance } from '../helpers/postern.js';

const dir = mkdtempSync(join(tmpdir(), 'postern-exigrep-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = join(dir, 'log');
mkdirSync(log);
const cfg = join(dir, 'postern.toml');
writeFileSync(cfg, '[smarthost]\nhosts = ["127.0.0.1:2526"]\n[spool]\ndirectory = "spool"\n[log]\nfile = "log/mainlog"\n');

// Oldest first: mainlog.2.gz, mainlog.1, mainlog.
const A = '1xVME4-0001HS-0Y'; // bob's, starts in .2.gz, ends in .1
const B = '1xVMF0-0002AA-0a'; // carol's, all in .2.gz
const C = '1xVMG0-0003BB-0b'; // bob's again, not completed yet (in mainlog)
writeFileSync(join(log, 'mainlog.2.gz'), gzipSync([
  `2026-11-26 05:04:24 ${A} <= www-data@example.org U=www-data P=local S=2954`,
  `2026-11-26 05:04:25 ${B} <= cron@example.org U=root P=local S=512`,
  `2026-11-26 05:04:26 ${B} => carol@example.org R=smarthost T=remote_smtp H=mail.example.org [192.0.2.25] C="250 OK"`,
  `2026-11-26 05:04:26 ${B} Completed`,
  `2026-11-26 05:09:00 ${A} == bob@example.org R=smarthost T=remote_smtp defer (111): Connection refused`,
].join('\n') + '\n'));
writeFileSync(join(log, 'mainlog.1'), [
  `2026-11-27 06:00:00 ${A} => bob@example.org R=smarthost T=remote_smtp H=mail.example.org [192.0.2.25] C="250 OK"`,
  `2026-11-27 06:00:00 ${A} Completed`,
  '2026-11-27 06:10:00 SMTP protocol error in "DATA" H=(bob.test) [127.0.0.1] need RCPT command',
].join('\n') + '\n');
writeFileSync(join(log, 'mainlog'), [
  `2026-11-28 07:00:00 ${C} <= root@example.org U=root P=local S=300`,
  `2026-11-28 07:00:01 ${C} == Bob@example.org R=smarthost T=remote_smtp defer (111): Connection refused`,
].join('\n') + '\n');
writeFileSync(join(log, 'mainlog-old.txt'), 'not a rotation\n');

const exigrep = (args: string[]) => runCommand('postern-exigrep', args);

describe('postern-exigrep', () => {
  it('finds the rotations of log.file, oldest first', () => {
    expect(logFiles(join(log, 'mainlog')).map((f) => f.slice(log.length + 1))).toEqual(['mainlog.2.gz', 'mainlog.1', 'mainlog']);
  });

  it('prints every line of each matching message, grouped, across rotated and gzipped files', async () => {
    const r = await exigrep(['-C', cfg, 'bob@example']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe([
      `2026-11-26 05:04:24 ${A} <= www-data@example.org U=www-data P=local S=2954`,
      `2026-11-26 05:09:00 ${A} == bob@example.org R=smarthost T=remote_smtp defer (111): Connection refused`,
      `2026-11-27 06:00:00 ${A} => bob@example.org R=smarthost T=remote_smtp H=mail.example.org [192.0.2.25] C="250 OK"`,
      `2026-11-27 06:00:00 ${A} Completed`,
      '',
      `2026-11-28 07:00:00 ${C} <= root@example.org U=root P=local S=300`,
      `2026-11-28 07:00:01 ${C} == Bob@example.org R=smarthost T=remote_smtp defer (111): Connection refused`,
      '', '',
    ].join('\n'));
  });

  it('-I is case-sensitive, -l literal, -v inverts; lines of no message print alone', async () => {
    const sensitive = await exigrep(['-C', cfg, '-I', 'Bob@']);
    expect(sensitive.stdout.match(/<=.*/g)).toEqual([`<= root@example.org U=root P=local S=300`]);
    const literal = await exigrep(['-l', 'S=5.2', join(log, 'mainlog.2.gz')]);
    expect(literal.code).toBe(1);
    expect(literal.stdout).toBe('');
    const dotted = await exigrep(['-l', 'S=512', join(log, 'mainlog.2.gz')]);
    expect(dotted.stdout).toContain(`${B} Completed`);
    const inverted = await exigrep(['-v', 'bob', join(log, 'mainlog.2.gz'), join(log, 'mainlog.1')]);
    expect(inverted.stdout).toContain(`${B} <= cron@example.org`);
    expect(inverted.stdout).not.toContain(A);
    const loose = await exigrep(['-C', cfg, 'bob\\.test']);
    expect(loose.stdout).toBe('2026-11-27 06:10:00 SMTP protocol error in "DATA" H=(bob.test) [127.0.0.1] need RCPT command\n');
  });

  it('reads JSON lines, grouped by their id', async () => {
    const f = join(dir, 'json.log');
    writeFileSync(f, [
      JSON.stringify({ time: 't1', type: 'received', id: A, sender: 'dave@example.org' }),
      JSON.stringify({ time: 't2', type: 'received', id: B, sender: 'eve@example.org' }),
      JSON.stringify({ time: 't3', type: 'completed', id: A }),
    ].join('\n') + '\n');
    const r = await exigrep(['dave', f]);
    expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l).time)).toEqual(['t1', 't3']);
  });

  it('a bad command line or a missing file is one sentence', async () => {
    const none = await exigrep([]);
    expect(none.code).toBe(64);
    expect(none.stderr).toMatch(/^postern-exigrep: a pattern is needed/);
    const bad = await exigrep(['(']);
    expect(bad.code).toBe(64);
    const missing = await exigrep(['x', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`postern-exigrep: cannot read ${join(dir, 'nope')}: no such file\n`);
  });

  it('follows a message a real daemon delivered', async () => {
    const [sink, p] = await sinkAndInstance();
    try {
      await p.start();
      const sent = await p.run('sendmail', ['-t', '-i'], { input: 'To: frank@example.org\nSubject: hi\n\nbody\n' });
      expect(sent.code).toBe(0);
      await p.waitForLog(/Completed/);
      const r = await p.run('postern-exigrep', ['frank@']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/<= .*\n.* => frank@example\.org .*\n.* Completed\n\n$/);
    } finally {
      await closeBoth(sink, p);
    }
  });
});
