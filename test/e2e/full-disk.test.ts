// A full disk under the spool (a real 4 MB tmpfs, so root only): SMTP clients get
// 452 4.3.1 and the daemon keeps serving and delivering; once space is back mail is
// accepted again; a daemon started on a full disk starts and delivers what waits
// (which frees space); sendmail exits 75 with one sentence. On an 8 MB file system
// holding the spool and the maildrop, fill/free cycles never leave acknowledged mail
// behind, nor deliver it twice.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const root = process.getuid?.() === 0;

/** Fills the file system of `dir` until a write fails, in one file; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const block = Buffer.alloc(64 * 1024, 1);
  execFileSync('sh', ['-c', `cat /dev/zero > ${path} 2>/dev/null || true`]);
  // Whatever is left below a page, too.
  try { writeFileSync(join(dir, 'filler2'), block); } catch { /* full */ }
  return path;
}

async function offer(port: number, subject: string): Promise<string> {
  const { client } = await RawSmtp.open(port);
  try {
    await client.cmd('EHLO client.test');
    await client.cmd('MAIL FROM:<app@example.org>');
    await client.cmd('RCPT TO:<ops@example.org>');
    return await client.data(`Subject: ${subject}\n\n${'x'.repeat(200_000)}\n`);
  } finally {
    client.close();
  }
}

describe.skipIf(!root)('a full disk', () => {
  let mnt: string;
  let p: Instance | undefined;
  let sink: Sink | undefined;
  let size = '4m';
  beforeEach(() => {
    mnt = mkdtempSync(join(tmpdir(), 'postern-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
  });
  afterEach(async () => {
    await p?.cleanup();
    await sink?.close();
    p = sink = undefined;
    try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
    rmSync(mnt, { recursive: true, force: true });
  });

  function instance(port: number): Instance {
    const inst = new Instance([port]);
    const spool = join(mnt, 'spool');
    mkdirSync(spool);
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('directory = "spool"', `directory = "${spool}"`));
    return inst;
  }

  it('answers 452 4.3.1, keeps running, logs it once, and accepts again once space is back', async () => {
    sink = new Sink();
    await sink.listen();
    const inst = instance(sink.port);
    p = inst;
    await inst.start();
    const filler = fill(mnt);
    const first = await offer(inst.port, 'one');
    expect(first).toMatch(/^452 4\.3\.1 /);
    const second = await offer(inst.port, 'two');
    expect(second).toMatch(/^452 4\.3\.1 /);
    expect(inst.daemon?.exitCode).toBeNull();
    expect(inst.log().match(/cannot write the spool/g)).toHaveLength(1);
    rmSync(filler);
    rmSync(join(mnt, 'filler2'), { force: true });
    // Accepted again once the daemon has seen the room (it looks at most once a second).
    let reply = '';
    for (const deadline = Date.now() + 20_000; !/^250 /.test(reply) && Date.now() < deadline;) reply = await offer(inst.port, 'three');
    expect(reply).toMatch(/^250 /);
    await sink.waitFor(1);
    expect(sink.messages[0]?.data).toContain('Subject: three');
    expect(inst.log()).not.toMatch(/panic/);
  });

  it('starts on a full disk and delivers what waits; sendmail exits 75 with one sentence', async () => {
    sink = new Sink();
    await sink.listen();
    const port = sink.port;
    await sink.close(); // the hub is down while mail queues up
    const inst = instance(port);
    p = inst;
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8') + '[retry]\nrules = ["* * F,4d,1s"]\n');
    await inst.start();
    for (const s of ['a', 'b', 'c']) expect(await offer(inst.port, s)).toMatch(/^250 /);
    await inst.waitForLog(/== ops@example\.org .*defer/);
    expect((await inst.run("postern", ["-bpc"])).stdout).toBe("3\n");
    await inst.stop();
    fill(mnt);
    const sm = await inst.run('sendmail', ['ops@example.org'], { input: 'Subject: full\n\nbody\n' });
    expect(sm.code).toBe(75);
    expect(sm.stderr.trim().split('\n')).toHaveLength(1);
    expect(sm.stderr).not.toMatch(/\n\s+at /);
    sink = new Sink();
    await sink.listen(port);
    await inst.start(); // must not crash-loop on the full disk; the mail is due again within a second
    await sink.waitFor(3, 60_000);
    await inst.waitForLog(/Completed/, 3, 60_000);
    expect(inst.daemon?.exitCode).toBeNull();
    expect(inst.log()).not.toMatch(/panic/);
  });
  describe('on 8 MB', () => {
    beforeAll(() => { size = '8m'; });
    afterAll(() => { size = '4m'; });

    it('10 fill/free cycles with the hub down, then up: every message sendmail or SMTP acknowledged is delivered once; sendmail refuses (75) below the reserve', async () => {
      sink = new Sink();
      await sink.listen();
      const port = sink.port;
      await sink.close(); // the hub is down while the cycles run: the spool's file grows, and keeps its size
      const inst = instance(port);
      p = inst;
      writeFileSync(inst.config, readFileSync(inst.config, 'utf8') + '[retry]\nrules = ["* * F,4d,1s"]\n');
      await inst.start();
      const acked: string[] = [];
      const refused = { sendmail: 0, smtp: 0 };
      const body = 'x'.repeat(150_000);
      const submit = async (tag: string) => {
        const sm = await inst.run('sendmail', ['ops@example.org'], { input: `Subject: ${tag}-s\n\n${body}\n` });
        if (sm.code === 0) acked.push(`${tag}-s`);
        else {
          expect(sm.code, sm.stderr).toBe(75);
          refused.sendmail++;
        }
        const reply = await offer(inst.port, `${tag}-m`);
        if (/^250 /.test(reply)) acked.push(`${tag}-m`);
        else {
          expect(reply).toMatch(/^452 4\.3\.1 /);
          refused.smtp++;
        }
      };
      for (let cycle = 1; cycle <= 10; cycle++) {
        for (let i = 0; i < 3; i++) await submit(`c${cycle}a${i}`);
        // Full, then nearly full: sendmail's own files take the last of the room.
        const filler = fill(mnt);
        for (let i = 0; i < 2; i++) await submit(`c${cycle}f${i}`);
        rmSync(filler);
        rmSync(join(mnt, 'filler2'), { force: true });
        const free = statfsSync(mnt);
        const room = free.bavail * free.bsize - 3 * 1024 * 1024;
        if (room > 0) execFileSync('fallocate', ['-l', String(room), filler]);
        for (let i = 0; i < 8; i++) await submit(`c${cycle}n${i}`);
        rmSync(filler, { force: true });
      }
      sink = new Sink();
      await sink.listen(port);
      const subjects = () => sink!.messages.map((m) => /Subject: (\S+)/.exec(m.data)?.[1] ?? '?');
      await waitUntil(`all ${acked.length} acknowledged messages at the hub`, () => acked.every((s) => subjects().includes(s)), 120_000)
        .catch((e: Error) => { throw new Error(`${e.message}; missing: ${acked.filter((s) => !subjects().includes(s)).join(' ')}\n${inst.log().split('\n').slice(-20).join('\n')}`); });
      const counts = new Map<string, number>();
      for (const s of subjects()) counts.set(s, (counts.get(s) ?? 0) + 1);
      expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
      expect(refused.sendmail).toBeGreaterThan(0);
      expect(readdirSync(join(mnt, 'spool-maildrop')).filter((n) => !n.startsWith('.'))).toEqual([]);
      // "left for later" is said once a minute at most.
      expect((inst.log().match(/left for later/g) ?? []).length).toBeLessThanOrEqual(3);
      // A message refused (75, 452) but delivered anyway would come twice when its sender retries.
      expect(subjects().filter((s) => !acked.includes(s))).toEqual([]);
      console.log(`full-disk cycles: ${acked.length} acknowledged, ${sink!.messages.length} delivered, ${[...counts.values()].filter((n) => n > 1).length} duplicates; refused: sendmail ${refused.sendmail}, SMTP ${refused.smtp}`);
    }, 240_000);
  });
});
