// The --json field names of every queue command, as the README's "JSON output" table
// lists them: pinned here so that a rename is a deliberate change of both.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, ROOT } from '../helpers/postern.js';

const objects = (s: string) => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const keys = (o: Record<string, unknown> | undefined) => Object.keys(o ?? {});

describe('--json field names', () => {
  let p: Instance;
  let id = '';
  beforeAll(async () => {
    p = new Instance([2599]);
    const r = await p.run('sendmail', ['-odq', '-f', 'a@example.org', 'x@example.org'], { input: 'Subject: j\n\nbody\n' });
    expect(r.code).toBe(0);
    id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
  }, 30_000);
  afterAll(() => p.cleanup());
  const json = async (cmd: string, args: string[]) => objects((await p.run(cmd, [...args, '--json'])).stdout);

  it('listings, counts and summaries', async () => {
    const entry = ['id', 'arrival', 'size', 'sender', 'recipients', 'frozen', 'attempts', 'last_error', 'next_attempt'];
    expect(keys((await json('postern', ['-bp']))[0])).toEqual([...entry, 'history']);
    const q = (await json('postern-qgrep', []))[0];
    expect(keys(q)).toEqual(entry);
    expect(keys((q?.recipients as Record<string, unknown>[])[0])).toEqual(['address', 'state']);
    expect(await json('postern', ['-bpc'])).toEqual([{ count: 1 }]);
    expect(await json('postern-qgrep', ['-c'])).toEqual([{ matches: 1, messages: 1 }]);
    expect(await json('postern-qgrep', ['-i'])).toEqual([{ id }]);
    const sum = await json('postern-qgrep', ['--summary']);
    expect(keys(sum[0])).toEqual(['domain', 'count', 'volume', 'oldest', 'newest']);
    expect(keys(sum[1])).toEqual(['domain', 'total', 'count', 'volume', 'oldest', 'newest']);
    const shape = await json('postern-qgrep', ['--shape']);
    expect(keys(shape[0])).toEqual(['domain', 'total', 'buckets']);
    expect(keys(shape[0]?.buckets as Record<string, unknown>)).toEqual(['5', '10', '20', '40', '80', '160', '320', '640', '1280', '1280+']);
  });

  it('actions, views, -bt and -bP', async () => {
    expect(await json('postern-qgrep', ['--freeze', '--dry-run'])).toEqual([{ id, action: 'freeze', result: 'dry-run' }]);
    expect(await json('postern', ['-Mf', id])).toEqual([{ id, result: 'is now frozen' }]);
    expect(await json('postern', ['-Mar', id, 'y@example.org'])).toEqual([{ id, result: 'has been modified' }]);
    expect(keys((await json('postern', ['-Mvh', id]))[0])).toEqual(['id', 'headers']);
    expect(keys((await json('postern', ['-Mvb', id]))[0])).toEqual(['id', 'body']);
    expect(keys((await json('postern', ['-Mvc', id]))[0])).toEqual(['id', 'message']);
    expect(keys((await json('postern', ['-Mvl', id]))[0])).toEqual(['id', 'history']);
    const bt = await json('postern', ['-bt', 'ops@example.org']);
    expect(keys(bt[0])).toEqual(['address', 'routable', 'router', 'transport', 'hosts']);
    expect(keys((bt[0]?.hosts as Record<string, unknown>[])[0])).toEqual(['name', 'ip', 'port']);
    expect(await json('postern', ['-bP', 'smarthost.timeout'])).toEqual([{ name: 'smarthost.timeout', value: '10s' }]);
    expect(await json('postern-qgrep', ['--remove'])).toEqual([{ id, action: 'remove', result: 'done' }]);
  });

  it('the README names every one of these fields', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('**JSON output**'), readme.indexOf('### `sendmail`'));
    for (const f of ['id', 'arrival', 'size', 'sender', 'recipients', 'address', 'state', 'last_error', 'frozen', 'attempts', 'next_attempt',
      'history', 'count', 'matches', 'messages', 'domain', 'volume', 'oldest', 'newest', 'total', 'buckets', 'action', 'result',
      'headers', 'body', 'message', 'routable', 'router', 'transport', 'hosts', 'ip', 'port', 'reason', 'name', 'value']) {
      expect(table, f).toContain(`\`${f}\``);
    }
  });
});
