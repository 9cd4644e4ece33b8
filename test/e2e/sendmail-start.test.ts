// sendmail's fast start (bin/ -> dist/cli/submit.cjs): with a fresh configuration
// cache the submission runs from the bundle alone; a changed or bad file, or a cache
// others could write, is never believed, and goes through main.js, which validates
// and says what is wrong. The real bin/sendmail, no daemon (the maildrop keeps the files).
// node's alone: the C front end before it has its own settings (sendmail-front.test.ts).
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Instance, ROOT, bundleFresh, ranFromBundle } from '../helpers/postern.js';

describe('sendmail: the fast start', () => {
  let p: Instance;
  beforeAll(() => { process.env.POSTERN_TEST_SENDMAIL = 'node'; });
  afterAll(() => { delete process.env.POSTERN_TEST_SENDMAIL; });
  beforeEach(() => {
    p = new Instance([2599]);
  });
  afterEach(() => p.cleanup());

  // After `npx tsc` alone (here: anyone's, meanwhile) bin/ leaves a bundle older than the
  // build alone and main.js does all: the submissions below still hold; whether they ran
  // from the bundle is asserted only while it is fresh.
  // npm test also type-checks the tests (tsc -p test) and the bench (tsc -p bench) between.
  it('npm test, build and prepare make the bundle after tsc', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const s of ['test', 'build', 'prepare']) expect(scripts[s]).toMatch(/^tsc -p tsconfig\.json && (tsc -p test && )?(tsc -p bench && )?npm run -s bundle\b/);
    expect(scripts.test).toMatch(/^tsc -p tsconfig\.json && tsc -p test && /);
    expect(scripts.bundle).toMatch(/^esbuild src\/cli\/submit\.ts src\/cli\/list\.ts .*--outdir=\$\{BUNDLE_DIR:-dist\/cli\} --out-extension:\.js=\.cjs/);
  });
  const DEBUG = { NODE_DEBUG: 'esm,module' };
  const bundled = (stderr: string) => ranFromBundle('cli/submit.cjs', stderr);
  const message = `Subject: big\n\n${'x'.repeat(2000)}\n`;
  const drops = () => readdirSync(join(p.dir, 'spool-maildrop')).filter((n) => !n.startsWith('.')).length;
  const edit = (from: string, to: string) => writeFileSync(p.config, readFileSync(p.config, 'utf8').replace(from, to));

  it('runs from the bundle once the cache is fresh; a changed file is seen at once; a bad one is reported', async () => {
    const first = await p.run('sendmail', ['ops@example.org'], { input: message, env: DEBUG });
    expect(first.code).toBe(0);
    expect(bundled(first.stderr)).toBe(false); // no cache yet: main.js validated and wrote it
    const freshBefore = bundleFresh();
    const second = await p.run('sendmail', ['ops@example.org'], { input: message, env: DEBUG });
    expect(second.code).toBe(0);
    if (freshBefore && bundleFresh()) expect(bundled(second.stderr)).toBe(true);
    expect(drops()).toBe(2);

    edit('max_message_size = "1M"', 'max_message_size = "1K"');
    for (let i = 0; i < 2; i++) { // validated, then from the new cache: the same answer
      const r = await p.run('sendmail', ['ops@example.org'], { input: message });
      expect(r.code).toBe(65);
      expect(r.stderr).toBe('sendmail: message is larger than max_message_size (1024 bytes)\n');
    }

    edit('max_message_size = "1K"', 'max_message_size = "lots"');
    const bad = await p.run('sendmail', ['ops@example.org'], { input: message, env: DEBUG });
    expect(bad.code).toBe(1);
    expect(bad.stderr.split('\n').filter((l) => l.startsWith('sendmail:'))).toEqual([
      `sendmail: configuration error in ${p.config} line 6: listen.max_message_size: ${/max_message_size: (.*)$/m.exec(bad.stderr)?.[1]}`,
    ]);
    expect(bundled(bad.stderr)).toBe(false);
    expect(drops()).toBe(2);
  });

  it('believes a cache of root\'s, never one that others may write', async () => {
    expect((await p.run('sendmail', ['ops@example.org'], { input: message })).code).toBe(0);
    const cache = join(p.dir, 'spool/config.cache.json');
    const stored = JSON.parse(readFileSync(cache, 'utf8')) as { key: string; config: { listen: { max_message_size: number } } };
    stored.config.listen.max_message_size = 100;
    // The same key, a different configuration: never believed when anyone could have
    // written it (the maildrop's copy or the file decides, and the copy is made again)...
    writeFileSync(cache, JSON.stringify(stored));
    chmodSync(cache, 0o666);
    const r = await p.run('sendmail', ['ops@example.org'], { input: message });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(cache, 'utf8')).config.listen.max_message_size).toBe(1024 * 1024);
    // ...but from whoever may write the spool folder (so the forged key was the right one).
    writeFileSync(cache, JSON.stringify(stored), { mode: 0o644 });
    const trusted = await p.run('sendmail', ['ops@example.org'], { input: message });
    expect(trusted.stderr).toBe('sendmail: message is larger than max_message_size (100 bytes)\n');
  });
});
