// The helper node runs for a user (receive/postdrop.ts) is believed only as root's
// setgid program of the maildrop's group, writable by no one else: its path comes from
// a configuration cache the daemon's user may write, so any other program named there
// is refused before it runs. Needs root (a group, root's files, the setgid bit).
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proofByHelper } from '../../src/receive/postdrop.js';
import { makeGroup, removeUsersAndGroups } from '../helpers/postdrop.js';
import { ROOT } from '../helpers/postern.js';
import { isRoot, makeUser, removeUser, type TestUser } from '../helpers/users.js';

describe.skipIf(!isRoot)('the postdrop helper run for a user (needs root)', () => {
  let dir = '';
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'postern-helper-')); });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    removeUsersAndGroups();
  });

  function setup(): { drop: string; helper: string; marker: string; gid: number } {
    const gid = makeGroup().gid;
    const drop = join(dir, `drop-${gid}`);
    mkdirSync(drop, { mode: 0o1731 });
    chownSync(drop, 0, gid);
    chmodSync(drop, 0o1731);
    return { drop, helper: join(dir, `postdrop-${gid}`), marker: join(dir, `ran-${gid}`), gid };
  }

  it('runs root\'s setgid helper of the maildrop\'s group', () => {
    const { drop, helper, gid } = setup();
    copyFileSync(join(ROOT, 'dist/postdrop'), helper);
    chownSync(helper, 0, gid);
    chmodSync(helper, 0o2755);
    expect(proofByHelper(helper, drop)).toMatch(/^\.auth-[0-9a-f]{32}$/);
  });

  it('refuses, without running it, a program that is not setgid, of another group or owner, or writable by others', () => {
    let owner: TestUser | undefined;
    try {
      owner = makeUser();
      for (const [mode, group, uid] of [[0o755, 'drop', 0], [0o2755, 'other', 0], [0o2777, 'drop', 0], [0o2775, 'drop', 0], [0o2755, 'drop', owner.uid]] as const) {
        refused(mode, group, uid);
      }
    } finally {
      removeUser(owner);
    }
  });

  /** A would-be helper of this mode, group and owner is refused before it runs. */
  function refused(mode: number, group: 'drop' | 'other', uid: number): void {
    {
      const { drop, helper, marker, gid } = setup();
      writeFileSync(helper, `#!/bin/sh\ntouch ${marker}\necho .auth-${'0'.repeat(32)}\n`);
      chownSync(helper, uid, group === 'drop' ? gid : makeGroup().gid);
      chmodSync(helper, mode);
      expect(() => proofByHelper(helper, drop)).toThrow(/is not root's setgid program of the maildrop's group; not run/);
      expect(existsSync(marker)).toBe(false);
    }
  }
});
