// test/helpers/users.ts: throwaway users for tests that need a second user (root only:
// useradd/userdel), and running a bin/ command as one of them.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

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

/** Runs a bin/ command as `u` with `input` on stdin; killed after 30 s (postdrop.ts's, which also runs any program). */
export { runAs } from './postdrop.js';
