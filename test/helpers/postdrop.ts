// test/helpers/postdrop.ts: throwaway users and drop groups (root only), and the setgid
// helper installed for one test instance as the package's postinst installs it
// (root:<group> 2755), named in that instance's configuration. Callers remove what they
// made with removeUsersAndGroups() in an afterAll/finally, pass or fail.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { command, ROOT, type Instance, type RunResult } from './postern.js';

export interface TestUser { name: string; uid: number; gid: number }

const made = { users: [] as string[], groups: [] as string[] };

/** A new system group; its gid. */
export function makeGroup(): { name: string; gid: number } {
  const name = `ptg${randomBytes(4).toString('hex')}`;
  execFileSync('groupadd', [name]);
  made.groups.push(name);
  return { name, gid: Number(execFileSync('getent', ['group', name]).toString().split(':')[2]) };
}

/** A new user with a group of its own (and `groups` as supplementary groups). */
export function makeUser(groups: string[] = []): TestUser {
  const name = `pt${randomBytes(4).toString('hex')}`;
  execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', ...(groups.length ? ['-G', groups.join(',')] : []), name]);
  made.users.push(name);
  return { name, uid: Number(execFileSync('id', ['-u', name]).toString()), gid: Number(execFileSync('id', ['-g', name]).toString()) };
}

export function removeUsersAndGroups(): void {
  for (const u of made.users.splice(0)) execFileSync('userdel', [u], { stdio: 'ignore' });
  for (const g of made.groups.splice(0)) {
    try { execFileSync('groupdel', [g], { stdio: 'ignore' }); } catch { /* removed with its user */ }
  }
}

/** Copies the built helper into the instance's folder, root:group 2755, and names it in the config ([spool] postdrop). */
export function installHelper(inst: Instance, group: number): string {
  const path = join(inst.dir, 'postdrop');
  copyFileSync(join(ROOT, 'dist/postdrop'), path);
  chownSync(path, 0, group);
  chmodSync(path, 0o2755);
  writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('[spool]\n', `[spool]\npostdrop = "${path}"\n`));
  return path;
}

/** Runs a postern command (or any program when name is a path; `node -e CODE` when undefined) as another user. */
export function runAs(u: TestUser, name: string | undefined, args: string[], input: string | Buffer = '', env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = name === undefined ? [process.execPath, args] : name.startsWith('/') ? [name, args] : command(name, args);
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
