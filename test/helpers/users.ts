// test/helpers/users.ts: throwaway users for tests that need a second user (root only:
// useradd/userdel), and running a bin/ command as one of them.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BIN, type RunResult } from './postern.js';

export const isRoot = process.getuid?.() === 0;

export interface TestUser { name: string; uid: number; gid: number }

/** A new user with no home and no shell; remove it with removeUser(). */
export function makeUser(): TestUser {
  const name = `pt${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', name]);
  return { name, uid: Number(execFileSync('id', ['-u', name]).toString()), gid: Number(execFileSync('id', ['-g', name]).toString()) };
}

export function removeUser(u: TestUser | undefined): void {
  if (u) execFileSync('userdel', [u.name], { stdio: 'ignore' });
}

/** Runs a bin/ command as `u` with `input` on stdin; killed after 30 s. */
export function runAs(u: TestUser, name: string, args: string[], input: string | Buffer = ''): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN(name), ...args], {
      uid: u.uid, gid: u.gid, cwd: '/', stdio: 'pipe', env: { ...process.env, HOME: '/', USER: u.name, LOGNAME: u.name },
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
