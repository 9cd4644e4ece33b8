// The submitter's identity comes from the kernel and cannot be borrowed (issue 18,
// item 7), as root with throwaway users and groups: nobody but root, the daemon's user
// and the setgid helper can put a name into the maildrop, so a file moved, linked or
// written in by a user never passes as another's mail or proof; a user's sendmail
// still submits through the helper and is logged U=thatuser; the helper refuses
// folders it cannot trust and leaves nothing behind when killed; an older 1733
// maildrop is tightened at start.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeBoth, sinkAndInstance, waitUntil, type Instance } from '../helpers/postern.js';
import { installHelper, makeGroup, makeUser, removeUsersAndGroups, runAs, type TestUser } from '../helpers/postdrop.js';
import type { Sink } from '../helpers/sink.js';

const isRoot = process.getuid?.() === 0;
const dropFile = (message: string) => `${JSON.stringify({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' })}\n${message}`;
const hex = () => randomBytes(16).toString('hex');

/** `node -e` as the user: fs.<op>(...args); prints the error code, or "ok". */
const fsAs = (u: TestUser, op: string, ...args: string[]) => runAs(u, undefined, ['-e',
  `try { require('fs').${op}(${args.map((a) => JSON.stringify(a)).join(', ')}); console.log('ok'); } catch (e) { console.log(e.code); }`]).then((r) => r.stdout.trim());

describe.skipIf(!isRoot)('the maildrop takes names from root, the daemon\'s user and the setgid helper only (needs root)', () => {
  let p: Instance | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    p = sink = undefined;
  });
  afterAll(() => removeUsersAndGroups());

  /** A daemon run as root, the helper installed for a new drop group; users reach the config and the helper. */
  async function setup(): Promise<{ inst: Instance; drop: string; group: number }> {
    [sink, p] = await sinkAndInstance();
    chmodSync(p.dir, 0o711);
    const group = makeGroup().gid;
    installHelper(p, group);
    return { inst: p, drop: join(p.dir, 'spool-maildrop'), group };
  }

  it("a user cannot move, link or write a file in (a root-owned 0666 file of their folder stays root's); their sendmail is theirs (U=)", async () => {
    const { inst, drop, group } = await setup();
    await inst.start();
    expect(statSync(drop).mode & 0o7777).toBe(0o1731);
    expect(statSync(drop).gid).toBe(group);
    const u = makeUser();
    // Root's file, complete-looking and writable by all, in a folder of the user's.
    const own = join(inst.dir, 'own');
    mkdirSync(own);
    chownSync(own, u.uid, u.gid);
    const rootFile = join(own, 'roots');
    writeFileSync(rootFile, dropFile('Subject: as root\n\nx\n'), { mode: 0o666 });
    chmodSync(rootFile, 0o666);
    expect(await fsAs(u, 'renameSync', rootFile, join(drop, hex()))).toBe('EACCES');
    expect(await fsAs(u, 'linkSync', rootFile, join(drop, hex()))).toBe('EACCES');
    expect(await fsAs(u, 'symlinkSync', rootFile, join(drop, hex()))).toBe('EACCES');
    expect(await fsAs(u, 'writeFileSync', join(drop, hex()), dropFile('Subject: direct\n\nx\n'))).toBe('EACCES');
    expect(await fsAs(u, 'readdirSync', drop)).toBe('EACCES');
    expect(existsSync(rootFile)).toBe(true);

    const sent = await runAs(u, 'sendmail', ['-C', inst.config, 'ops@example.org'], 'Subject: mine\n\nbody\n');
    expect(sent).toEqual({ code: 0, stdout: '', stderr: '' });
    await sink!.waitFor(1);
    expect(sink!.messages[0]!.from).toBe(`${u.name}@example.org`);
    await inst.waitForLog(new RegExp(`<= ${u.name}@example\\.org U=${u.name} P=local `));
    // sendmail -bs streams each message through the helper too.
    const bs = await runAs(u, 'sendmail', ['-C', inst.config, '-bs'],
      'EHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<ops@example.org>\r\nDATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n');
    expect(bs.stdout).toContain('250 2.0.0 OK queued');
    await sink!.waitFor(2);
    await inst.waitForLog(new RegExp(`<= <> U=${u.name} P=local-esmtp `));
    expect(inst.log()).not.toMatch(/U=root/);
    // What the helper made was the user's file, and nothing is left.
    expect(readdirSync(drop).filter((n) => !n.startsWith('.'))).toEqual([]);
  });

  it("in a shared group folder (2775, umask 002) one user cannot move another's file in as a proof, nor list or remove that user's mail", async () => {
    const { inst, drop } = await setup();
    await inst.start(['-q1h']);
    const shared = makeGroup();
    // Both users act with the shared group as their group, as in a project folder.
    const a = { ...makeUser([shared.name]), gid: shared.gid };
    const b = { ...makeUser([shared.name]), gid: shared.gid };
    const folder = join(inst.dir, 'project');
    mkdirSync(folder);
    chownSync(folder, 0, shared.gid);
    chmodSync(folder, 0o2775);

    const queued = await runAs(b, 'sendmail', ['-C', inst.config, '-odq', 'ops@example.org'], 'Subject: from b\n\nx\n');
    expect(queued.code).toBe(0);
    const idB = /(\S+) <= /.exec((await inst.waitForLog(new RegExp(`^.* <= .* U=${b.name} .*$`)))[0]!)![1]!;

    // b's empty file (0664 with umask 002), which a may rename: not into the maildrop.
    const proof = `.auth-${hex()}`;
    const bFile = join(folder, proof);
    expect((await runAs(b, undefined, ['-e', `process.umask(0o002); require('fs').writeFileSync(${JSON.stringify(bFile)}, '')`])).code).toBe(0);
    expect(statSync(bFile).mode & 0o777).toBe(0o664);
    expect(await fsAs(a, 'renameSync', bFile, join(drop, proof))).toBe('EACCES');
    expect(await fsAs(a, 'linkSync', bFile, join(drop, proof))).toBe('EACCES');
    // Asked with that name anyway, the daemon finds no proof.
    const sock = join(drop, '.postern.sock');
    const asked = await runAs(a, undefined, ['-e',
      `const s = require('net').createConnection(${JSON.stringify(sock)}); s.on('connect', () => s.write(JSON.stringify({ op: 'own', action: 'remove', proof: ${JSON.stringify(proof)}, ids: [${JSON.stringify(idB)}] }) + '\\n')); s.setEncoding('utf8'); let d = ''; s.on('data', (x) => (d += x)); s.on('end', () => process.stdout.write(d));`]);
    expect(JSON.parse(asked.stdout)).toEqual({ ok: false, error: 'not permitted' });
    // a's own proofs (made by the helper) prove a: b's mail is neither listed nor removed.
    expect((await runAs(a, 'mailq', ['-C', inst.config])).stdout).toBe('');
    const rm = await runAs(a, 'postern', ['-C', inst.config, '-Mrm', idB]);
    expect(rm).toEqual({ code: 1, stdout: `Spool data file for ${idB} does not exist\n`, stderr: '' });
    expect((await runAs(b, 'mailq', ['-C', inst.config])).stdout).toContain(idB);
    expect(inst.log()).not.toMatch(new RegExp(`${idB} removed`));
  });

  it('the helper refuses a folder writable by all or of another group, and a killed one leaves nothing in the maildrop', async () => {
    const { inst, drop, group } = await setup();
    await inst.start();
    const u = makeUser();
    const helper = join(inst.dir, 'postdrop');
    const open = join(inst.dir, 'open');
    mkdirSync(open);
    chownSync(open, 0, group);
    chmodSync(open, 0o1733);
    expect(await runAs(u, helper, [open], 'x')).toEqual({ code: 77, stdout: '', stderr: 'postdrop: the maildrop is writable by everyone\n' });
    const other = join(inst.dir, 'other');
    mkdirSync(other);
    chownSync(other, 0, makeGroup().gid);
    chmodSync(other, 0o1731);
    expect(await runAs(u, helper, [other], 'x')).toEqual({ code: 77, stdout: '', stderr: "postdrop: the maildrop is not of postdrop's group\n" });
    expect((await runAs(u, helper, ['relative/path'], 'x')).code).toBe(64);
    expect(readdirSync(open)).toEqual([]);
    expect(readdirSync(other)).toEqual([]);

    // Killed while its input is still coming: the file it writes has no name yet (O_TMPFILE).
    const before = readdirSync(drop).sort();
    const child = spawn(helper, [drop], { uid: u.uid, gid: u.gid, stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.write(dropFile('Subject: half\n\n'));
    await waitUntil('the helper writing its file', () => {
      try {
        return readdirSync(`/proc/${child.pid}/fd`).some((fd) => readlinkSync(`/proc/${child.pid}/fd/${fd}`).startsWith(`${drop}/#`));
      } catch {
        return false;
      }
    });
    expect(readdirSync(drop).sort()).toEqual(before);
    const gone = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await gone;
    expect(readdirSync(drop).sort()).toEqual(before);
  });

  it('tightens an older 1733 maildrop at start: then a user can add nothing, and still submits through the helper', async () => {
    [sink, p] = await sinkAndInstance();
    const inst = p;
    chmodSync(inst.dir, 0o711);
    const drop = join(inst.dir, 'spool-maildrop');
    mkdirSync(drop);
    chmodSync(drop, 0o1733);
    const u = makeUser();
    // Left there under the old layout: a user's finished message is still taken as theirs.
    const left = await runAs(u, undefined, ['-e', `const fs = require('fs'); const f = ${JSON.stringify(join(drop, hex()))}; fs.writeFileSync(f, ${JSON.stringify(dropFile('Subject: old layout\n\nx\n'))}, { mode: 0o644 }); fs.chmodSync(f, 0o644);`]);
    expect(left.code).toBe(0);
    const group = makeGroup().gid;
    installHelper(inst, group);
    await inst.start();
    expect(statSync(drop).mode & 0o7777).toBe(0o1731);
    expect(statSync(drop).gid).toBe(group);
    await inst.waitForLog(new RegExp(`<= ${u.name}@example\\.org U=${u.name} P=local `));
    expect(await fsAs(u, 'writeFileSync', join(drop, hex()), 'x')).toBe('EACCES');
    expect((await runAs(u, 'sendmail', ['-C', inst.config, 'ops@example.org'], 'Subject: new layout\n\nx\n')).code).toBe(0);
    await sink.waitFor(2);
    await inst.waitForLog(new RegExp(`<= ${u.name}@example\\.org U=${u.name} P=local `), 2);
  });
});
