// sendmail's C front end (src/postdrop/sendmail.c, dist/sendmail): the plain submissions
// it writes into the maildrop itself, byte for byte as node does; everything else handed
// to node with the same arguments and the same stdin; errors node's own. Two trees: the
// real one (dist/sendmail beside bin/sendmail), and a copy of dist/sendmail whose
// ../bin/sendmail is a stand-in that records what it was given and exits 99, which
// tells the two paths apart without timing. Real daemon, real sink, real maildrop.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeBoth, Instance, ROOT, runProgram, sinkAndInstance } from '../helpers/postern.js';
import type { Sink } from '../helpers/sink.js';

const exec = (cmd: string, args: string[], input: string | Buffer) => runProgram(cmd, args, { input });

describe('sendmail: the C front end', () => {
  let sink: Sink;
  let p: Instance;
  let fake: string;
  const front = join(ROOT, 'dist/sendmail');
  const node = join(ROOT, 'bin/sendmail');
  const viaFake = (args: string[], input: string | Buffer) => exec(join(fake, 'dist/sendmail'), ['-C', p.config, ...args], input);
  const handed = () => readFileSync(join(fake, 'handed'), 'utf8');
  const drops = () => readdirSync(join(p.dir, 'spool-maildrop')).filter((n) => /^[0-9a-f]{32}$/.test(n));

  beforeAll(() => {
    fake = mkdtempSync(join(tmpdir(), 'postern-front-'));
    mkdirSync(join(fake, 'dist'));
    mkdirSync(join(fake, 'bin'));
    copyFileSync(front, join(fake, 'dist/sendmail'));
    chmodSync(join(fake, 'dist/sendmail'), 0o755);
    // The stand-in for node: its arguments, a line, then its stdin.
    writeFileSync(join(fake, 'bin/sendmail'), '#!/bin/sh\n{ printf "%s|" "$@"; echo; cat; } > "${0%/bin/sendmail}/handed"\nexit 99\n', { mode: 0o755 });
    writeFileSync(join(fake, 'bin/mailq'), '#!/bin/sh\n{ printf mailq; printf " %s" "$@"; } > "${0%/bin/mailq}/handed"\nexit 98\n', { mode: 0o755 });
    symlinkSync('sendmail', join(fake, 'dist/mailq'));
  });
  afterAll(() => rmSync(fake, { recursive: true, force: true }));
  beforeEach(async () => {
    [sink, p] = await sinkAndInstance();
    await p.start();
  });
  afterEach(() => closeBoth(sink, p));

  it('node writes its settings; plain submissions are then written without node and relayed as node\'s are', async () => {
    // start() wrote the port into the file after the daemon read it: the first goes to node, which writes them again.
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: a\n\nx\n')).code).toBe(99);
    expect((await p.run('sendmail', ['-i', 'ops@example.org'], { input: 'Subject: first\n\nx\n' })).code).toBe(0);
    await sink.waitFor(1);
    sink.messages.shift();
    const settings = readFileSync(join(p.dir, 'spool-maildrop/.config.cache.json.sendmail'), 'utf8');
    expect(settings).toMatch(/^postern-sendmail-config 1\nversion=.*\nfile=.*\nmaildrop=.*\npostdrop=.*\nmax_message_size=1048576\nmax_recipients=5\nqualify_domain=example\.org\nhostname=web1\.example\.org\ntext=\d+\n/);
    const cases: [string[], string, string[]][] = [
      [['-t', '-i'], 'To: ops@example.org, Root <root>\r\nCc: <dev@example.org>\nBcc: hidden@example.org\nSubject: t\n\nbody\n.\nmore\n', ['ops@example.org', 'root@example.org', 'dev@example.org', 'hidden@example.org']],
      [['-f', 'cron@web1.example.org', '-F', 'Cron Daemon', 'ops@example.org'], 'Subject: dot\n\nline\n.\nnot sent\n', ['ops@example.org']],
      [['-FCronDaemon', '-i', '-B8BITMIME', '-oem', '-odi', 'root'], 'Subject: cron\n\nran\n', ['root@example.org']],
      [['-oi', '--', 'a@example.org', 'b'], 'Subject: dashes\n\nx\n', ['a@example.org', 'b@example.org']],
    ];
    for (const [args, input, to] of cases) {
      const r = await viaFake(args, input);
      expect({ args, ...r }).toEqual({ args, code: 0, stdout: '', stderr: '' });
      await sink.waitFor(1);
      const got = sink.messages.shift()!;
      expect(got.to).toEqual(to);
    }
    const log = p.log();
    expect(log).toMatch(new RegExp(`<= cron@web1\\.example\\.org U=${userInfo().username} P=local`));
    // Bcc: gone, the lone dot ended the second message, -F made the From:.
    expect(log.match(/ P=local /g)).toHaveLength(5);
  });

  it('the drop file is byte for byte node\'s (daemon stopped: the files stay)', async () => {
    await p.stop();
    // start() wrote the port into the file after the daemon read it: node writes the settings again.
    expect((await p.run('sendmail', ['-odq', 'ops@example.org'], { input: 'Subject: first\n\nx\n' })).code).toBe(0);
    const input = 'To: ops@example.org\r\nSubject: same\r\n\r\nbody\r\n.\r\nafter\rcr\n';
    for (const args of [['-t'], ['-i', '-odq', '-f', 'x@example.org', '-F', 'A "quoted" \\ name', 'ops@example.org', 'root']]) {
      for (const f of drops()) rmSync(join(p.dir, 'spool-maildrop', f));
      expect((await viaFake(args, input)).code).toBe(0); // not node's
      expect((await exec(process.execPath, [node, '-C', p.config, ...args], input)).code).toBe(0);
      const [a, b] = drops().map((f) => readFileSync(join(p.dir, 'spool-maildrop', f)));
      expect(a).toBeDefined();
      expect(a!.equals(b!)).toBe(true);
    }
  });

  it('hands anything else to node with the same arguments and stdin', async () => {
    const big = `Subject: big\n\n${'x'.repeat(1024 * 1024)}\n`;
    const cases: [string[], string][] = [
      [['-bp'], ''],
      [['-bv', 'ops@example.org'], ''],
      [['-N', 'never', 'ops@example.org'], 'Subject: n\n\nx\n'],
      [['--', '-bp'], 'Subject: n\n\nx\n'],
      [['ops@example.org', 'Jürgen@example.org'], 'Subject: utf8\n\nx\n'],
      [['"quoted"@example.org'], 'Subject: q\n\nx\n'],
      [['-f', 'Some One <a@example.org>', 'ops@example.org'], 'Subject: f\n\nx\n'],
      [['-t', '-i'], 'To: undisclosed-recipients:;\nSubject: group\n\nx\n'],
      [['-t', '-i'], 'To: ops@example.org (Ops)\nSubject: comment\n\nx\n'],
      [['-t', '-i'], 'To: ops@exa\0mple.org\nSubject: nul\n\nx\n'],
      [['-t', '-i', 'ops@example.org'], 'To: dev@example.org\n\nx\n'],
      [['-i'], 'Subject: none\n\nx\n'],
      [['-i', 'a', 'b', 'c', 'd', 'e', 'f'], 'Subject: six\n\nx\n'],
      [['-i', 'ops@example.org'], big],
    ];
    for (const [args, input] of cases) {
      const r = await viaFake(args, input);
      expect({ args, code: r.code }).toEqual({ args, code: 99 });
      expect(handed()).toBe(`-C|${p.config}|${args.join('|')}|\n${input}`);
    }
    expect(drops()).toEqual([]);
    // Called by another name (a link): node's command of that name.
    expect((await exec(join(fake, 'dist/mailq'), ['-C', p.config], '')).code).toBe(98);
    expect(handed()).toBe(`mailq -C ${p.config}`);
  });

  it('a changed configuration, or settings others may write, go to node until node writes them again', async () => {
    writeFileSync(p.config, `${readFileSync(p.config, 'utf8')}\n# changed\n`);
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: a\n\nx\n')).code).toBe(99);
    expect((await p.run('sendmail', ['-i', 'ops@example.org'], { input: 'Subject: b\n\nx\n', env: {} })).code).toBe(0);
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: c\n\nx\n')).code).toBe(0);
    chmodSync(join(p.dir, 'spool-maildrop/.config.cache.json.sendmail'), 0o666);
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: d\n\nx\n')).code).toBe(99);
    await sink.waitFor(2);
  });

  it('settings naming another folder than the one they lie in, even a link to it, go to node', async () => {
    expect((await p.run('sendmail', ['-i', 'ops@example.org'], { input: 'Subject: a\n\nx\n' })).code).toBe(0);
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: b\n\nx\n')).code).toBe(0); // believed as written
    const drop = join(p.dir, 'spool-maildrop');
    const file = join(drop, '.config.cache.json.sendmail');
    const written = readFileSync(file, 'utf8');
    // The maildrop's owner links a name in it to the maildrop (later, to any folder).
    symlinkSync('.', join(drop, '.d'));
    writeFileSync(file, written.replace(/^maildrop=.*$/m, `maildrop=${drop}/.d`));
    expect((await viaFake(['-i', 'ops@example.org'], 'Subject: c\n\nx\n')).code).toBe(99);
    expect(handed()).toContain('Subject: c');
    await sink.waitFor(2);
  });

  it('errors are node\'s own: the same exit code, the same sentence, nothing written', async () => {
    const cases: [string[], string][] = [
      [['-X'], 'Subject: x\n\nx\n'],
      [['-i'], 'Subject: none\n\nx\n'],
      [['-i', 'bad..dots@example.org'], 'Subject: x\n\nx\n'],
      [['-i', 'a', 'b', 'c', 'd', 'e', 'f'], 'Subject: six\n\nx\n'],
      [['-t', '-i'], 'Subject: no recipients\n\nx\n'],
      [['-t', '-i'], 'To: ops@exa\0mple.org\n\nx\n'],
      [['-i', 'ops@example.org'], `Subject: big\n\n${'x'.repeat(1024 * 1024)}\n`],
      [['-f'], ''],
    ];
    for (const [args, input] of cases) {
      const c = await exec(front, ['-C', p.config, ...args], input);
      const n = await exec(process.execPath, [node, '-C', p.config, ...args], input);
      expect({ args, ...c }).toEqual({ args, ...n });
      expect(c.code).not.toBe(0);
    }
    expect(drops()).toEqual([]);
  });
});
