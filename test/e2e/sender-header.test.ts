// Exim's local_from_check end to end: the real `sendmail`, run as a throwaway user,
// to a real test hub. A From: that is not the user's own address arrives with
// `Sender: user@qualify_domain` (a Sender: of theirs replaced); their own From: arrives
// without one; root and the daemon's user are trusted and keep what they wrote.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeBoth, Instance } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { installHelper, makeGroup, removeUsersAndGroups } from '../helpers/postdrop.js';
import { isRoot, makeUser, removeUser, runAs, type TestUser } from '../helpers/users.js';

/** The Sender: lines of a message's header block, as the hub received it. */
const senders = (data: string) => data.slice(0, data.search(/\r?\n\r?\n/)).split(/\r?\n/).filter((l) => /^sender:/i.test(l));

describe.skipIf(!isRoot)('Sender: for a local user\'s From: (needs root: useradd)', () => {
  let a: TestUser;
  let d: TestUser;
  let p: Instance | undefined;
  let sink: Sink | undefined;
  beforeAll(() => {
    a = makeUser();
    d = makeUser();
  });
  afterAll(() => {
    removeUser(a);
    removeUser(d);
    removeUsersAndGroups();
  });
  afterEach(async () => {
    await closeBoth(sink, p);
    p = undefined;
    sink = undefined;
  });

  async function start(user?: TestUser): Promise<[Sink, Instance]> {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    chmodSync(p.dir, 0o711); // the throwaway users reach the config and the maildrop
    installHelper(p, makeGroup().gid); // and write into it through the setgid helper
    if (user) writeFileSync(p.config, `user = "${user.name}"\n${readFileSync(p.config, 'utf8')}`);
    await p.start();
    return [sink, p];
  }

  /** Sends `message` with sendmail as `who` (root when undefined) and returns it as the hub got it. */
  async function send(hub: Sink, inst: Instance, who: TestUser | undefined, message: string, args: string[] = []): Promise<string> {
    const before = hub.messages.length;
    const argv = ['-C', inst.config, ...args, 'ops@example.org'];
    const r = who ? await runAs(who, 'sendmail', argv, message) : await inst.run('sendmail', argv.slice(2), { input: message });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    await hub.waitFor(before + 1);
    return hub.messages[before]!.data;
  }

  it('an untrusted user gets Sender: when the From: is someone else\'s, not when it is their own; root is trusted', async () => {
    const [hub, inst] = await start();
    expect(senders(await send(hub, inst, a, 'From: root@example.org\nSubject: as root\n\nx\n'))).toEqual([`Sender: ${a.name}@example.org`]);
    expect(senders(await send(hub, inst, a, `From: Me <${a.name}@example.org>\nSubject: mine\n\nx\n`))).toEqual([]);
    expect(senders(await send(hub, inst, a, `From: ${a.name}\nSubject: mine, unqualified\n\nx\n`))).toEqual([]);
    // A Sender: of their own making does not survive.
    expect(senders(await send(hub, inst, a, 'From: boss@example.org\nSender: boss@example.org\nSubject: forged\n\nx\n')))
      .toEqual([`Sender: ${a.name}@example.org`]);
    // No From: of theirs and -f someone else's: the From: postern adds is not theirs either.
    expect(senders(await send(hub, inst, a, 'Subject: with -f\n\nx\n', ['-f', 'root@example.org']))).toEqual([`Sender: ${a.name}@example.org`]);
    // Root is trusted: what it wrote goes as it is.
    expect(senders(await send(hub, inst, undefined, 'From: boss@example.org\nSubject: root\n\nx\n'))).toEqual([]);
  });

  it('the daemon\'s user is trusted', async () => {
    const [hub, inst] = await start(d);
    expect(senders(await send(hub, inst, d, 'From: boss@example.org\nSubject: the daemon user\n\nx\n'))).toEqual([]);
    expect(senders(await send(hub, inst, a, 'From: boss@example.org\nSubject: another user\n\nx\n'))).toEqual([`Sender: ${a.name}@example.org`]);
  });
});
