// A flood of junk in the maildrop stops no mail (issue 18, item 6), as root with
// throwaway users: thousands of empty unfinished (0600) files of one user, half with an
// mtime a year ahead, and finished junk of another, in the maildrop at the daemon's start:
// an SMTP session and a sendmail still complete and are delivered, the finished junk
// goes at once and the unfinished junk a minute later, with one log line per user.
// (Times are measured by bench/maildrop-flood.ts, not asserted here.)
import { chownSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeBoth, sinkAndInstance, waitUntil, type Instance } from '../helpers/postern.js';
import { makeUser, removeUsersAndGroups } from '../helpers/postdrop.js';
import type { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('a maildrop flooded with junk (needs root)', () => {
  let p: Instance | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    p = sink = undefined;
  });
  afterAll(() => removeUsersAndGroups());

  it('SMTP and sendmail still go through; the junk is removed (finished at once, unfinished after a minute), one line per user', async () => {
    [sink, p] = await sinkAndInstance();
    const inst = p;
    await inst.start();
    await inst.stop(); // the junk waits for the daemon's start: all of it is seen in one pass
    const drop = join(inst.dir, 'spool-maildrop');
    const [flooder, other] = [makeUser(), makeUser()];
    const future = new Date(Date.now() + 365 * 86_400_000);
    // Made by root and given to the users: they could make such files only through the
    // helper (in the named-file fallback, killed midway) or by being the daemon's user.
    for (let i = 0; i < 3000; i++) {
      const f = join(drop, `u${String(i).padStart(31, '0')}`);
      writeFileSync(f, '', { mode: 0o600 });
      chownSync(f, flooder.uid, flooder.gid);
      if (i % 2) utimesSync(f, future, future);
    }
    for (let i = 0; i < 300; i++) {
      const f = join(drop, `f${String(i).padStart(31, '0')}`);
      writeFileSync(f, 'not a drop file\n', { mode: 0o644 });
      chownSync(f, other.uid, other.gid);
    }
    await inst.start();
    expect(await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: by smtp\n\nx\n')).toMatch(/^250 /);
    const sm = await inst.run('sendmail', ['ops@example.org'], { input: 'Subject: by sendmail\n\nx\n' });
    expect(sm).toEqual({ code: 0, stdout: '', stderr: '' });
    await sink.waitFor(2);

    const left = (prefix: string) => readdirSync(drop).filter((n) => n.startsWith(prefix)).length;
    await waitUntil('the finished junk removed', () => left('f') === 0, 30_000);
    await inst.waitForLog(new RegExp(`maildrop: removed 300 files from ${other.name} \\(uid ${other.uid}\\): 300 the envelope line is not JSON`));
    await waitUntil('the unfinished junk removed', () => left('u') === 0, 120_000);
    await inst.waitForLog(new RegExp(`maildrop: removed 3000 files from ${flooder.name} \\(uid ${flooder.uid}\\): 3000 left empty and unfinished`));
    expect(inst.log().match(new RegExp(`from ${flooder.name} `, 'g'))).toHaveLength(1);
    expect(inst.log().match(new RegExp(`from ${other.name} `, 'g'))).toHaveLength(1);
    // And mail still flows.
    expect(await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: after\n\nx\n')).toMatch(/^250 /);
    await sink.waitFor(3);
  }, 180_000);
});
