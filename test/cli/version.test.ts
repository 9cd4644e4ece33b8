// test/cli/version.test.ts: one version, package.json's: a copy of the built package
// whose package.json says another version says that version in -bV, --version and the
// man pages made from it; no source file writes a version of its own. Also --version, -h and install's own --help on the command line.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runCommand } from '../helpers/postern.js';

const tmp = mkdtempSync(join(tmpdir(), 'postern-version-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every .ts file under a folder. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

describe('one version, in package.json only', () => {
  it('a package built with another version says it everywhere', () => {
    const pkg = join(tmp, 'pkg');
    for (const d of ['bin', 'dist', 'config', 'man']) cpSync(join(ROOT, d), join(pkg, d), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
    const json = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ ...json, version: '9.8.7' }));
    const run = (args: string[]) => spawnSync(process.execPath, [join(pkg, 'bin/postern'), ...args], { encoding: 'utf8' });
    expect(run(['-bV', '-C', join(pkg, 'config/postern.toml')]).stdout).toMatch(/^postern version 9\.8\.7 \(Node\.js /);
    expect(run(['--version']).stdout).toBe('postern version 9.8.7\n');
    // The man pages, made from the copy's own help source.
    execFileSync(process.execPath, [join(pkg, 'man/generate.mjs'), join(tmp)]);
    expect(readFileSync(join(tmp, 'postern.8'), 'utf8')).toContain('"postern 9.8.7"');
  });

  it('no source file writes a version of its own', () => {
    const offenders = sources(join(ROOT, 'src')).filter((f) => /version\w*\s*[:=]\s*['"`]\d+\.\d+\.\d+/i.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});

describe('--version, -h, and install\'s own --help', () => {
  it('--version prints the version and exits 0, for every personality', async () => {
    const want = `postern version ${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`;
    for (const name of ['postern', 'sendmail', 'mailq']) {
      const r = await runCommand(name, ['--version'], { env: { POSTERN_CONFIG: '/nonexistent/postern.toml' } });
      expect({ name, ...r }).toEqual({ name, code: 0, stdout: want, stderr: '' });
    }
  });

  it('-h alone is --help (sendmail\'s -h N still takes its value)', async () => {
    for (const name of ['postern', 'sendmail']) {
      const r = await runCommand(name, ['-h'], { env: { POSTERN_CONFIG: '/nonexistent/postern.toml' } });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: ${name}\\b`));
    }
  });

  it('postern install --help (and -h) prints install\'s usage, not all of postern\'s', async () => {
    for (const args of [['install', '--help'], ['install', '-h'], ['uninstall', '--help']]) {
      const r = await runCommand('postern', args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: postern install \[--root DIR\] \[--dry-run\]\n {7}postern uninstall \[--root DIR\] \[--dry-run\]\n/);
      expect(r.stdout).not.toContain('-Mvh');
      expect(r.stdout.split('\n').length).toBeLessThan(50);
    }
  });
});
