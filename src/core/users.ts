// core/users.ts: user and group names, read from /etc/passwd and /etc/group directly
// (Node has no getpwnam): name → uid/gid for the daemon's `user`, uid → name for the
// submitter of a maildrop file. A uid with no entry is shown as its number. Reads the
// files at each call: lookups are rare (start-up, one per picked-up file batch).
import { readFileSync } from 'node:fs';

export interface UserEntry {
  name: string;
  uid: number;
  gid: number;
}

function rows(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

function entry(r: string[]): UserEntry | undefined {
  const uid = Number(r[2]);
  const gid = Number(r[3]);
  if (!r[0] || !Number.isInteger(uid) || !Number.isInteger(gid) || r[2] === '' || r[3] === '') return undefined;
  return { name: r[0], uid, gid };
}

export function userByName(name: string, passwd = '/etc/passwd'): UserEntry | undefined {
  for (const r of rows(passwd)) if (r[0] === name) return entry(r);
  return undefined;
}

/**
 * The full name of a login as Exim takes it from the passwd entry (Debian's
 * gecos_pattern `^([^,:]*)`: the GECOS field up to its first comma), with `&` standing
 * for the login capitalised; undefined when there is none.
 */
export function gecosName(name: string, passwd = '/etc/passwd'): string | undefined {
  const r = rows(passwd).find((x) => x[0] === name);
  const first = (r?.[4] ?? '').split(',')[0]?.trim() ?? '';
  const full = first.replace(/&/g, name.charAt(0).toUpperCase() + name.slice(1));
  return full || undefined;
}

export function userById(uid: number, passwd = '/etc/passwd'): UserEntry | undefined {
  for (const r of rows(passwd)) if (Number(r[2]) === uid && r[2] !== '') return entry(r);
  return undefined;
}

/** The login of a uid, or the uid as a number when /etc/passwd has no entry for it. */
export function userName(uid: number, passwd = '/etc/passwd'): string {
  return userById(uid, passwd)?.name ?? String(uid);
}

export function groupByName(name: string, group = '/etc/group'): number | undefined {
  for (const r of rows(group)) if (r[0] === name && r[2] !== '' && Number.isInteger(Number(r[2]))) return Number(r[2]);
  return undefined;
}
