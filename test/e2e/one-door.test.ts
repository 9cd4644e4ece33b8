// One meaning per operator action (issue 20): every -M action and postern-qgrep's
// actions go to the process that delivers, the daemon through its control socket or,
// with none, the command under the delivery lock; so each says what Exim says, with the
// same exit code, whichever command asks: with no daemon, with one, and for a message
// being delivered ("is locked"). Every change is journaled: -Mvl, -Mwhy and -bp --json
// show the envelope edits as they show freezes. The real commands on a real spool.
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { closeBoth, closedPort, Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

describe('one meaning per operator action', () => {
  let p: Instance;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    sink = undefined;
  });

  const submit = async (args: string[]) => {
    const r = await p.run('sendmail', args, { input: 'Subject: t\n\nbody text\n' });
    expect(r.code).toBe(0);
    const ids = (await p.run('postern-qgrep', ['-i'])).stdout.trim().split('\n');
    return ids[ids.length - 1] as string;
  };

  /** Each action on one message with Exim's line and exit code; then the journal as -Mvl, -Mwhy and -bp --json show it. */
  async function everyAction(afterThaw: (id: string) => Promise<unknown> = async () => {}): Promise<void> {
    const id = await submit(['-odq', '-f', 'a@example.org', 'x@example.org', 'y@example.org']);
    const other = await submit(['-odq', '-f', 'a@example.org', 'q@example.org']);
    const expectRun = async (cmd: string, args: string[], stdout: string, code: number) => {
      const r = await p.run(cmd, args);
      expect({ args, stdout: r.stdout, code: r.code }).toEqual({ args, stdout, code });
    };
    await expectRun('postern', ['-Mf', id], `Message ${id} is now frozen\n`, 0);
    await expectRun('postern', ['-Mf', id], `Message ${id} is already frozen\n`, 1);
    await expectRun('postern-qgrep', ['--freeze', '-r', '^x@'], `Message ${id} is already frozen\n`, 1);
    await expectRun('postern', ['-Mar', id, 'z@example.org'], `Message ${id} has been modified\n`, 0);
    await expectRun('postern', ['-Mes', id, 'b@example.org'], `Message ${id} has been modified\n`, 0);
    await expectRun('postern', ['-Mmd', id, 'x@example.org'], `Message ${id} has been modified\n`, 0);
    await expectRun('postern', ['-Mmd', id, 'nobody@example.org'],
      `Message ${id} - error while marking as delivered:\n  nobody@example.org is not a recipient: message not updated\n`, 1);
    // Every change is in the journal, so -Mvl, -Mwhy and --json show it.
    const vl = (await p.run('postern', ['-Mvl', id])).stdout;
    for (const line of ['frozen by \\S+', 'recipient <z@example\\.org> added by \\S+', 'sender address changed to <b@example\\.org> by \\S+',
      'address <x@example\\.org> marked delivered by \\S+']) expect(vl).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d ${line}$`, 'm'));
    const why = (await p.run('postern', ['-Mwhy', id])).stdout;
    expect(why).toMatch(/^ {2}\S+ \S+ recipient <z@example\.org> added by \S+$/m);
    expect(why).toMatch(/^ {2}\S+ \S+ address <x@example\.org> marked delivered by \S+$/m);
    const whyJson = JSON.parse((await p.run('postern', ['-Mwhy', id, '--json'])).stdout) as { changes: { type: string; edit?: string; address?: string }[] };
    expect(whyJson.changes.map((c) => c.edit ?? c.type)).toEqual(['admin', 'recipient-added', 'sender-changed', 'marked-delivered']);
    const listed = JSON.parse((await p.run('postern', ['-bp', '--json'])).stdout.split('\n')[0] as string) as { history: { type: string; edit?: string; address?: string }[] };
    expect(listed.history.filter((h) => h.type === 'edit').map((h) => `${h.edit} ${h.address}`))
      .toEqual(['recipient-added z@example.org', 'sender-changed b@example.org', 'marked-delivered x@example.org']);
    const vlJson = JSON.parse((await p.run('postern', ['-Mvl', id, '--json'])).stdout) as { history: { type: string }[] };
    expect(vlJson.history.map((h) => h.type)).toEqual(['admin', 'edit', 'edit', 'edit']);
    await expectRun('postern', ['-Mt', id], `Message ${id} is no longer frozen\n`, 0);
    await afterThaw(id);
    await expectRun('postern-qgrep', ['--thaw', '-r', '^y@'], `Message ${id} is not frozen\n`, 1);
    await expectRun('postern', ['-Mf', id], `Message ${id} is now frozen\n`, 0);
    await expectRun('postern', ['-Mmad', id], `Message ${id} has been modified\n\n`, 0);
    await expectRun('postern', ['-Mrm', id], `Spool data file for ${id} does not exist\n`, 1);
    await expectRun('postern', ['-Mf', other], `Message ${other} is now frozen\n`, 0);
    await expectRun('postern', ['-Mrm', other], `Message ${other} has been removed\n`, 0);
    await expectRun('postern-qgrep', ['--remove', '-r', 'q@'], '', 0);
    await expectRun('postern', ['-Mg', other], `Spool data file for ${other} does not exist\n`, 1);
    await waitUntil('logged', () => / Completed/.test(p.log()) || undefined);
    const log = p.log();
    expect(log).toMatch(new RegExp(`${id} address <y@example\\.org> marked delivered by \\S+`));
    expect(log).toMatch(new RegExp(`${id} address <z@example\\.org> marked delivered by \\S+`));
    expect(log).toMatch(new RegExp(`${id} Completed`));
    expect(log).toMatch(new RegExp(`${other} removed by \\S+`));
  }

  it('with no daemon: each action is applied by the command under the delivery lock', async () => {
    p = new Instance([await closedPort()]);
    await everyAction();
  });

  it('with a daemon: each action goes through it, with the same lines and exit codes', async () => {
    p = new Instance([await closedPort()]);
    await p.start(['-q1h']);
    // A thawed message is tried at once (and deferred: no hub listens): wait for it, or the next action would find it locked.
    await everyAction((id) => p.waitForLog(new RegExp(`${id} == `)));
    // The daemon holds the delivery lock: had the commands not asked it, they would have failed.
    expect(p.daemon?.exitCode).toBe(null);
  });

  it('a message being delivered: every action by any command says it is locked, exit 1; it is delivered once', async () => {
    sink = new Sink();
    await sink.listen();
    sink.behaviour.delayMs = 8000;
    p = new Instance([sink.port]);
    await p.start(['-q1h']);
    const id = await submit(['-f', 'a@example.org', 'slow@example.org']);
    await waitUntil('the delivery has started', () => sink!.connections > 0 || undefined, 20_000);
    const locked = `Message ${id} is locked\n`;
    for (const args of [['-Mrm', id], ['-Mf', id], ['-Mt', id], ['-Mg', id], ['-Mmad', id], ['-Mar', id, 'z@example.org'],
      ['-Mes', id, 'b@example.org'], ['-Mmd', id, 'slow@example.org']]) {
      const r = await p.run('postern', args);
      expect({ args, stdout: r.stdout, code: r.code }).toEqual({ args, stdout: locked, code: 1 });
    }
    const json = await p.run('postern', ['-Mrm', '--json', id]);
    expect(JSON.parse(json.stdout)).toEqual({ id, result: 'is locked' });
    await waitUntil('delivered', () => sink!.messages.length === 1 || undefined, 30_000);
    await p.waitForLog(new RegExp(`${id} Completed`));
    expect(sink.messages[0]!.to).toEqual(['slow@example.org']);
    expect(sink.messages[0]!.from).toBe('a@example.org');
    expect(p.log()).not.toMatch(/removed by|frozen by|added by|changed to|marked delivered|cancelled by/);
  });

  it('a record of a newer version: the listing and every action refuse it by its version (exit 65), and leave it', async () => {
    p = new Instance([await closedPort()]);
    const id = await submit(['-odq', '-f', 'a@example.org', 'x@example.org']);
    const env = open({ path: join(p.dir, 'spool', 'spool.mdb'), maxDbs: 12, compression: false });
    const meta = env.openDB<Record<string, unknown>, string>({ name: 'meta', encoding: 'msgpack' });
    const listing = env.openDB<string, string>({ name: 'listing', encoding: 'string' });
    // As a newer postern writes it: with a listing entry of its own version (spool/listing.ts).
    await env.transaction(() => {
      meta.put(id, { ...(meta.get(id) as Record<string, unknown>), v: 2 });
      listing.put(id, '[2]');
    });
    const message = `message ${id} has record version 2, which this postern cannot read`;
    for (const args of [['-bp'], ['-Mf', id], ['-Mrm', id], ['-Mar', id, 'z@example.org'], ['-Mmad', id]]) {
      const r = await p.run('postern', args);
      expect({ args, stderr: r.stderr, code: r.code }).toEqual({ args, stderr: `postern: ${message}\n`, code: 65 });
    }
    expect(meta.get(id)).toMatchObject({ v: 2, frozen: false, recipients: [{ address: 'x@example.org', state: 'pending' }] });
    await env.close();
  });
});
