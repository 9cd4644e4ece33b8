// test/migrate/exim-queue.test.ts: `postern install --import-queue` takes over Exim's
// queue. The fixture is a real Exim 4.96 spool (test/fixtures/exim-spool-4.96, made by
// Debian's exim4 with -odq: a cron mail to root, a message Exim delivered to one of its
// two recipients, a frozen bounce). Parsed as Exim wrote it; imported once (a second run
// finds nothing, Exim's files go only after the commit); delivered by the daemon to a
// sink as Exim would have: the recipient Exim delivered is not sent again, the frozen
// message stays frozen.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEximMessage } from '../../src/migrate/exim-queue.js';
import { closeBoth, Instance, ROOT, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

const FIXTURE = join(ROOT, 'test/fixtures/exim-spool-4.96');
const CRON = '1xaTqu-0000bu-0k';
const PARTIAL = '1xaTqu-0000bw-0s';
const FROZEN = '1xaTqu-0000by-0w';
const read = (id: string) => parseEximMessage(id, readFileSync(join(FIXTURE, 'input', `${id}-H`), 'latin1'), readFileSync(join(FIXTURE, 'input', `${id}-D`)));

describe('Exim\'s spool files, parsed', () => {
  it('a cron mail: submitter, sender, arrival, headers without Exim\'s prefixes, the body after its name line', () => {
    const m = read(CRON);
    expect(m.user).toBe('root');
    expect(m.sender).toBe('root@web1.example.org');
    expect(m.recipients).toEqual(['root@web1.example.org']);
    expect(m.arrival).toBe(1796631220 * 1000 + 234);
    expect(m.protocol).toBe('local');
    expect(m.frozen).toBe(false);
    expect(m.messageIdHeader).toBe(`E${CRON}@web1.example.org`);
    expect(m.headers).toMatch(/^Received: from root by web1\.example\.org with local \(Exim 4\.96\)\n\t/);
    expect(m.headers).toContain('\nFrom: Cron Daemon <root@web1.example.org>\n');
    expect(m.headers).not.toMatch(/^\d{3}/m);
    expect(m.body.toString()).toBe('line one\n.dot line\n');
  });

  it('the non-recipients tree and a -J file say what Exim delivered; -frozen is kept', () => {
    const p = read(PARTIAL);
    expect(p.recipients).toEqual(['dev@example.org']);
    expect(p.delivered).toEqual(['ops@example.org']);
    const h = readFileSync(join(FIXTURE, 'input', `${PARTIAL}-H`), 'latin1');
    const withJ = parseEximMessage(PARTIAL, h, readFileSync(join(FIXTURE, 'input', `${PARTIAL}-D`)), 'dev@example.org\n');
    expect(withJ.recipients).toEqual([]);
    const f = read(FROZEN);
    expect(f.frozen).toBe(true);
    expect(f.sender).toBe('');
  });

  it('a file that is not Exim\'s is refused with the reason', () => {
    expect(() => parseEximMessage(CRON, 'garbage\n', Buffer.from(''))).toThrow(/does not begin with its name/);
  });
});

describe('postern install --import-queue', () => {
  let sink: Sink | undefined;
  let p: Instance | undefined;
  let exim = '';
  afterEach(async () => {
    await closeBoth(sink, p);
    if (exim) rmSync(exim, { recursive: true, force: true });
  });

  async function setUp(extra = '') {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port], extra);
    exim = mkdtempSync(join(tmpdir(), 'postern-exim-'));
    cpSync(FIXTURE, exim, { recursive: true });
    await p.start(); // makes the spool
    await p.stop();
    return { sink, p };
  }

  it('--dry-run names each message and changes nothing', async () => {
    const { p } = await setUp();
    const r = await p.run('postern', ['install', '--import-queue', '--dry-run', '--exim-spool', exim]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${PARTIAL} <app@example.org> 1 recipient (1 delivered by Exim), 9 body bytes: would be imported\n`);
    expect(r.stdout).toContain(`${FROZEN} <> 1 recipient, frozen, 2 body bytes: would be imported\n`);
    expect(r.stdout).toMatch(/3 messages of Exim's queue \(.*\) would be imported; nothing was changed\n$/);
    expect(readdirSync(join(exim, 'input'))).toHaveLength(6);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('imports each message once under its Exim ID, removes Exim\'s files, and the daemon sends what Exim had not', async () => {
    const { sink, p } = await setUp();
    const r = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${CRON} <root@web1.example.org> 1 recipient, 19 body bytes: imported\n`);
    expect(r.stdout).toMatch(/imported 3 messages from Exim's queue/);
    expect(readdirSync(join(exim, 'input'))).toEqual([]);
    const q = await p.run('postern', ['-bp']);
    expect(q.stdout).toContain(`${FROZEN} <> *** frozen ***`);
    expect(q.stdout).toContain(PARTIAL);
    expect(p.log()).toMatch(new RegExp(`${CRON} <= root@web1\\.example\\.org U=root P=local S=\\d+ id=E${CRON}@web1\\.example\\.org`));
    expect(p.log()).toContain(`${PARTIAL} taken over from Exim's queue; already delivered by Exim: ops@example.org`);
    // Again: nothing left to take.
    const again = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim]);
    expect(again.stdout).toMatch(/is empty: nothing to import/);

    await p.start();
    await p.waitForLog(new RegExp(`${PARTIAL} Completed`));
    await p.waitForLog(new RegExp(`${CRON} Completed`));
    const got = await waitUntil('two messages at the sink', () => (sink.messages.length >= 2 ? sink.messages : undefined));
    const partial = got.find((m) => m.data.includes(`id ${PARTIAL}`))!;
    expect(partial.to).toEqual(['dev@example.org']);
    const cron = got.find((m) => m.data.includes(`id ${CRON}`))!;
    expect(cron.data).toMatch(/\r?\n\.dot line\r?\n/); // the body as Exim kept it, dots and all
    // One blank line between the headers and the body, as Exim sends it (the body was once glued to the last header).
    expect(cron.data).toMatch(/\nDate: [^\r\n]+\r?\n\r?\n/);
    expect(cron.from).toBe('root@web1.example.org');
    expect(got).toHaveLength(2); // the frozen one stays
    expect((await p.run('postern', ['-bp'])).stdout).toContain(`${FROZEN} <> *** frozen ***`);
  });

  it('Exim 4.97+ IDs (23 characters, Debian 13\'s Exim) are kept as they are, listed and delivered', async () => {
    const { sink, p } = await setUp();
    const long = '1xaTqu-00000000bu0-0k00';
    for (const id of [PARTIAL, FROZEN]) for (const x of ['-H', '-D']) rmSync(join(exim, 'input', `${id}${x}`));
    for (const x of ['-H', '-D']) {
      const f = join(exim, 'input', `${CRON}${x}`);
      writeFileSync(join(exim, 'input', `${long}${x}`), readFileSync(f, 'latin1').replace(CRON, long), 'latin1'); // the name line (headers keep their lengths)
      rmSync(f);
    }
    const r = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim]);
    expect(r.code, r.stderr).toBe(0);
    expect((await p.run('postern', ['-bp'])).stdout).toContain(long);
    expect((await p.run('postern', ['-Mvh', long])).stdout).toContain('Subject: cron output');
    await p.start();
    await p.waitForLog(new RegExp(`${long} Completed`));
    expect(sink.messages[0]?.data).toContain('Subject: cron output');
  });

  it('a daemon delivering from the spool is not raced: stop it first', async () => {
    const { p } = await setUp();
    await p.start();
    const r = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^postern: postern \(pid \d+\) is delivering from this spool: stop it first \(systemctl stop postern\), import, then start it\n$/);
    expect(readdirSync(join(exim, 'input'))).toHaveLength(6);
  });

  it('a message whose files are not Exim\'s is named and kept; the others are imported', async () => {
    const { p } = await setUp();
    writeFileSync(join(exim, 'input', '1xaTqu-0000cc-00-H'), 'not exim\n');
    writeFileSync(join(exim, 'input', '1xaTqu-0000cc-00-D'), 'x\n');
    const r = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('postern install: 1xaTqu-0000cc-00 not imported: the -H file does not begin with its name; Exim\'s files left in');
    expect(r.stdout).toMatch(/imported 3 messages .*; 1 message not imported/);
    expect(existsSync(join(exim, 'input', '1xaTqu-0000cc-00-H'))).toBe(true);
  });

  const isRoot = process.getuid?.() === 0;
  it.skipIf(!isRoot)('as root with user = set, the spool is written by that user (needs root: useradd)', async () => {
    const name = `ptimp${process.pid % 10000}`;
    execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', name]);
    try {
      const { p } = await setUp();
      // user = must come before the tables; the user must reach the config.
      writeFileSync(p.config, `user = "${name}"\n${readFileSync(p.config, 'utf8')}`);
      chmodSync(p.dir, 0o711);
      chmodSync(p.config, 0o644);
      await p.start();
      await p.stop();
      const r = await p.run('postern', ['install', '--import-queue', '--exim-spool', exim], { env: { UV_USE_IO_URING: '1' } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/imported 3 messages/);
      const owners = execFileSync('find', [join(p.dir, 'spool'), '-newer', p.config, '!', '-user', name], { encoding: 'utf8' });
      expect(owners.split('\n').filter((f) => /spool\.mdb/.test(f))).toEqual([]);
      expect((await p.run('postern', ['-bpc'])).stdout).toBe('3\n');
    } finally {
      execFileSync('userdel', [name]);
    }
  });
});
