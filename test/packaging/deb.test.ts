// test/packaging/deb.test.ts: packaging/build-deb.sh builds the Debian package (skipped,
// with the reason, where dpkg-deb is missing); its control fields, conffiles and
// maintainer scripts; its contents (the commands and links, the unit, the man pages,
// production dependencies only: no devDependencies, tests, sources or .git); and the
// unpacked program runs from its own node_modules (--help, a queue command on a spool).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/postern.js';

const hasDpkg = spawnSync('sh', ['-c', 'command -v dpkg-deb && command -v dpkg']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'postern-deb-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!hasDpkg)('the Debian package (needs dpkg-deb)', () => {
  let deb = '';
  let files: string[] = [];
  beforeAll(() => {
    deb = execFileSync(join(ROOT, 'packaging/build-deb.sh'), [join(tmp, 'out')], { encoding: 'utf8', timeout: 240_000 }).trim();
    files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n').filter(Boolean)
      .map((l) => l.replace(/^\S+ \S+ +\d+ \S+ \S+ \.(\/\S*)(?: -> (\S+))?$/, (_, p: string, t?: string) => (t ? `${p} -> ${t}` : p)));
  }, 300_000);

  it('declares itself an MTA that needs Debian\'s node', () => {
    const field = (name: string) => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();
    expect(field('Package')).toBe('postern');
    expect(field('Provides')).toBe('mail-transport-agent');
    expect(field('Conflicts')).toBe('mail-transport-agent');
    expect(field('Replaces')).toBe('mail-transport-agent');
    expect(field('Depends')).toContain('nodejs (>= 20.19)');
    const info = execFileSync('dpkg-deb', ['-I', deb], { encoding: 'utf8' });
    for (const f of ['conffiles', 'postinst', 'prerm', 'postrm']) expect(info).toContain(` ${f}`);
    const control = join(tmp, 'control');
    execFileSync('dpkg-deb', ['-e', deb, control]);
    expect(execFileSync('cat', [join(control, 'conffiles')], { encoding: 'utf8' })).toBe('/etc/postern/postern.toml\n/etc/logrotate.d/postern\n');
    for (const s of ['postinst', 'prerm', 'postrm']) expect(spawnSync('sh', ['-n', join(control, s)]).status, s).toBe(0);
    const postinst = execFileSync('cat', [join(control, 'postinst')], { encoding: 'utf8' });
    expect(postinst).toContain('useradd --system');
    expect(postinst).toContain('deb-systemd-helper enable postern.service');
    expect(execFileSync('cat', [join(control, 'postrm')], { encoding: 'utf8' })).toContain('POSTERN_PURGE_SPOOL');
  });

  it('holds the commands, links, unit, configuration and man pages', () => {
    for (const f of [
      '/usr/sbin/postern', '/usr/sbin/sendmail -> postern', '/usr/lib/sendmail -> ../sbin/postern', '/usr/bin/mailq -> ../sbin/postern',
      '/usr/bin/newaliases -> ../sbin/postern', '/usr/sbin/postern-qgrep -> postern', '/usr/sbin/postern-exigrep -> postern',
      '/usr/lib/postern/bin/postern', '/usr/lib/postern/dist/cli/main.js', '/usr/lib/systemd/system/postern.service',
      '/etc/postern/postern.toml', '/etc/logrotate.d/postern', '/usr/share/man/man8/postern.8.gz', '/usr/share/man/man5/postern.toml.5.gz',
      '/usr/share/man/man8/postern-qgrep.8.gz', '/usr/share/doc/postern/copyright', '/usr/lib/postern/node_modules/lmdb/package.json',
    ]) expect(files, f).toContain(f);
  });

  it('ships production dependencies only', () => {
    const modules = new Set(files.map((f) => /^\/usr\/lib\/postern\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter(Boolean));
    for (const dev of ['typescript', 'vitest', 'fast-check', '@types/node', 'vite', 'esbuild']) expect(modules.has(dev), dev).toBe(false);
    for (const prod of ['lmdb', 'nodemailer', 'smtp-server', 'smol-toml', 'zod', 'p-queue']) expect(modules.has(prod), prod).toBe(true);
    expect(files.filter((f) => /\/\.git\//.test(f))).toEqual([]);
    const own = files.filter((f) => f.startsWith('/usr/lib/postern/') && !f.startsWith('/usr/lib/postern/node_modules/'));
    expect(own.filter((f) => /^\/usr\/lib\/postern\/(src|test|bench|var)\/|\.ts$|\.map$|tsbuildinfo/.test(f))).toEqual([]);
  });

  it('runs from its own tree: --help, and a queue command on a spool (lmdb loads)', () => {
    const x = join(tmp, 'x');
    execFileSync('dpkg-deb', ['-x', deb, x]);
    const bin = join(x, 'usr/lib/postern/bin');
    expect(readdirSync(bin).sort()).toEqual(['mailq', 'newaliases', 'postern', 'postern-exigrep', 'postern-qgrep', 'sendmail']);
    const help = spawnSync(process.execPath, [join(bin, 'sendmail'), '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sendmail/);
    const cfg = join(tmp, 'postern.toml');
    writeFileSync(cfg, '[smarthost]\nhosts = ["127.0.0.1:1"]\n[spool]\ndirectory = "spool"\n[log]\nfile = "log/mainlog"\n');
    const count = spawnSync(process.execPath, [join(bin, 'postern'), '-C', cfg, '-bpc'], { encoding: 'utf8' });
    expect(count.stderr).toBe('');
    expect(count.stdout).toBe('0\n');
    const v = spawnSync(process.execPath, [join(bin, 'postern'), '-C', join(x, 'etc/postern/postern.toml'), '-bV'], { encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
  });
});

it.runIf(!hasDpkg)('the Debian package test is skipped: dpkg-deb is not installed', () => {});
