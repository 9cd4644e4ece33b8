// The queue's listings from their own bundle (bin/ -> dist/cli/list.cjs, src/cli/list.ts):
// mailq, -bp and its letters, sendmail -bp and postern-qgrep's displays print, exit and
// complain exactly as main.js does the same command; what the bundle must leave to
// main.js (mail waiting in the maildrop, a bulk action, no fresh cache) goes there.
// The real bin/ as child processes on a real spool, no daemon.
import { chmodSync, chownSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Instance, ROOT, runProgram, bundleFresh, ranFromBundle, type RunResult } from '../helpers/postern.js';
import { isRoot, makeUser, removeUser, type TestUser } from '../helpers/users.js';

const DEBUG = { NODE_DEBUG: 'esm,module' };
const fromBundle = (stderr: string) => ranFromBundle('cli/list.cjs', stderr);
const fromMain = (stderr: string) => /cli\/main\.js/.test(stderr);
/** What the module loader printed, taken out: the command's own stderr. */
const own = (stderr: string) => stderr.split('\n').filter((l) => !/^(MODULE|ESM)_?\w* \d+: /.test(l) && !/^(Module|ESM)\b/.test(l)).join('\n');
/** Ages (`0m`, `3h`, with their padding) change with the clock between two runs: the rest must not. */
const ageless = (s: string) => s.replace(/ *\b\d+[smhdw]\b/g, 'AGE');

/** The same command line through main.js alone, as bin/ runs it when there is no bundle. */
function viaMain(name: string, args: string[]): Promise<RunResult> {
  const script = 'const [m, n, ...a] = process.argv.slice(1); import(m).then(({ main }) => main(n, a));';
  return runProgram(process.execPath, ['-e', script, join(ROOT, 'dist/cli/main.js'), name, ...args]);
}

describe('the queue listings\' bundle', () => {
  let p: Instance;
  let ids: string[] = [];
  beforeAll(async () => {
    p = new Instance([2599]); // no daemon, a hub nobody answers on
    for (const to of ['ops@example.org', 'dev@example.com', 'ops@example.org']) {
      expect((await p.run('sendmail', ['-f', 'cron@example.org', to], { input: `Subject: to ${to}\n\nx\n` })).code).toBe(0);
    }
  }, 60_000);
  afterAll(() => p.cleanup());

  it('leaves mail waiting in the maildrop to main.js, which picks it up first', async () => {
    const r = await p.run('postern', ['-bp'], { env: DEBUG });
    expect(r.code).toBe(0);
    expect(fromMain(r.stderr)).toBe(true);
    ids = [...r.stdout.matchAll(/ (\w{6}-\w{6}-\w{2}) </g)].map((m) => m[1] as string);
    expect(ids).toHaveLength(3);
    expect(readdirSync(join(p.dir, 'spool-maildrop')).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect((await p.run('postern', ['-Mf', ids[1] as string])).code).toBe(0);
  }, 60_000);

  const lines: [string, string[]][] = [
    ['postern', ['-bp']], ['postern', ['-bpc']], ['postern', ['-bpu']], ['postern', ['-bpr']], ['postern', ['-bp', '--json']],
    ['mailq', []], ['mailq', ['-bpc']], ['sendmail', ['-bp']],
    ['postern-qgrep', []], ['postern-qgrep', ['-i']], ['postern-qgrep', ['-c']], ['postern-qgrep', ['-r', 'ops@', '-i']], ['postern-qgrep', ['-z']],
    ['postern-qgrep', ['-x', '-b']], ['postern-qgrep', ['--summary']], ['postern-qgrep', ['--shape', '--json']], ['postern-qgrep', ['-R', '-i']],
    // what the user typed wrong: the same sentence and status
    ['postern', ['-bpx']], ['postern', ['-bp', '-q']], ['postern-qgrep', ['-y', 'soon']], ['postern-qgrep', ['-f', '(']], ['postern-qgrep', ['--bogus']],
  ];
  it.each(lines)('%s %j prints, ends and complains as main.js does', async (name, args) => {
    const fresh = bundleFresh('cli/list.cjs');
    const fast = await p.run(name, args, { env: DEBUG });
    if (fresh && bundleFresh('cli/list.cjs')) expect(fromBundle(fast.stderr)).toBe(true);
    const slow = await viaMain(name, ['-C', p.config, ...args]);
    expect(ageless(fast.stdout)).toBe(ageless(slow.stdout));
    expect(own(fast.stderr)).toBe(slow.stderr);
    expect(fast.code).toBe(slow.code);
    if (args.length === 1 && args[0] === '-bpc') expect(fast.stdout).toBe('3\n');
  }, 60_000);

  it('lists with -bp ID (one queued, one not) as main.js does', async () => {
    const fresh = bundleFresh('cli/list.cjs');
    const fast = await p.run('postern', ['-bp', ids[0] as string, '1xZrLV-00016Q-Oa'], { env: DEBUG });
    if (fresh && bundleFresh('cli/list.cjs')) expect(fromBundle(fast.stderr)).toBe(true);
    const slow = await viaMain('postern', ['-C', p.config, '-bp', ids[0] as string, '1xZrLV-00016Q-Oa']);
    expect(ageless(fast.stdout)).toBe(ageless(slow.stdout));
    expect(own(fast.stderr)).toBe(slow.stderr);
    expect(fast.code).toBe(slow.code);
    expect(fast.stdout).toContain(ids[0]);
    expect(fast.stdout).toContain('*** spool read error');
  }, 60_000);

  it('leaves install and Exim\'s queue import to main.js, whatever else the line holds', async () => {
    for (const args of [['install', '-bpc'], ['-bpc', 'install', '--import-queue']]) {
      expect(fromBundle((await p.run('postern', args, { env: DEBUG })).stderr)).toBe(false);
      const r = await p.run('postern', args);
      const slow = await viaMain('postern', ['-C', p.config, ...args]);
      expect([r.code, r.stdout, r.stderr]).toEqual([slow.code, slow.stdout, slow.stderr]);
    }
  }, 60_000);

  it('leaves the bulk actions to main.js', async () => {
    const r = await p.run('postern-qgrep', ['-r', 'dev@', '--remove', '--dry-run'], { env: DEBUG });
    expect(r.code).toBe(0);
    expect(fromMain(r.stderr)).toBe(true);
    expect(r.stdout).toMatch(/dry-run|would/i);
  }, 60_000);
});

// Root with `user` set: the daemon (as that user) keeps a copy of the configuration in the
// maildrop; root's listing must not take it for mail (and so leave every listing to main.js).
describe.skipIf(!isRoot)('the listings\' bundle for root with user set', () => {
  let inst: Instance | undefined;
  let user: TestUser | undefined;
  beforeAll(() => {
    user = makeUser();
    inst = new Instance([2599]);
    chmodSync(inst.dir, 0o711);
    writeFileSync(inst.config, `user = "${user.name}"\n${readFileSync(inst.config, 'utf8')}`);
  });
  afterAll(async () => {
    removeUser(user);
    await inst?.cleanup();
  });

  it('lists from the bundle when the maildrop holds only the daemon user\'s configuration copy', async () => {
    const p = inst!;
    expect((await p.run('sendmail', ['ops@example.org'], { input: 'Subject: x\n\nx\n' })).code).toBe(0);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('1\n'); // main.js: picked up
    const copies = readdirSync(join(p.dir, 'spool-maildrop')).filter((n) => n.startsWith('.config.cache.json'));
    expect(copies.length).toBeGreaterThan(0);
    for (const f of copies) chownSync(join(p.dir, 'spool-maildrop', f), user!.uid, user!.gid); // as the daemon writes it
    const fresh = bundleFresh('cli/list.cjs');
    const r = await p.run('postern', ['-bpc'], { env: DEBUG });
    expect(r.stdout).toBe('1\n');
    expect(r.code).toBe(0);
    if (fresh && bundleFresh('cli/list.cjs')) expect(fromBundle(r.stderr)).toBe(true);
  }, 60_000);
});
