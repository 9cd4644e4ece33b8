// Signals as an Exim administrator sends them: USR1 (out of habit) reopens the main
// log and never opens Node's inspector (which would give any local user a root
// shell); HUP in the first moments after start, before the daemon is ready, does not
// kill it; HUP after a rotation reopens the log too.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';

/** The TCP ports process `pid` listens on: its sockets' inodes found in /proc/net/tcp{,6}. */
function listenPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1] as string);
    } catch { /* closed meanwhile */ }
  }
  const ports = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && inodes.has(cols[9] as string)) ports.add(parseInt((cols[1] as string).split(':')[1] as string, 16));
    }
  }
  return [...ports].sort((x, y) => x - y);
}

/** Does process `pid` catch `signal` (SigCgt in /proc/PID/status)? */
function catches(pid: number, signal: 'SIGHUP'): boolean {
  const bit = { SIGHUP: 1 }[signal];
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << BigInt(bit - 1))) !== 0n;
  } catch {
    return false;
  }
}

describe('signals', () => {
  let p: Instance | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await p?.cleanup();
    await sink?.close();
    p = sink = undefined;
  });

  it('SIGUSR1 reopens the main log and never starts an inspector', async () => {
    sink = new Sink();
    await sink.listen();
    const inst = new Instance([sink.port]);
    p = inst;
    await inst.start();
    const log = join(inst.dir, 'log/mainlog');
    renameSync(log, `${log}.1`); // logrotate's move
    inst.daemon?.kill('SIGUSR1');
    inst.daemon?.kill('SIGUSR1');
    const id = (await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: after usr1\n\nx\n')).slice(-16);
    await waitUntil('a new main log', () => existsSync(log) && readFileSync(log, 'utf8').includes(`${id} Completed`));
    expect(inst.daemon?.exitCode).toBeNull();
    expect(inst.daemonStderr).not.toMatch(/Debugger listening|inspector/i);
    // Its SMTP listener and nothing else: no inspector (9229 or any other port).
    expect(listenPorts(inst.daemon!.pid!)).toEqual([inst.port]);
  });

  it('a SIGHUP while the daemon is starting does not kill it', async () => {
    sink = new Sink();
    await sink.listen();
    const inst = new Instance([sink.port]);
    p = inst;
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [BIN('postern'), '-C', inst.config, '-bd', '-q1m'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      let exited = false;
      child.on('exit', () => { exited = true; });
      // HUP every few milliseconds from the moment the program catches the signal
      // (its first line; before that, while Node itself boots, the default is Node's
      // and the kernel's, not ours) until the daemon says it is ready.
      await waitUntil('SIGHUP caught', () => exited || catches(child.pid!, 'SIGHUP'), 30_000);
      // The daemon must catch it long before it is ready (it once did only at the end).
      expect(/ready, listening/.test(stderr), `round ${round}: HUP was not caught until the daemon was ready`).toBe(false);
      while (!/ready, listening/.test(stderr) && !exited) {
        child.kill('SIGHUP');
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(exited, `round ${round}: the daemon died: ${stderr}`).toBe(false);
      child.kill('SIGHUP'); // and once more when ready: a reload
      const exit = new Promise((r) => child.on('exit', r));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
    }
  });
});
