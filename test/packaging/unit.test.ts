// test/packaging/unit.test.ts: the systemd unit's hardening directives are there,
// `systemd-analyze security --offline=true` rates it OK (≤ 4) where systemd-analyze is
// installed, the daemon tells systemd it is ready (Type=notify, through systemd-notify,
// to a real notification socket), and the logrotate snippet parses and sends SIGUSR1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Instance, ROOT, waitUntil } from '../helpers/postern.js';

const unit = readFileSync(join(ROOT, 'config/postern.service'), 'utf8');
const directives = new Map<string, string[]>();
for (const line of unit.split('\n')) {
  const m = /^([A-Za-z]+)=(.*)$/.exec(line);
  if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
}
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'postern-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('config/postern.service', () => {
  it('has the hardening directives', () => {
    const want: [string, string][] = [
      ['User', 'postern'],
      ['AmbientCapabilities', 'CAP_NET_BIND_SERVICE'],
      ['CapabilityBoundingSet', 'CAP_NET_BIND_SERVICE'],
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ReadWritePaths', '/var/spool/postern /var/spool/postern-maildrop /var/log/postern'],
      ['PrivateTmp', 'yes'],
      ['ProtectHome', 'yes'],
      ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
      ['SystemCallFilter', '@system-service'],
      ['Type', 'notify'],
      ['NotifyAccess', 'all'],
      // The shell's kill: /bin/kill (procps) is not on a minimal Debian.
      ['ExecReload', `/bin/sh -c 'kill -HUP "$MAINPID"'`],
      ['ExecStart', '/usr/sbin/postern -bd -q15m'],
      ['Environment', 'UV_USE_IO_URING=0'], // io_uring off from the start (bin/postern says why)
    ];
    for (const [k, v] of want) expect(directives.get(k), k).toContain(v);
  });

  it.skipIf(!has('systemd-analyze'))('systemd-analyze security rates it OK', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', join(ROOT, 'config/postern.service')], { encoding: 'utf8' });
    const m = /Overall exposure level for postern\.service: (\d+\.\d+) (\w+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(4);
  });

  it.skipIf(!has('systemd-notify') || !has('python3'))('the daemon tells systemd it is ready once it listens (Type=notify)', async () => {
    const sock = join(tmp, 'notify');
    // systemd's side: read each datagram, close the fds it carries (systemd-notify's barrier).
    const receiver: ChildProcess = spawn('python3', ['-c', `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    msg, fds, flags, addr = socket.recv_fds(s, 4096, 8)
    for fd in fds: os.close(fd)
    print(msg.decode().replace("\\n", " "), flush=True)
`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    receiver.stdout!.on('data', (d) => (said += d));
    const p = new Instance([1]);
    try {
      await waitUntil('the notification socket', () => said.includes('bound'));
      process.env.NOTIFY_SOCKET = sock;
      try {
        await p.start();
      } finally {
        delete process.env.NOTIFY_SOCKET;
      }
      const line = await waitUntil('READY=1', () => said.split('\n').find((l) => l.includes('READY=1')));
      expect(line).toContain(`MAINPID=${p.daemon!.pid}`);
      expect(p.daemonStderr).not.toContain('cannot tell systemd');
    } finally {
      receiver.kill();
      await p.cleanup();
    }
  });
});

describe('config/postern.socket', () => {
  const text = readFileSync(join(ROOT, 'config/postern.socket'), 'utf8');
  const conf = readFileSync(join(ROOT, 'packaging/debian/postern.toml'), 'utf8');
  const values = (t: string, k: string) => [...t.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);

  it('listens on each listen.smtp address of the packaged default, one socket for one daemon', () => {
    const smtp = JSON.parse(/^smtp = (\[.*\])$/m.exec(conf)![1]!) as string[];
    expect(values(text, 'ListenStream')).toEqual(smtp);
    expect(values(text, 'Accept')).toEqual(['no']);
    expect(values(text, 'BindIPv6Only')).toEqual(['ipv6-only']);
    // The name the daemon takes them by (daemon/listen-fds.ts).
    expect(values(text, 'FileDescriptorName')).toEqual(['smtp']);
    expect(values(text, 'Service')).toEqual(['postern.service']);
    expect(values(text, 'WantedBy')).toEqual(['sockets.target']);
  });

  it('is required by the service, and enabled with it', () => {
    expect(directives.get('Requires')).toContain('postern.socket');
    expect(directives.get('After')?.join(' ')).toMatch(/\bpostern\.socket\b/);
    expect(directives.get('Also')).toContain('postern.socket');
  });

  it.skipIf(!has('systemd-analyze'))('systemd-analyze verify finds nothing wrong with the pair', () => {
    const dir = join(tmp, 'units');
    rmSync(dir, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'postern.socket'), text);
    // ExecStart's program need not exist here: only the units' syntax and wiring are checked.
    writeFileSync(join(dir, 'postern.service'), unit.replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true'));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(dir, 'postern.socket'), join(dir, 'postern.service')], { encoding: 'utf8' });
    const problems = (r.stderr + r.stdout).split('\n').filter((l) => /postern\.(socket|service)/.test(l) && !/Failed to (connect|create)|bus|System has not been booted/i.test(l));
    expect(problems, r.stderr).toEqual([]);
  });
});

describe('config/postern-maildrop.path', () => {
  const text = readFileSync(join(ROOT, 'config/postern-maildrop.path'), 'utf8');
  it('starts the service for a message in the maildrop, never for the daemon\'s dot files', () => {
    expect(text).toMatch(/^PathExistsGlob=\/var\/spool\/postern-maildrop\/\[!\.\]\*$/m);
    expect(text).not.toMatch(/^DirectoryNotEmpty=/m);
    expect(text).toMatch(/^Unit=postern\.service$/m);
  });
});

describe('config/postern.logrotate', () => {
  it('rotates the main log daily, compressed, and sends SIGUSR1', () => {
    const text = readFileSync(join(ROOT, 'config/postern.logrotate'), 'utf8');
    expect(text).toMatch(/^\/var\/log\/postern\/mainlog \{/m);
    expect(text).toMatch(/\bcompress\b/);
    expect(text).toContain('systemctl kill --kill-whom=main --signal=USR1 postern.service');
  });

  it.skipIf(!has('logrotate'))('logrotate reads it', () => {
    const conf = join(tmp, 'logrotate.conf');
    writeFileSync(conf, readFileSync(join(ROOT, 'config/postern.logrotate'), 'utf8')
      .replace('/var/log/postern/mainlog', join(tmp, 'mainlog')).replace('create 0640 postern adm', 'create 0640 root root'));
    writeFileSync(join(tmp, 'mainlog'), 'x\n');
    const r = spawnSync('logrotate', ['-d', '-s', join(tmp, 'state'), conf], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).not.toMatch(/error/i);
    expect(existsSync(join(tmp, 'mainlog'))).toBe(true);
  });
});
