// The daemon's sockets that any local user can reach, under a flood of idle connections
// that reconnect 200 ms after each drop, from another process: the own-messages socket
// (<maildrop>/.postern.sock) still answers a user's `mailq`, and the metrics port a
// scrape; the daemon's open files stay bounded during the flood, and every idle
// connection is closed within seconds of its time-out once the flood stops.
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeBoth, Instance, metricsAt, waitUntil } from '../helpers/postern.js';
import { isRoot, makeUser, removeUser, runAs, type TestUser } from '../helpers/users.js';
import { Sink } from '../helpers/sink.js';
import { installHelper, makeGroup, removeUsersAndGroups } from '../helpers/postdrop.js';

const openFiles = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/**
 * Each step below has its own bound (the flood's start 20 s, three commands of 30 s or
 * scrapes of 60 s, the closing 20 s, the open files 10 s: 230 s at most), and on a
 * loaded machine they add up past vitest's default minute: the steps' bounds decide,
 * not the test's.
 */
const FLOOD_TEST_TIMEOUT = 240_000;

/** The flooder's program: connections that never send a byte, each one the daemon closes opened again after `again` ms. */
const FLOOD = `
const { createConnection } = require('node:net');
const [target, size, again] = JSON.parse(process.argv[1]);
const open = new Set();
let running = true, opened = 0, settled = 0, lived = 0;
function one() {
  const s = typeof target === 'number' ? createConnection(target, '127.0.0.1') : createConnection(target);
  const born = Date.now();
  opened++;
  open.add(s);
  s.on('error', () => {});
  s.on('connect', () => settled++);
  s.on('close', (failed) => {
    if (failed && s.connecting) settled++;
    open.delete(s);
    lived = Math.max(lived, Date.now() - born);
    if (running) setTimeout(() => running && one(), again);
  });
}
for (let i = 0; i < size; i++) one();
process.on('message', () => { running = false; });
setInterval(() => process.send({ opened, settled, held: open.size, lived }), 50);
`;

interface FloodState { opened: number; settled: number; held: number; lived: number }

/**
 * Another process (as `user`, when given) that holds `size` idle connections to
 * `target` (a Unix socket path or a loopback port), reconnecting each one the daemon
 * closes after 200 ms, until stop(). `state` is what it last reported.
 */
class Flood {
  state: FloodState = { opened: 0, settled: 0, held: 0, lived: 0 };
  private readonly child;

  constructor(target: string | number, size: number, user?: TestUser) {
    this.child = spawn(process.execPath, ['-e', FLOOD, JSON.stringify([target, size, 200])], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'], ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    this.child.on('message', (m) => (this.state = m as FloodState));
  }

  /** No more reconnections; the open ones stay for the daemon to close. */
  stop(): void {
    this.child.send('stop');
  }

  destroy(): void {
    this.child.kill('SIGKILL');
  }
}

describe('limits of the sockets any local user can reach', () => {
  afterAll(() => removeUsersAndGroups());
  let p: Instance | undefined;
  let sink: Sink | undefined;
  let flood: Flood | undefined;
  afterEach(async () => {
    flood?.destroy();
    flood = undefined;
    await closeBoth(sink, p);
    p = undefined;
    sink = undefined;
  });

  async function setup(): Promise<Instance> {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port], '[metrics]\nlisten = "127.0.0.1:0"\n');
    chmodSync(p.dir, 0o711); // the throwaway user reaches the config and the maildrop
    return p;
  }

  describe.skipIf(!isRoot)('with a throwaway user (needs root: useradd)', () => {
    let u: TestUser;
    beforeAll(() => {
      u = makeUser();
    });
    afterAll(() => removeUser(u));

    it('a flood of idle connections to the own-messages socket stops no user\'s mailq; open files stay bounded; idle ones close after the time-out', async () => {
      const inst = await setup();
      installHelper(inst, makeGroup().gid); // the user writes into the maildrop through the setgid helper
      await inst.start(['-q1h']);
      const sent = await runAs(u, 'sendmail', ['-C', inst.config, '-odq', 'ops@example.org'], 'Subject: mine\n\nx\n');
      expect(sent.code).toBe(0);
      const id = /(\S+) <= /.exec((await inst.waitForLog(new RegExp(`^.* <= .* U=${u.name} .*$`)))[0]!)![1]!;
      const pid = inst.daemon!.pid!;
      const before = openFiles(pid);
      const sock = join(inst.dir, 'spool-maildrop/.postern.sock');
      flood = new Flood(sock, 200, u);
      // The flood is on: more connections opened than the daemon would hold at once.
      await waitUntil('the flood under way', () => flood!.state.settled >= 200 && flood!.state.opened >= 400, 20_000);
      let most = 0;
      for (let i = 0; i < 3; i++) {
        const r = await runAs(u, 'mailq', ['-C', inst.config]);
        most = Math.max(most, openFiles(pid) - before);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(id);
      }
      // One open file per connection at most 64 at once, however many the flood opens.
      expect(most).toBeLessThanOrEqual(64 + 8);
      flood.stop();
      // Every idle connection is closed by the daemon: the first byte is due within 2 s.
      await waitUntil('every idle connection closed by the daemon', () => flood!.state.held === 0, 15_000);
      expect(flood.state.lived).toBeLessThan(5_000);
      await waitUntil('the daemon\'s open files back where they were', () => openFiles(pid) <= before + 2, 10_000);
    }, FLOOD_TEST_TIMEOUT);
  });

  it('a flood of idle connections to the metrics port stops no scrape; open files stay bounded; idle ones close after the time-out', async () => {
    const inst = await setup();
    await inst.start(['-q1h']);
    const at = metricsAt(inst)!;
    const port = Number(at.slice(at.lastIndexOf(':') + 1));
    const pid = inst.daemon!.pid!;
    const before = openFiles(pid);
    flood = new Flood(port, 300);
    await waitUntil('the flood under way', () => flood!.state.settled >= 300 && flood!.state.opened >= 600, 20_000);
    let most = 0;
    for (let i = 0; i < 3; i++) {
      // A fresh connection each time (no keep-alive reuse), as a scraper after a restart.
      const res = await fetch(`http://${at}/metrics`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(60_000) });
      most = Math.max(most, openFiles(pid) - before);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('postern_queue_messages{state="deferred"}');
    }
    expect(most).toBeLessThanOrEqual(32 + 8);
    flood.stop();
    // The request is due within 5 s of the connection.
    await waitUntil('every idle connection closed by the daemon', () => flood!.state.held === 0, 20_000);
    expect(flood.state.lived).toBeLessThan(8_000);
    await waitUntil('the daemon\'s open files back where they were', () => openFiles(pid) <= before + 2, 10_000);
  }, FLOOD_TEST_TIMEOUT);
});
