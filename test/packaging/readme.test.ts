// test/packaging/readme.test.ts: what the README's "Run it on a real machine" and "Two
// commands" sections tell an administrator works as written: `npm start` names the
// development configuration whatever /etc/postern or $POSTERN_CONFIG hold, the package
// file name the README uses is the one build-deb.sh makes, and the `postern install`
// lines run (inside a throwaway --root, the only change to them).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/postern.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Run it on a real machine'), readme.indexOf('## Security and reliability'));
const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n'))
  .map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
const tmp = mkdtempSync(join(tmpdir(), 'postern-readme-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('README: Run it on a real machine', () => {
  it('npm start uses config/postern.toml whatever $POSTERN_CONFIG or /etc/postern say', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    const start = /node (bin\/postern .*)$/.exec(pkg.scripts.start)![1]!.split(' ');
    expect(start).toEqual(['bin/postern', '-C', 'config/postern.toml', '-bd', '-q1m']);
    // The same command line, asked for its configuration file instead of running.
    const r = spawnSync(process.execPath, [join(ROOT, start[0]!), ...start.slice(1, 3), '-bV'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, POSTERN_CONFIG: '/etc/postern/postern.toml' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Configuration file is ${join(ROOT, 'config/postern.toml')}`);
  });

  it('names the package build-deb.sh makes, and the commands it shows exist', () => {
    const script = readFileSync(join(ROOT, 'packaging/build-deb.sh'), 'utf8');
    expect(script).toContain('deb=$out/postern_${version}_$arch.deb');
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(section).toContain(`packaging/out/postern_${version}-1_amd64.deb`);
    expect(commands).toContain('packaging/build-deb.sh');
    expect(existsSync(join(ROOT, 'packaging/build-deb.sh'))).toBe(true);
  });

  it('its postern install lines run as written (inside a --root)', () => {
    const lines = commands.filter((c) => c.startsWith('sudo bin/postern install'));
    expect(lines).toEqual(['sudo bin/postern install --dry-run', 'sudo bin/postern install']);
    for (const line of lines) {
      const args = line.split(' ').slice(2);
      const r = spawnSync(process.execPath, [join(ROOT, 'bin/postern'), ...args, '--root', tmp], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    expect(readFileSync(join(tmp, 'etc/postern/postern.toml'), 'utf8')).toContain('user = "postern"');
    const u = spawnSync(process.execPath, [join(ROOT, 'bin/postern'), 'uninstall', '--root', tmp], { encoding: 'utf8' });
    expect(u.status, u.stderr).toBe(0);
  });
});
