// The privilege model with real processes: the spool is private (0700/0600, log 0640),
// the daemon runs as `user`, any user submits through the maildrop whether or not the
// daemon runs and is known by the kernel's word (the file's owner), hand-made maildrop
// files (links, incomplete files) never pass for someone else's mail, and the queue
// commands and the control socket are for root and the daemon's user only. The tests
// that need a second user make one with useradd (root only; skipped otherwise).
// Every command runs with UV_USE_IO_URING=1, as on Debian 13's own node (whose libuv may
// use io_uring, so Node refuses to change identity in process); root's are exec'd as
// bin/NAME, as installed commands are (their first line turns io_uring off: the change in
// process), or as `node bin/NAME` with it on, or with POSTERN_TEST_FORCE_SPAWN_DROP=1:
// then root runs the command again as `user`, in a child (Debian 13's way).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lchownSync, linkSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, closeBoth, codeOthersCanRead, command, Instance, launch, ROOT, bundleFresh, waitUntil, type RunResult } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';
import { installHelper, makeGroup, removeUsersAndGroups } from '../helpers/postdrop.js';

const isRoot = process.getuid?.() === 0;
process.env.UV_USE_IO_URING = '1';
launch.direct = true;

interface TestUser { name: string; uid: number; gid: number }

/** Runs a postern command (or `node -e CODE` when name is undefined) as another user. */
function runAs(u: TestUser, name: string | undefined, args: string[], input: string | Buffer = '', env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // sendmail as installed: the C front end (helpers/postern.ts's command), which hands what it does not do to node.
    const [cmd, argv] = name === 'sendmail' ? command(name, args) : [process.execPath, name === undefined ? args : [BIN(name), ...args]];
    const child = spawn(cmd, argv, {
      uid: u.uid, gid: u.gid, cwd: '/', stdio: 'pipe',
      env: { ...process.env, HOME: '/', USER: u.name, LOGNAME: u.name, ...env },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${name} ${args.join(' ')} timed out`)); }, 30_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    child.stdin.on('error', () => { /* a command that exits before reading its input */ });
    child.stdin.end(input);
  });
}

/** Writes `data` as `path` with `mode`, as the user (a hand-made maildrop file). */
function writeAs(u: TestUser, path: string, data: string, mode: number): Promise<RunResult> {
  const code = `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(path)}, 'wx', ${mode}); fs.writeSync(fd, ${JSON.stringify(data)}); fs.fchmodSync(fd, ${mode}); fs.closeSync(fd);`;
  return runAs(u, undefined, ['-e', code]);
}

const dropFile = (envelope: object, message: string) => `${JSON.stringify(envelope)}\n${message}`;

function procUid(pid: number): number {
  const line = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(line?.[2]);
}

const mode = (path: string) => statSync(path).mode & 0o7777;

const nobody = (): TestUser => ({ name: 'nobody', uid: Number(execFileSync('id', ['-u', 'nobody']).toString()),
  gid: Number(execFileSync('id', ['-g', 'nobody']).toString()) });

// The daemon becomes `user` and other users run commands: all run from code they can read.
if (isRoot) launch.code = codeOthersCanRead();
afterAll(() => {
  if (launch.code !== ROOT) rmSync(launch.code, { recursive: true, force: true });
});

describe('privileges', () => {
  let p: Instance | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    p = undefined;
    sink = undefined;
  });

  async function setup(user?: TestUser): Promise<Instance> {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    // The throwaway user must reach the config, the maildrop next to the spool, and the code.
    chmodSync(p.dir, 0o711);
    if (user) writeFileSync(p.config, `user = "${user.name}"\n${readFileSync(p.config, 'utf8')}`);
    return p;
  }

  it('keeps the spool private (0700, 0600), the log 0640 and the maildrop 1731', async () => {
    const inst = await setup();
    await inst.start();
    const sent = await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: modes\n\nx\n');
    expect(sent).toMatch(/^250 /);
    await sink!.waitFor(1);
    expect(mode(join(inst.dir, 'spool'))).toBe(0o700);
    expect(mode(join(inst.dir, 'spool/spool.mdb'))).toBe(0o600);
    expect(mode(join(inst.dir, 'spool/spool.mdb-lock'))).toBe(0o600);
    expect(mode(join(inst.dir, 'log/mainlog'))).toBe(0o640);
    expect(mode(join(inst.dir, 'spool-maildrop'))).toBe(0o1731);
    expect(mode(join(inst.dir, 'log'))! & 0o002).toBe(0);
  });

  it.skipIf(!isRoot)('a main log root makes is 0640, group adm (where it exists); root never writes into a log with two names', async () => {
    const inst = await setup();
    await inst.start();
    await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: log\n\nx\n');
    await inst.waitForLog(/Completed/);
    const log = join(inst.dir, 'log/mainlog');
    const adm = /^adm:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))?.[1];
    expect(statSync(log).gid).toBe(adm === undefined ? 0 : Number(adm));
    expect(mode(log)).toBe(0o640);
    await inst.stop();
    // A second name for the log: another file of root's (what someone who may write the folder could make).
    const other = join(inst.dir, 'other');
    writeFileSync(other, 'root only\n', { mode: 0o600 });
    rmSync(log);
    linkSync(other, log);
    await inst.start();
    await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: log2\n\nx\n');
    await sink!.waitFor(2);
    await waitUntil('the refusal on stderr', () => /cannot write .*mainlog: root does not write to it: it has 2 names/.test(inst.daemonStderr));
    expect(readFileSync(other, 'utf8')).toBe('root only\n');
  });

  it('refuses to start when the maildrop is a symbolic link', async () => {
    const inst = await setup();
    symlinkSync('/tmp', join(inst.dir, 'spool-maildrop'));
    const r = await inst.run('postern', ['-bd']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^postern: the maildrop .* is a symbolic link; make it a folder\n$/);
  });

  it('the maildrop pickup never commits a file twice (its name is committed with the message)', async () => {
    const inst = await setup();
    await inst.start();
    await inst.stop();
    // A drop file whose name the spool already knows: what a crash between the
    // commit and the unlink leaves. The pickup only removes it.
    const { LmdbSpool } = await import('../../src/spool/lmdb-spool.js');
    const spool = LmdbSpool.open(join(inst.dir, 'spool'));
    const name = randomBytes(16).toString('hex');
    const committed = await spool.admit({ id: '1xVaAA-000001-00', sender: 'a@example.org', recipients: ['ops@example.org'],
      arrival: Date.now(), protocol: 'local', headers: 'Subject: first\n', body: [Buffer.from('x\n')] }, { pickupFile: name });
    expect(committed).not.toBe(false);
    await spool.close();
    writeFileSync(join(inst.dir, 'spool-maildrop', name), dropFile({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' }, 'Subject: again\n\nx\n'), { mode: 0o644 });
    await inst.start();
    await sink!.waitFor(1);
    await waitUntil('the picked-up file removed', () => !existsSync(join(inst.dir, 'spool-maildrop', name)));
    expect(sink!.messages.map((m) => /Subject: (\w+)/.exec(m.data)?.[1])).toEqual(['first']);
    expect(inst.log()).not.toMatch(/Subject: again|<= root/);
  });

  it('idle connections to the control socket are dropped after 10 s and block neither SMTP nor sendmail', async () => {
    const inst = await setup();
    await inst.start();
    const { createConnection } = await import('node:net');
    const sock = join(inst.dir, 'spool/postern.sock');
    const idle = await Promise.all(Array.from({ length: 100 }, () => new Promise<import('node:net').Socket>((resolve) => {
      const c = createConnection(sock);
      c.on('error', () => resolve(c));
      c.on('connect', () => resolve(c));
    })));
    let closed = 0;
    for (const c of idle) c.on('close', () => closed++);
    expect(await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: smtp\n\nx\n')).toMatch(/^250 /);
    const r = await inst.run('sendmail', ['ops@example.org'], { input: 'Subject: sendmail\n\nx\n' });
    expect(r.code).toBe(0);
    await sink!.waitFor(2);
    // Past the cap of 64 connections at once, the rest are closed at once; all are gone after the 10 s timeout.
    await waitUntil('every idle connection closed by the daemon', () => closed === idle.length, 25_000);
    expect((await inst.run('postern', ['-q'])).code).toBe(0);
  }, 40_000);

  describe.skipIf(!isRoot)('with a second user (needs root: useradd)', () => {
    let u: TestUser;
    beforeAll(() => {
      const name = `pt${randomBytes(4).toString('hex')}`;
      execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', name]);
      const uid = Number(execFileSync('id', ['-u', name]).toString());
      const gid = Number(execFileSync('id', ['-g', name]).toString());
      u = { name, uid, gid };
    });
    afterAll(() => {
      if (u) execFileSync('userdel', [u.name], { stdio: 'ignore' });
      removeUsersAndGroups();
    });

    it('the daemon with user = set runs as that user, owns the spool, and delivers', async () => {
      const inst = await setup(u);
      await inst.start();
      expect(procUid(inst.daemon!.pid!)).toBe(u.uid);
      await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: as user\n\nx\n');
      await sink!.waitFor(1);
      for (const f of ['spool', 'spool/spool.mdb', 'spool/control.key', 'spool-maildrop', 'log/mainlog']) {
        expect(statSync(join(inst.dir, f)).uid).toBe(u.uid);
      }
    });

    it('`node bin/postern` started by root with io_uring on (the node refuses in process): queue commands and the daemon run as `user` in a child, signals and status pass through', async () => {
      const inst = await setup(u);
      const viaNode = (args: string[]) => spawnSync(process.execPath, [BIN('postern'), '-C', inst.config, ...args], { encoding: 'utf8', timeout: 30_000 });
      const daemon = () => {
        const child = spawn(process.execPath, [BIN('postern'), '-C', inst.config, '-bd', '-q1h'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let said = '';
        child.stderr.on('data', (d) => (said += d));
        const exited = new Promise<[number | null, string | null]>((r) => child.on('exit', (code, signal) => r([code, signal])));
        const ready = waitUntil('the daemon ready', () => /ready, listening/.test(said)).catch((e: Error) => { throw new Error(`${e.message}: ${said}`); });
        const kids = () => readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
        return { child, exited, ready, kids };
      };
      const d = daemon();
      try {
        await d.ready;
        expect(procUid(d.child.pid!)).toBe(0); // the first node only waits and passes signals on
        const [inner] = d.kids();
        expect(d.kids().map(procUid)).toEqual([u.uid]);
        const count = viaNode(['-bpc']);
        expect(count.stderr).toBe('');
        expect([count.status, count.stdout]).toEqual([0, '0\n']);
        const direct = spawnSync(BIN('postern'), ['-C', inst.config, '-Mvh', '1xVaAA-000009-00'], { encoding: 'utf8' });
        const again = viaNode(['-Mvh', '1xVaAA-000009-00']);
        expect(direct.status).not.toBe(0);
        expect([again.status, again.stdout, again.stderr]).toEqual([direct.status, direct.stdout, direct.stderr]);
        d.child.kill('SIGTERM');
        expect(await d.exited).toEqual([0, null]);
        await waitUntil('the inner daemon gone', () => !existsSync(`/proc/${inner}`));
      } finally {
        d.child.kill('SIGKILL');
      }
      // A death by signal of the inner node is the outer's too.
      const e = daemon();
      try {
        await e.ready;
        process.kill(e.kids()[0]!, 'SIGKILL');
        expect(await e.exited).toEqual([null, 'SIGKILL']);
      } finally {
        e.child.kill('SIGKILL');
      }
    });

    it('where node refuses to change identity in process (Debian 13\'s, forced here): root runs each command again as `user`; the root daemon hands its listeners over and only supervises', async () => {
      const inst = await setup(u);
      const forced = { ...process.env, POSTERN_TEST_FORCE_SPAWN_DROP: '1' };
      const cmd = (name: string, args: string[], env: NodeJS.ProcessEnv = forced) =>
        spawnSync(BIN(name), ['-C', inst.config, ...args], { encoding: 'utf8', timeout: 30_000, env });
      const status = (pid: number, key: string) => new RegExp(`^${key}:\\t(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      // Mail waiting in the maildrop (root's sendmail, no daemon): the queue commands' pickup takes it, as the user.
      const held = spawnSync(BIN('sendmail'), ['-C', inst.config, '-t'], { input: 'To: hold@example.org\nSubject: forced\n\nx\n', encoding: 'utf8' });
      expect([held.status, held.stderr]).toEqual([0, '']);
      const listing = cmd('mailq', []);
      expect([listing.status, listing.stderr]).toEqual([0, '']);
      expect(listing.stdout).toMatch(/hold@example\.org/);
      for (const f of ['spool', 'spool/spool.mdb', 'spool/spool.mdb-lock']) expect([f, statSync(join(inst.dir, f)).uid]).toEqual([f, u.uid]);
      expect([cmd('postern', ['-bpc']).stdout]).toEqual(['1\n']);
      const id = cmd('postern-qgrep', ['-i', '-r', '^hold@']).stdout.trim();
      expect(id).toMatch(/^\w{6}-\w{6}-\w{2}$/);
      expect(cmd('postern', ['-Mvh', id]).stdout).toMatch(/^Subject: forced$/m);
      // The child's status is the command's, its output too.
      const bad = cmd('postern', ['-Mvh', '1xVaAA-000009-00']);
      const same = cmd('postern', ['-Mvh', '1xVaAA-000009-00'], process.env);
      expect(bad.status).not.toBe(0);
      expect([bad.status, bad.stdout, bad.stderr]).toEqual([same.status, same.stdout, same.stderr]);
      // The marker makes no one that user: root that carries it is refused.
      const forged = cmd('postern', ['-bpc'], { ...process.env, POSTERN_AS_USER: String(u.uid) });
      expect([forged.status, forged.stderr]).toEqual([1, `postern: cannot become the ${u.name} user: started as it (POSTERN_AS_USER=${u.uid}), this process runs as root\n`]);

      // The daemon: root binds, sets up, and starts the daemon as `user` with the listeners (LISTEN_FDS).
      const child = spawn(BIN('postern'), ['-C', inst.config, '-bd', '-q1h'], { stdio: ['ignore', 'ignore', 'pipe'], env: forced });
      let said = '';
      child.stderr.on('data', (d) => (said += d));
      const exited = new Promise<[number | null, string | null]>((r) => child.on('exit', (code, signal) => r([code, signal])));
      let inner = 0;
      try {
        await waitUntil('the daemon ready', () => /ready, listening/.test(said)).catch((e: Error) => { throw new Error(`${e.message}: ${said}`); });
        const port = Number(/ready, listening for SMTP on \S+:(\d+)/.exec(said)?.[1]);
        const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
        expect(kids).toHaveLength(1);
        inner = kids[0]!;
        expect(procUid(child.pid!)).toBe(0);
        expect(status(inner, 'Uid')).toBe(Array(4).fill(u.uid).join('\t'));
        expect(status(inner, 'Gid')).toBe(Array(4).fill(u.gid).join('\t'));
        expect(['', String(u.gid)]).toContain(status(inner, 'Groups')!.trim()); // no group of root's
        // The user's process holds the spool; root's holds neither the spool nor a listener.
        const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).filter((f) => Number(f) > 2) // stderr is the test's socketpair
          .map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ''; } });
        expect(fds(inner)).toContain(join(inst.dir, 'spool/spool.mdb'));
        expect(fds(child.pid!).filter((f) => f.includes(inst.dir) || f.startsWith('socket:'))).toEqual([]);
        expect(await sendOne(port, 'a@example.org', ['ops@example.org'], 'Subject: through the handed listener\n\nx\n')).toMatch(/^250 /);
        await sink!.waitFor(2); // with what root's sendmail left
        expect(inst.log()).toMatch(new RegExp(`daemon started: pid=${inner},`));
        // Signals pass through: HUP reloads, TERM stops, and the status is the child's.
        child.kill('SIGHUP');
        await waitUntil('the reload', () => /SIGHUP received: configuration reloaded/.test(inst.log()));
        child.kill('SIGTERM');
        expect(await exited).toEqual([0, null]);
        expect(existsSync(`/proc/${inner}`)).toBe(false);
        expect(inst.log()).toMatch(new RegExp(`SIGTERM received: stopping[^]*postern daemon stopped: pid=${inner}`));
      } finally {
        child.kill('SIGKILL');
        if (inner) try { process.kill(inner, 'SIGKILL'); } catch { /* gone */ } // a killed supervisor leaves its child
      }
    });

    it("postern install's wrapper starts node with io_uring off: the daemon it starts as root becomes `user` itself", async () => {
      const inst = await setup(u);
      const { wrapperText } = await import('../../src/install/install.js');
      const wrapper = join(inst.dir, 'usr/sbin/postern');
      mkdirSync(dirname(wrapper), { recursive: true });
      writeFileSync(wrapper, wrapperText(process.execPath, launch.code), { mode: 0o755 });
      const child = spawn(wrapper, ['-C', inst.config, '-bd', '-q1h'], { stdio: ['ignore', 'ignore', 'pipe'] });
      try {
        let said = '';
        child.stderr.on('data', (d) => (said += d));
        await waitUntil('the daemon ready', () => /ready, listening/.test(said)).catch((e: Error) => { throw new Error(`${e.message}: ${said}`); });
        expect(procUid(child.pid!)).toBe(u.uid); // no second node: the wrapper's sh exec'd node with io_uring off
        const count = spawnSync(wrapper, ['-C', inst.config, '-bpc'], { encoding: 'utf8' });
        expect([count.status, count.stdout, count.stderr]).toEqual([0, '0\n', '']);
      } finally {
        child.kill('SIGKILL');
      }
    });

    it("a start as root follows no link the daemon's user left in its spool: what they name keeps its owner and mode", async () => {
      const inst = await setup(u);
      await inst.start();
      await inst.stop();
      const dir = join(inst.dir, 'spool');
      expect(statSync(dir).uid).toBe(u.uid);
      // Root's things elsewhere: a folder with a file, a file, and a file to be linked to.
      const rootDir = join(inst.dir, 'root-dir');
      mkdirSync(rootDir, { mode: 0o700 });
      writeFileSync(join(rootDir, '1xVaAA-000004-00'), 'x', { mode: 0o640 });
      const rootFile = join(inst.dir, 'root-file');
      writeFileSync(rootFile, 'x', { mode: 0o640 });
      const linked = join(inst.dir, 'root-linked');
      writeFileSync(linked, 'x', { mode: 0o644 });
      const before = [rootDir, join(rootDir, '1xVaAA-000004-00'), rootFile, linked].map((f) => [f, statSync(f).uid, mode(f)]);
      // What the daemon's user may plant in its spool (root stands in: a link is a link).
      rmSync(join(dir, 'bodies'), { recursive: true, force: true });
      symlinkSync(rootDir, join(dir, 'bodies'));
      symlinkSync(rootFile, join(dir, 'spool.mdb-old'));
      linkSync(linked, join(dir, 'spool.mdb-x'));
      await inst.start();
      expect(procUid(inst.daemon!.pid!)).toBe(u.uid);
      expect([rootDir, join(rootDir, '1xVaAA-000004-00'), rootFile, linked].map((f) => [f, statSync(f).uid, mode(f)])).toEqual(before);
      await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: still\n\nx\n');
      await sink!.waitFor(1);
    });

    it.skipIf(spawnSync('/usr/bin/python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2']).status !== 0)(
      "a start as root while the daemon's user swaps spool/bodies and a link to a folder of root's (renameat2 RENAME_EXCHANGE, in a loop) gives away nothing of root's", async () => {
        const inst = await setup(u);
        await inst.start();
        await inst.stop();
        const dir = join(inst.dir, 'spool');
        const rootDir = join(inst.dir, 'root-dir');
        mkdirSync(rootDir, { mode: 0o700 });
        mkdirSync(join(dir, 'bodies'), { recursive: true });
        // The same names in both: whichever folder `bodies` names at root's chown, a file of that name is there.
        const names = Array.from({ length: 200 }, (_, i) => `1xVaAA-${String(i).padStart(6, '0')}-00`);
        for (const n of names) {
          writeFileSync(join(rootDir, n), 'x', { mode: 0o640 });
          writeFileSync(join(dir, 'bodies', n), 'x', { mode: 0o600 });
          chownSync(join(dir, 'bodies', n), u.uid, u.gid);
        }
        symlinkSync(rootDir, join(dir, 'swap'));
        chownSync(join(dir, 'bodies'), u.uid, u.gid);
        // The swapper (as the daemon's user: the spool is theirs).
        const swapper = spawn('/usr/bin/python3', ['-c', [
          'import ctypes, os, sys',
          'libc = ctypes.CDLL(None, use_errno=True)',
          `a, b = ${JSON.stringify(join(dir, 'bodies'))}.encode(), ${JSON.stringify(join(dir, 'swap'))}.encode()`,
          'print("swapping", flush=True)',
          'while True: libc.renameat2(-100, a, -100, b, 2)',
        ].join('\n')], { uid: u.uid, gid: u.gid, stdio: ['ignore', 'pipe', 'inherit'] });
        try {
          await new Promise((r) => swapper.stdout.once('data', r));
          for (let i = 0; i < 4; i++) {
            await inst.start();
            await inst.stop();
          }
        } finally {
          swapper.kill('SIGKILL');
        }
        const given = names.filter((n) => statSync(join(rootDir, n)).uid !== 0 || mode(join(rootDir, n)) !== 0o640);
        expect(given).toEqual([]);
        expect([statSync(rootDir).uid, mode(rootDir)]).toEqual([0, 0o700]);
      });

    it('a spool root still holds (a daemon ran as root) is given to the daemon user, but for files with a second name', async () => {
      const inst = await setup(u);
      const dir = join(inst.dir, 'spool');
      mkdirSync(join(dir, 'bodies'), { recursive: true, mode: 0o700 });
      const linked = join(inst.dir, 'root-linked');
      writeFileSync(linked, 'x', { mode: 0o644 });
      linkSync(linked, join(dir, 'old-file'));
      linkSync(linked, join(dir, 'bodies', '1xVaAA-000005-00'));
      await inst.start();
      expect([statSync(linked).uid, mode(linked)]).toEqual([0, 0o644]);
      expect(statSync(dir).uid).toBe(u.uid);
      expect(statSync(join(dir, 'bodies')).uid).toBe(u.uid);
    });

    it('the main log is opened after the drop: a hard link at log/mainlog to a file of root\'s is neither given away nor written', async () => {
      const inst = await setup(u);
      await inst.start();
      await inst.stop();
      expect(statSync(join(inst.dir, 'log')).uid).toBe(u.uid); // the daemon user's folder
      const other = join(inst.dir, 'other');
      writeFileSync(other, 'root only\n', { mode: 0o600 });
      const log = join(inst.dir, 'log/mainlog');
      rmSync(log, { force: true });
      linkSync(other, log); // what the user can do with protected_hardlinks=0
      await inst.start();
      await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: x\n\nx\n');
      await sink!.waitFor(1);
      await waitUntil('the failed write on stderr', () => /cannot write .*mainlog/.test(inst.daemonStderr));
      expect([statSync(other).uid, statSync(other).gid, mode(other), readFileSync(other, 'utf8')]).toEqual([0, 0, 0o600, 'root only\n']);
    });

    it("a user's sendmail succeeds with the daemon down; the daemon delivers it as theirs, whatever the file claims", async () => {
      const inst = await setup(u);
      await inst.start();
      await inst.stop();
      const r = await runAs(u, 'sendmail', ['-C', inst.config, 'ops@example.org'], 'Subject: down\n\nbody\n');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // A hand-made file that claims to be root's: the owner decides.
      const forged = await writeAs(u, join(inst.dir, 'spool-maildrop', randomBytes(16).toString('hex')),
        dropFile({ v: 1, user: 'root', U: 'root', recipients: ['ops@example.org'], extract: false, protocol: 'local' }, 'Subject: forged\n\nx\n'), 0o644);
      expect(forged.code).toBe(0);
      await inst.start();
      await sink!.waitFor(2);
      for (const m of sink!.messages) {
        expect(m.from).toBe(`${u.name}@example.org`);
        expect(m.data).toMatch(new RegExp(`^Received: from ${u.name} by web1\\.example\\.org with local`));
      }
      const arrivals = inst.log().match(/<= .*/g) ?? [];
      expect(arrivals).toHaveLength(2);
      for (const a of arrivals) expect(a).toMatch(new RegExp(`^<= ${u.name}@example\\.org U=${u.name} P=local S=\\d+`));
      expect(readdirSync(join(inst.dir, 'spool-maildrop')).filter((n) => !n.startsWith('.'))).toEqual([]);
    });

    it("a user's sendmail is delivered at once with the daemon up; -f is kept, U= is theirs; the configuration is not validated again", async () => {
      const inst = await setup(u);
      await inst.start();
      // The first start wrote the port it got into the file: start again on the final file.
      await inst.stop();
      await inst.start();
      // The daemon keeps a copy of the validated configuration in the maildrop, which
      // users may read by name (they cannot enter the spool folder): no zod for them.
      const copy = statSync(join(inst.dir, 'spool-maildrop/.config.cache.json'));
      expect([0, u.uid]).toContain(copy.uid); // root's (the start's check) or the daemon's
      expect(copy.mode & 0o777).toBe(0o644);
      const freshBefore = bundleFresh();
      const r = await runAs(u, 'sendmail', ['-C', inst.config, '-f', 'app@example.org', 'ops@example.org'], 'Subject: up\n\nbody\n',
        { NODE_DEBUG: 'esm,module' });
      // The fast start: the C front end (no node at all: NODE_DEBUG has nothing to say; it
      // reads the settings the daemon wrote beside the cache), else the bundled submission
      // alone, never the ES modules of main.js or the validator.
      if (command('sendmail', [])[0].endsWith('dist/sendmail')) expect(r.stderr).toBe('');
      else if (freshBefore && bundleFresh()) { // not rebuilt by `npx tsc` meanwhile
        expect(r.stderr).toMatch(/load "[^"]*\/dist\/cli\/submit\.cjs"/);
        expect(r.stderr).not.toMatch(/cli\/main\.js/);
      }
      expect(r.stderr).not.toMatch(/config\/validate\.js/);
      expect(r.code).toBe(0);
      await sink!.waitFor(1);
      expect(sink!.messages[0]!.from).toBe('app@example.org');
      await inst.waitForLog(new RegExp(`<= app@example\\.org U=${u.name} P=local`));
    });

    it("a user's sendmail -bs session is delivered as theirs, with the listener's limits", async () => {
      const inst = await setup(u);
      await inst.start();
      const rcpts = Array.from({ length: 6 }, (_, i) => `RCPT TO:<r${i}@example.org>\r\n`).join('');
      const r = await runAs(u, 'sendmail', ['-C', inst.config, '-bs'],
        `EHLO me\r\nMAIL FROM:<>\r\n${rcpts}DATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n`);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split('\r\n');
      expect(lines.filter((l) => l === '250 2.1.5 Accepted')).toHaveLength(5); // max_recipients = 5
      expect(lines).toContain('452 4.5.3 Too many recipients');
      expect(lines).toContain('250 2.0.0 OK queued');
      await sink!.waitFor(1);
      expect(sink!.messages[0]!.to).toHaveLength(5);
      await inst.waitForLog(new RegExp(`<= <> U=${u.name} P=local-esmtp S=\\d+`));
      expect(sink!.messages[0]!.data).toMatch(new RegExp(`^Received: from ${u.name} by web1\\.example\\.org with local-esmtp`));
    });

    it("hand-made maildrop files (a hard link to root's file, a symlink, an unfinished file) never pass as root's mail", async () => {
      const inst = await setup(u);
      await inst.start();
      await inst.stop();
      const drop = join(inst.dir, 'spool-maildrop');
      // A complete-looking drop file of root's, where the user may link to it.
      const rootFile = join(inst.dir, 'root-drop');
      writeFileSync(rootFile, dropFile({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' }, 'Subject: roots\n\nx\n'), { mode: 0o666 });
      chmodSync(rootFile, 0o666);
      const link = await runAs(u, undefined, ['-e', `require('fs').linkSync(${JSON.stringify(rootFile)}, ${JSON.stringify(join(drop, 'a'.repeat(32)))})`]);
      expect(link.code).toBe(0);
      const sym = await runAs(u, undefined, ['-e', `require('fs').symlinkSync(${JSON.stringify(rootFile)}, ${JSON.stringify(join(drop, 'b'.repeat(32)))})`]);
      expect(sym.code).toBe(0);
      const unfinished = await writeAs(u, join(drop, 'c'.repeat(32)),
        dropFile({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' }, 'Subject: unfinished\n\nx\n'), 0o600);
      expect(unfinished.code).toBe(0);
      const junk = await writeAs(u, join(drop, 'd'.repeat(32)), 'not a drop file\n', 0o644);
      expect(junk.code).toBe(0);
      // Another user's "configuration copy" (made by root here: nobody may write into the maildrop) is junk too
      // (only root's or the daemon's is kept, and believed).
      writeFileSync(join(drop, '.config.cache.json.x'), '{}', { mode: 0o644 });
      chownSync(join(drop, '.config.cache.json.x'), nobody().uid, nobody().gid);
      expect((await writeAs(nobody(), join(drop, 'e'.repeat(32)), '{}', 0o644)).code).not.toBe(0);
      await inst.start();
      // One line per owner, naming each file and why.
      await inst.waitForLog(/maildrop: removed a{32} from root \(uid 0\): a file with 2 links/);
      const theirs = (await inst.waitForLog(new RegExp(`maildrop: removed 2 files from ${u.name} \\(uid ${u.uid}\\): .*`)))[0]!;
      expect(theirs).toContain(`${'b'.repeat(32)} (a symbolic link)`);
      expect(theirs).toContain(`${'d'.repeat(32)} (the envelope line is not JSON)`);
      await inst.waitForLog(/maildrop: removed \.config\.cache\.json\.x from nobody \(uid \d+\): no envelope line/);
      // The unfinished file waits (a day) for its writer; nothing was delivered.
      expect(existsSync(join(drop, 'c'.repeat(32)))).toBe(true);
      expect(existsSync(rootFile)).toBe(true);
      expect(inst.log()).not.toMatch(/<= /);
      expect(sink!.messages).toHaveLength(0);
    });

    it('a non-admin user gets exit 77 for -bpc, -Mvh, -q and postern-qgrep, sees only their own mail with -bp and -Mrm, and cannot reach the control socket', async () => {
      // The daemon runs as root (no user =): the throwaway user is an outsider, who makes
      // its proof through the setgid helper.
      const inst = await setup();
      installHelper(inst, makeGroup().gid);
      await inst.start();
      const id = (await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: x\n\nx\n')).slice(-16);
      for (const [args, verb] of [[['-bpc'], 'list the queue'], [['-bpu'], 'list the queue'],
        [['-Mvh', id], 'read queued messages'], [['-Mf', id], 'act on queued messages'], [['-q'], 'run the queue'], [['-qf'], 'run the queue']] as const) {
        const r = await runAs(u, 'postern', ['-C', inst.config, ...args]);
        expect(r.code).toBe(77);
        expect(r.stderr).toBe(`postern: permission denied: only root and the spool's owner (root) may ${verb}\n`);
      }
      const q = await runAs(u, 'postern-qgrep', ['-C', inst.config, '-c']);
      expect(q.code).toBe(77);
      expect(q.stderr).toBe("postern-qgrep: permission denied: only root and the spool's owner (root) may list the queue\n");
      // -bp, mailq and -Mrm: their own messages only (none here; root's is not theirs to see or remove).
      for (const [name, args] of [['mailq', []], ['sendmail', ['-bp']], ['postern', ['-bp']]] as const) {
        const r = await runAs(u, name, ['-C', inst.config, ...args]);
        expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
      }
      const rm = await runAs(u, 'postern', ['-C', inst.config, '-Mrm', id]);
      expect(rm.stdout).toBe(`Spool data file for ${id} does not exist\n`);
      expect(rm.code).toBe(1);
      // -bt, -bV and -bP stay open to everyone.
      for (const args of [['-bt', 'ops@example.org'], ['-bV'], ['-bP', 'qualify_domain']]) {
        expect((await runAs(u, 'postern', ['-C', inst.config, ...args])).code).toBe(0);
      }
      // The message went its way untouched; the control socket is out of reach.
      await sink!.waitFor(1);
      expect(inst.log()).not.toMatch(/removed by/);
      const sock = join(inst.dir, 'spool/postern.sock');
      const conn = await runAs(u, undefined, ['-e',
        `require('net').createConnection(${JSON.stringify(sock)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`]);
      expect(conn.stdout.trim()).toBe('EACCES');
    });

    it('a user lists and removes only their own messages through the daemon, proven by a file of theirs; forged proofs are refused; exit 75 with no daemon', async () => {
      const made: TestUser[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const name = `pt${randomBytes(4).toString('hex')}`;
          execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', name]);
          made.push({ name, uid: Number(execFileSync('id', ['-u', name]).toString()), gid: Number(execFileSync('id', ['-g', name]).toString()) });
        }
        const [a, b] = made as [TestUser, TestUser];
        const inst = await setup(u); // the daemon runs as u; a and b are outsiders, who write through the helper
        installHelper(inst, makeGroup().gid);
        await inst.start(['-q1h']);
        const drop = join(inst.dir, 'spool-maildrop');
        const sock = join(drop, '.postern.sock');
        expect(mode(sock)).toBe(0o666);
        expect(statSync(sock).uid).toBe(u.uid);
        // Queued only (-odq), so both stay in the queue.
        for (const who of [a, b]) {
          const r = await runAs(who, 'sendmail', ['-C', inst.config, '-odq', 'ops@example.org'], `Subject: from ${who.name}\n\nx\n`);
          expect(r.code).toBe(0);
        }
        const idOf = async (who: TestUser) => /(\S+) <= /.exec((await inst.waitForLog(new RegExp(`^.* <= .* U=${who.name} .*$`)))[0]!)![1]!;
        const idA = await idOf(a);
        const idB = await idOf(b);

        const listA = await runAs(a, 'mailq', ['-C', inst.config]);
        expect(listA.code).toBe(0);
        expect(listA.stderr).toBe('');
        expect(listA.stdout).toMatch(new RegExp(`^ *\\d+m +\\S+ ${idA} <${a.name}@example\\.org>\n +ops@example\\.org\n\n$`));
        expect((await runAs(b, 'postern', ['-C', inst.config, '-bp'])).stdout).toContain(idB);
        expect((await runAs(b, 'postern', ['-C', inst.config, '-bp'])).stdout).not.toContain(idA);

        // a's -Mrm of b's message: as if it did not exist; b's stays.
        const notTheirs = await runAs(a, 'postern', ['-C', inst.config, '-Mrm', idB]);
        expect(notTheirs).toEqual({ code: 1, stdout: `Spool data file for ${idB} does not exist\n`, stderr: '' });
        const mixed = await runAs(a, 'postern', ['-C', inst.config, '-Mrm', idB, idA]);
        expect(mixed.stdout).toBe(`Spool data file for ${idB} does not exist\nMessage ${idA} has been removed\n`);
        expect(mixed.code).toBe(1);
        await inst.waitForLog(new RegExp(`${idA} removed by ${a.name}$`));
        expect(inst.log()).not.toMatch(new RegExp(`${idB} removed`));
        const all = await runAs(u, 'postern', ['-C', inst.config, '-bp']); // the daemon's user: an admin
        expect(all.stdout).toContain(idB);
        expect(all.stdout).not.toContain(idA);
        expect((await runAs(a, 'mailq', ['-C', inst.config])).stdout).toBe('');

        // Forged proofs: sent by a straight to the socket, each refused.
        const ask = (proof: string) => runAs(a, undefined, ['-e',
          `const s = require('net').createConnection(${JSON.stringify(sock)}); s.on('connect', () => s.write(JSON.stringify({ op: 'own', action: 'remove', proof: ${JSON.stringify(proof)}, ids: [${JSON.stringify(idB)}] }) + '\\n')); s.setEncoding('utf8'); let d = ''; s.on('data', (x) => (d += x)); s.on('end', () => process.stdout.write(d));`]);
        const proof = () => `.auth-${randomBytes(16).toString('hex')}`;
        // Users cannot put anything into the maildrop themselves (maildrop-identity.test.ts):
        // root makes the forgeries, to check the daemon's own checks. b's fresh empty
        // file, which a symlink of a's points at and root hard-links in.
        const byRoot = (path: string, who: TestUser) => {
          writeFileSync(path, '', { mode: 0o600 });
          chownSync(path, who.uid, who.gid);
        };
        const bFile = join(drop, proof());
        byRoot(bFile, b);
        const sym = proof();
        symlinkSync(bFile, join(drop, sym));
        lchownSync(join(drop, sym), a.uid, a.gid);
        const hard = proof();
        linkSync(bFile, join(drop, hard));
        // a stale one of b's (two minutes old)
        const stale = proof();
        byRoot(join(drop, stale), b);
        const old = new Date(Date.now() - 120_000);
        utimesSync(join(drop, stale), old, old);
        for (const p of [sym, hard, stale, bFile.slice(drop.length + 1).replace('.auth-', '.auth-x'), '../spool/control.key']) {
          expect(JSON.parse((await ask(p)).stdout)).toEqual({ ok: false, error: 'not permitted' });
        }
        expect((await ask('not json')).stdout).toMatch(/"ok":false/);
        expect(inst.log()).not.toMatch(new RegExp(`${idB} removed`));
        expect((await runAs(u, 'postern', ['-C', inst.config, '-bp'])).stdout).toContain(idB);
        // The pickup left the socket alone.
        expect(existsSync(sock)).toBe(true);

        // With the daemon down: one sentence, exit 75.
        await inst.stop();
        const down = await runAs(a, 'mailq', ['-C', inst.config]);
        expect(down.stderr).toBe('mailq: only the running daemon can list your own messages; try again later\n');
        expect(down.code).toBe(75);
        const downRm = await runAs(a, 'postern', ['-C', inst.config, '-Mrm', idB]);
        expect(downRm.code).toBe(75);
        expect(readdirSync(drop).filter((n) => n.startsWith('.auth-') && n !== bFile.slice(drop.length + 1))).toEqual([]);
      } finally {
        for (const m of made) execFileSync('userdel', [m.name], { stdio: 'ignore' });
      }
    });

    it('with user = set, that user is an admin and others are told its name', async () => {
      const inst = await setup(u);
      await inst.start();
      expect((await runAs(u, 'postern', ['-C', inst.config, '-bpc'])).stdout).toBe('0\n');
      const r = await runAs(nobody(), 'postern', ['-C', inst.config, '-bpc']);
      expect(r.code).toBe(77);
      expect(r.stderr).toBe(`postern: permission denied: only root and the ${u.name} user may list the queue\n`);
    });

    it('opens a spool left by the previous postern (0755 folder, root-owned 0644 files) and delivers what it holds', async () => {
      const inst = await setup(u);
      const { LmdbSpool } = await import('../../src/spool/lmdb-spool.js');
      const dir = join(inst.dir, 'spool');
      const spool = LmdbSpool.open(dir);
      await spool.admit({ id: '1xVaAA-000002-00', sender: 'old@example.org', recipients: ['ops@example.org'], arrival: Date.now(),
        protocol: 'local', user: 'root', headers: 'Subject: old\n', body: [Buffer.from('x\n')] });
      await spool.close();
      chmodSync(dir, 0o755);
      for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
      chownSync(dir, 0, 0);
      await inst.start();
      await sink!.waitFor(1);
      expect(sink!.messages[0]!.from).toBe('old@example.org');
      expect(mode(dir)).toBe(0o700);
      expect(statSync(join(dir, 'spool.mdb')).uid).toBe(u.uid);
      expect(mode(join(dir, 'spool.mdb'))).toBe(0o600);
    });

    it('a big body file left by a daemon run as root is given to the daemon user and delivered', async () => {
      const inst = await setup(u);
      const { BIG, LmdbSpool } = await import('../../src/spool/lmdb-spool.js');
      const dir = join(inst.dir, 'spool');
      const spool = LmdbSpool.open(dir);
      const body = Buffer.from('big body line\n'.repeat(Math.ceil((BIG + 1) / 14)));
      const w = spool.incoming('1xVaAA-000003-00');
      await w.write(body);
      await w.commit({ sender: 'root@example.org', recipients: ['ops@example.org'], arrival: Date.now(), protocol: 'local',
        user: 'root', headers: 'Subject: big as root\n' });
      await spool.close();
      expect(statSync(join(dir, 'bodies', '1xVaAA-000003-00')).uid).toBe(0);
      await inst.start();
      await sink!.waitFor(1);
      expect(sink!.messages[0]!.raw.includes(body.toString().replace(/\n/g, '\r\n'))).toBe(true);
      expect(statSync(join(dir, 'bodies')).uid).toBe(u.uid);
    });

    it("a user's sendmail before any daemon has made the maildrop exits 75 in one sentence", async () => {
      const inst = await setup(u);
      const r = await runAs(u, 'sendmail', ['-C', inst.config, 'ops@example.org'], 'Subject: early\n\nx\n');
      expect(r.code).toBe(75);
      expect(r.stderr).toBe(`sendmail: the maildrop folder ${join(inst.dir, 'spool-maildrop')} does not exist (has the postern daemon ever run?); try again later\n`);
    });

    it('refuses to start for an unknown user, in one sentence', async () => {
      const inst = await setup({ ...u, name: `${u.name}nx` });
      const r = await inst.run('postern', ['-bd']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`postern: the user "${u.name}nx" (configuration key user) does not exist\n`);
    });
  });
});
