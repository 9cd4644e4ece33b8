// Exim's remaining queue flags (-bpa, -Mvc, -Mar, -Mes, -Mmd, -Mmad, -R/-S), the sendmail
// options that must not lose mail (-N, -R, -V, -oM*, -f 'Name <addr>'), -bP in the
// configuration's units, a malformed ID among good ones, and --json on the -M actions:
// the real commands on a real spool.
import { afterEach, describe, expect, it } from 'vitest';
import { closeBoth, Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

describe('Exim\'s remaining flags', () => {
  let p: Instance;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    sink = undefined;
  });

  const submit = async (args: string[], input = 'Subject: t\n\nbody text\n') => {
    const r = await p.run('sendmail', ['-odq', ...args], { input });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ids = (await p.run('postern-qgrep', ['-i'])).stdout.trim().split('\n');
    return ids[ids.length - 1] as string;
  };

  it('sendmail takes -N, -R, -V and -oM* with their arguments, and the address of -f \'Name <addr>\'', async () => {
    p = new Instance([2599]);
    const id = await submit(['-N', 'never', '-R', 'hdrs', '-V', 'env-1', '-oMr', 'x', '-oMas', 'y@example.org', '-f', 'Web Server <www-data@web1.example.org>', 'ops@example.org']);
    expect((await p.run('postern-qgrep', ['-b'])).stdout).toBe(`${id} From: <www-data@web1.example.org> To: ops@example.org\n`);
    const attached = await submit(['-Nsuccess,failure', '-Rfull', '-Venv-2', 'dev@example.org']);
    expect((await p.run('postern-qgrep', ['-b', '-r', '^dev@'])).stdout).toMatch(new RegExp(`^${attached} From: <\\S+> To: dev@example\\.org\\n$`));
    expect((await p.run('newaliases', [])).code).toBe(0);
    expect((await p.run('sendmail', ['-bi'])).code).toBe(0);
  });

  it('-Mar, -Mes, -Mmd, -Mmad edit the envelope with Exim\'s lines and log lines; -Mvc shows the whole message; -bpa lists', async () => {
    p = new Instance([2599]);
    const id = await submit(['-f', 'a@example.org', 'x@example.org', 'y@example.org']);
    expect((await p.run('postern', ['-Mar', id, 'z@example.org', 'w'])).stdout).toBe(`Message ${id} has been modified\n`);
    expect((await p.run('postern', ['-Mes', id, 'b@example.org'])).stdout).toBe(`Message ${id} has been modified\n`);
    expect((await p.run('postern', ['-Mmd', id, 'x@example.org'])).stdout).toBe(`Message ${id} has been modified\n`);
    const notThere = await p.run('postern', ['-Mmd', id, 'nobody@example.org']);
    expect(notThere.stdout).toBe(`Message ${id} - error while marking as delivered:\n  nobody@example.org is not a recipient: message not updated\n`);
    expect(notThere.code).toBe(1);
    const bp = (await p.run('postern', ['-bp'])).stdout;
    expect(bp).toMatch(new RegExp(`${id} <b@example\\.org>\\n {8}D x@example\\.org\\n {10}y@example\\.org\\n {10}z@example\\.org\\n {10}w@example\\.org\\n\\n$`));
    expect((await p.run('postern', ['-bpa'])).stdout).toBe(bp);
    const vc = await p.run('postern', ['-Mvc', id]);
    expect(vc.stdout).toMatch(/^Received: /);
    expect(vc.stdout).toMatch(/\nSubject: t\n(?:[^\n]+\n)*\nbody text\n$/);
    expect((await p.run('postern', ['-Mmad', id])).stdout).toBe(`Message ${id} has been modified\n\n`);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
    const log = p.log();
    expect(log).toMatch(new RegExp(`${id} recipient <z@example\\.org> added by \\S+`));
    expect(log).toMatch(new RegExp(`${id} recipient <w@example\\.org> added by \\S+`));
    expect(log).toMatch(new RegExp(`${id} sender address changed to <b@example\\.org> by \\S+`));
    expect(log).toMatch(new RegExp(`${id} address <x@example\\.org> marked delivered by \\S+`));
    expect(log).toMatch(new RegExp(`${id} address <y@example\\.org> marked delivered by \\S+`));
    expect(log).toMatch(new RegExp(`${id} Completed`));
  });

  it('a malformed ID among good ones in -Mrm is reported and the others removed; -M actions with --json', async () => {
    p = new Instance([2599]);
    const a = await submit(['a@example.org']);
    const b = await submit(['b@example.org']);
    const c = await submit(['c@example.org']);
    const rm = await p.run('postern', ['-Mrm', a, 'bogus', b]);
    expect(rm.stdout).toBe(`Message ${a} has been removed\nMessage ${b} has been removed\n`);
    expect(rm.stderr).toBe('postern: malformed message id bogus after -Mrm option\n');
    expect(rm.code).toBe(1);
    const f = await p.run('postern', ['-Mf', '--json', c, '1xVaAA-000001-00']);
    expect(f.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { id: c, result: 'is now frozen' }, { id: '1xVaAA-000001-00', result: 'does not exist' }]);
  });

  it('-R and -S run the queue for the messages whose recipient or sender contains the string', async () => {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    await submit(['-f', 'a@example.org', 'one@Other.example']);
    await submit(['-f', 'news@lists.example', 'two@example.org']);
    await submit(['-f', 'a@example.org', 'three@example.org']);
    expect((await p.run('postern', ['-R', 'other.EXAMPLE'])).code).toBe(0);
    await waitUntil('one delivered', () => sink!.messages.length >= 1 || undefined);
    expect(sink.messages.map((m) => m.to[0])).toEqual(['one@Other.example']);
    expect((await p.run('postern', ['-S', 'news@'])).code).toBe(0);
    await waitUntil('two delivered', () => sink!.messages.length >= 2 || undefined);
    expect(sink.messages.map((m) => m.to[0])).toEqual(['one@Other.example', 'two@example.org']);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('1\n');
  });

  it('-bP prints values in the configuration\'s units and takes a table name', async () => {
    p = new Instance([2599]);
    const one = await p.run('postern', ['-bP', 'smarthost.timeout', 'max_message_size', 'timeout_frozen_after']);
    expect(one.stdout).toBe('smarthost.timeout = 10s\nlisten.max_message_size = 1M\nretry.timeout_frozen_after = 7d\n');
    const table = await p.run('postern', ['-bP', 'smarthost']);
    expect(table.stdout).toMatch(/^smarthost\.hosts = 127\.0\.0\.1:2599\n/);
    expect(table.stdout.split('\n').filter(Boolean).every((l) => l.startsWith('smarthost.'))).toBe(true);
    expect(table.code).toBe(0);
  });
});
