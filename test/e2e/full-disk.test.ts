// A full disk under the spool (a real 4 MB tmpfs, so root only): SMTP clients get
// 452 4.3.1 and the daemon keeps serving and delivering; once space is back mail is
// accepted again; a daemon started on a full disk starts and delivers what waits
// (which frees space); sendmail exits 75 with one sentence.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Instance } from '../helpers/postern.js';
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
  beforeEach(() => {
    mnt = mkdtempSync(join(tmpdir(), 'postern-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
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
});
