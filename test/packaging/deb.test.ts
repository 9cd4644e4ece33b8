// test/packaging/deb.test.ts: packaging/build-deb.sh builds the Debian package (skipped
// where dpkg-deb is missing; the script's refusal then is checked everywhere); its
// control fields, conffiles and maintainer scripts; its contents (the commands and links, the unit, the man pages,
// production dependencies only: no devDependencies, tests, sources or .git); and the
// unpacked program runs from its own node_modules (--help, a queue command on a spool).
// As root, where mount namespaces and overlayfs work, the package is also installed
// with dpkg on a throwaway copy of this machine (an overlay over /, chrooted: nothing
// reaches the real one): cron-style mail reaches a sink, and purge keeps the spool.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

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
    for (const f of ['conffiles', 'config', 'templates', 'postinst', 'prerm', 'postrm']) expect(info).toContain(` ${f}`);
    const control = join(tmp, 'control');
    execFileSync('dpkg-deb', ['-e', deb, control]);
    expect(execFileSync('cat', [join(control, 'conffiles')], { encoding: 'utf8' })).toBe('/etc/logrotate.d/postern\n');
    for (const s of ['config', 'postinst', 'prerm', 'postrm']) expect(spawnSync('sh', ['-n', join(control, s)]).status, s).toBe(0);
    const postinst = execFileSync('cat', [join(control, 'postinst')], { encoding: 'utf8' });
    expect(postinst).toContain('useradd --system');
    expect(postinst).toContain('groupadd --system postern-drop');
    expect(postinst).toContain('for unit in postern.socket postern.service; do');
    expect(postinst).toContain('deb-systemd-helper enable "$unit"');
    // The sockets stay open across an upgrade: the service restarts, never the socket unit.
    expect(postinst).toContain('deb-systemd-invoke restart postern.service');
    expect(postinst).not.toMatch(/restart postern\.socket/);
    // The configuration is postinst's (debconf's answers, Exim's settings), never a conffile; exim/exim4 by update-alternatives.
    expect(postinst).toContain('postern install --smarthost "$smarthost" --readhost "$readhost"');
    expect(postinst).toContain('update-alternatives --quiet --install /usr/sbin/exim4 exim4 /usr/sbin/postern');
    expect(execFileSync('cat', [join(control, 'templates')], { encoding: 'utf8' })).toMatch(/^Template: postern\/smarthost$/m);
    expect(field('Depends')).toContain('debconf (>= 0.5) | debconf-2.0');
    expect(execFileSync('cat', [join(control, 'postrm')], { encoding: 'utf8' })).toContain('POSTERN_PURGE_SPOOL');
  });

  it('holds the commands, links, unit, configuration and man pages', () => {
    for (const f of [
      '/usr/sbin/postern', '/usr/sbin/sendmail -> ../lib/postern/dist/sendmail', '/usr/lib/sendmail -> ../sbin/sendmail', '/usr/bin/mailq -> ../sbin/postern',
      '/usr/bin/newaliases -> ../sbin/postern', '/usr/sbin/postern-qgrep -> postern', '/usr/sbin/postern-exigrep -> postern',
      '/usr/lib/postern/bin/postern', '/usr/lib/postern/dist/cli/main.js', '/usr/lib/postern/dist/postdrop', '/usr/lib/postern/dist/sendmail', '/usr/lib/systemd/system/postern.service',
      '/usr/lib/systemd/system/postern.socket', '/usr/lib/systemd/system/postern-maildrop.path',
      '/usr/share/postern/postern.toml', '/etc/logrotate.d/postern', '/usr/share/man/man8/postern.8.gz', '/usr/share/man/man5/postern.toml.5.gz',
      '/usr/share/man/man8/postern-qgrep.8.gz', '/usr/share/doc/postern/copyright', '/usr/share/doc/postern/examples/postern.rules.yml', '/usr/share/doc/postern/examples/grafana-postern.json', '/usr/lib/postern/node_modules/lmdb/package.json',
    ]) expect(files, f).toContain(f);
  });

  // lintian's verdict: no error; the one warning left is named with its reason.
  const lintianOk = new Map([
    // A Debian archive upload closes its ITP bug; this package is built outside the archive.
    ['initial-upload-closes-no-bugs', 'built outside the archive, no ITP bug'],
  ]);
  it.skipIf(spawnSync('sh', ['-c', 'command -v lintian']).status !== 0)('passes lintian: no errors, only the named warnings (needs lintian)', () => {
    const r = spawnSync('lintian', ['--tag-display-limit', '0', deb], { encoding: 'utf8', timeout: 240_000 });
    const tags = r.stdout.split('\n').filter((l) => /^[EWX]: /.test(l));
    expect(tags.filter((l) => l.startsWith('E: ')), 'errors').toEqual([]);
    expect(tags.filter((l) => !lintianOk.has(/^\w: postern: (\S+)/.exec(l)?.[1] ?? '')), 'unnamed warnings').toEqual([]);
  }, 300_000);

  it('has man pages for sendmail, mailq and newaliases, and a changelog', () => {
    for (const c of ['sendmail', 'mailq', 'newaliases']) expect(files).toContain(`/usr/share/man/man8/${c}.8.gz -> postern.8.gz`);
    expect(files).toContain('/usr/share/doc/postern/changelog.Debian.gz');
    expect(files.filter((f) => f.endsWith('.musl.node'))).toEqual([]);
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
    // package.json: the commands are CommonJS; they run sendmail's submission from dist/cli/submit.cjs.
    expect(readdirSync(bin).sort()).toEqual(['mailq', 'newaliases', 'package.json', 'postern', 'postern-exigrep', 'postern-qgrep', 'sendmail']);
    expect(readdirSync(join(x, 'usr/lib/postern/dist/cli'))).toEqual(expect.arrayContaining(['submit.cjs', 'list.cjs']));
    const help = spawnSync(process.execPath, [join(bin, 'sendmail'), '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sendmail/);
    // /usr/sbin/sendmail is the C front end, which hands --help to bin/sendmail (Debian's node named on its first line).
    if (existsSync('/usr/bin/node')) {
      const front = spawnSync(join(x, 'usr/sbin/sendmail'), ['--help'], { encoding: 'utf8', env: {} });
      expect(front.stdout).toBe(help.stdout);
    }
    const cfg = join(tmp, 'postern.toml');
    writeFileSync(cfg, '[smarthost]\nhosts = ["127.0.0.1:1"]\n[spool]\ndirectory = "spool"\n[log]\nfile = "log/mainlog"\n');
    const count = spawnSync(process.execPath, [join(bin, 'postern'), '-C', cfg, '-bpc'], { encoding: 'utf8' });
    expect(count.stderr).toBe('');
    expect(count.stdout).toBe('0\n');
    // Debian's node refuses to change identity unless started with io_uring off (bin/postern).
    expect(readFileSync(join(x, 'usr/sbin/postern'), 'utf8')).toContain('\nUV_USE_IO_URING=0\nexport UV_USE_IO_URING\nexec /usr/bin/node ');
    expect(readFileSync(join(bin, 'postern'), 'utf8')).toMatch(/^#!\/usr\/bin\/node\n/);
    const v = spawnSync(process.execPath, [join(bin, 'postern'), '-C', join(x, 'usr/share/postern/postern.toml'), '-bV'], { encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
  });

  it.runIf(overlayWorks())('installs with dpkg on a throwaway copy of this machine: env -i sendmail reaches the hub, purge keeps the spool', async () => {
    const sink = new Sink();
    await sink.listen();
    const script = join(tmp, 'inside.sh');
    writeFileSync(script, INSIDE.replace(/@HUB@/g, String(sink.port)));
    const ovl = join(tmp, 'ovl');
    const outer = `set -e
mount -t tmpfs postern-test ${ovl}
mkdir ${ovl}/u ${ovl}/w ${ovl}/m
mount -t overlay overlay -o lowerdir=/,upperdir=${ovl}/u,workdir=${ovl}/w ${ovl}/m
mount --bind /proc ${ovl}/m/proc
mount --bind /dev ${ovl}/m/dev
cp ${deb} ${ovl}/m/root/postern.deb
cp ${script} ${ovl}/m/root/inside.sh
exec chroot ${ovl}/m sh /root/inside.sh`;
    execFileSync('mkdir', ['-p', ovl]);
    let said = '';
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', outer], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (said += d));
    child.stderr.on('data', (d) => (said += d));
    const code = new Promise<number | null>((r) => child.on('exit', r));
    try {
      const got = await waitUntil('the cron mail at the hub', () => sink.messages.find((m) => m.data.includes('run-parts')), 90_000)
        .catch((e: Error) => { throw new Error(`${e.message}\n${said}`); });
      expect(got.to).toEqual(['root@web1.example.org']);
      expect(got.data).toMatch(/^From: root@web1\.example\.org \(Cron Daemon\)\r?$/m);
      expect(await code, said).toBe(0);
      expect(said).toContain('user: postern');
      expect(said).toContain('unit: enabled');
      expect(said).toContain('socket: enabled');
      expect(said).toContain('importing the configuration only');
      expect(said).toContain(`dc_smarthost='127.0.0.1::${sink.port}': smarthost.hosts = ["127.0.0.1:${sink.port}"]`);
      expect(said).toContain('write /etc/postern/postern.toml (over the package\'s placeholder)');
      // The drop group's setgid helper is the only writer for other users; the maildrop is closed to them.
      expect(said).toContain('maildrop: 1731 postern:postern-drop');
      expect(said).toContain('postdrop: 2755 root:postern-drop');
      expect(said).toContain("a user's mail: U=ptinside");
      expect(said).toContain('spool after purge: kept');
      expect(said).toContain('sendmail after purge: gone');
      expect(said).toContain('kept the spool /var/spool/postern');
    } finally {
      child.kill('SIGKILL');
      await sink.close();
    }
  }, 180_000);
});

/** Root, a mount namespace and an overlay over / (this machine, not every CI runner). */
function overlayWorks(): boolean {
  if (!hasDpkg || process.getuid?.() !== 0) return false;
  const d = mkdtempSync(join(tmpdir(), 'postern-ovl-probe-'));
  try {
    return spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `mount -t tmpfs p ${d} && mkdir ${d}/u ${d}/w ${d}/m && mount -t overlay overlay -o lowerdir=/,upperdir=${d}/u,workdir=${d}/w ${d}/m && test -x ${d}/m/usr/bin/node`]).status === 0;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** Run inside the throwaway copy: install, configure the hub, run the daemon as systemd would (User=postern), send as cron does, purge. */
const INSIDE = `set -e
export DEBIAN_FRONTEND=noninteractive
dpkg -i /root/postern.deb >/dev/null
echo "user: $(id -un postern)"
test -L /etc/systemd/system/multi-user.target.wants/postern.service && echo "unit: enabled"
test -L /etc/systemd/system/sockets.target.wants/postern.socket && echo "socket: enabled"
mkdir -p /etc/exim4
printf "dc_eximconfig_configtype='satellite'\\ndc_smarthost='127.0.0.1::@HUB@'\\ndc_local_interfaces='127.0.0.1'\\n" > /etc/exim4/update-exim4.conf.conf
echo web1.example.org > /etc/mailname
/usr/sbin/postern install
sed -i -e 's/^tls = .*/tls = "none"/' -e 's/^smtp = .*/smtp = ["127.0.0.1:0"]/' /etc/postern/postern.toml
runuser -u postern -- /usr/sbin/postern -bd -q1m 2>/root/daemon.err &
daemon=$!
i=0; until grep -q ready /root/daemon.err; do i=$((i+1)); [ $i -lt 400 ] || { cat /root/daemon.err; exit 1; }; sleep 0.05; done
printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> run-parts\n\nran\n' | env -i /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem root
i=0; until grep -q Completed /var/log/postern/mainlog 2>/dev/null; do i=$((i+1)); [ $i -lt 600 ] || { cat /root/daemon.err /var/log/postern/mainlog; exit 1; }; sleep 0.05; done
env -i /usr/bin/mailq
stat -c 'maildrop: %a %U:%G' /var/spool/postern-maildrop
stat -c 'postdrop: %a %U:%G' /usr/lib/postern/dist/postdrop
useradd -M -s /usr/sbin/nologin ptinside
printf 'Subject: from a user\n\nx\n' | env -i $(command -v runuser) -u ptinside -- /usr/sbin/sendmail root
i=0; until grep -q 'U=ptinside' /var/log/postern/mainlog 2>/dev/null; do i=$((i+1)); [ $i -lt 600 ] || { cat /root/daemon.err /var/log/postern/mainlog; exit 1; }; sleep 0.05; done
echo "a user's mail: U=ptinside"
kill $daemon; wait $daemon || true
dpkg --purge postern 2>&1
test -d /var/spool/postern && echo "spool after purge: kept"
test -e /usr/sbin/sendmail || echo "sendmail after purge: gone"
`;

// Runs everywhere: where dpkg-deb is missing this is what the tests above would meet.
it('without dpkg-deb, build-deb.sh says so in one sentence and exits 69, building nothing', () => {
  const empty = join(tmp, 'no-dpkg-path');
  mkdirSync(empty);
  const out = join(tmp, 'no-dpkg-out');
  const r = spawnSync('/bin/sh', [join(ROOT, 'packaging/build-deb.sh'), out], { encoding: 'utf8', env: { PATH: empty } });
  expect(r.stderr).toBe("build-deb.sh: dpkg-deb is not installed (Debian's dpkg package): no package built\n");
  expect(r.status).toBe(69);
  expect(existsSync(out)).toBe(false);
});
