// receive/maildrop.ts: the maildrop file, Postfix's postdrop adapted: what `sendmail`
// and `sendmail -bs` write into the public drop folder (mode 1733) and what the pickup
// reads back. One file per message: a JSON line with the envelope as the caller gave
// it (never an identity: the file's owner is the submitter), then the message bytes.
// The writer makes the file complete (mode 0644) only after its bytes are synced.
// Light on purpose (node:fs and node:crypto only): sendmail loads it.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const DROP_VERSION = 1;
/** Room for the JSON line on top of max_message_size (Postfix's envelope allowance). */
export const ENVELOPE_ALLOWANCE = 1024 * 1024;
/** A file still mode 0600 after this long was abandoned by its writer. */
export const INCOMPLETE_AGE = 24 * 3_600_000;

export interface DropEnvelope {
  v: number;
  /** The envelope sender exactly as given (-f, MAIL FROM), absent for the default. */
  sender?: string;
  recipients: string[];
  /** sendmail -t */
  extract: boolean;
  fullName?: string;
  queueOnly?: boolean;
  protocol: 'local' | 'local-esmtp';
}

export class DropError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/** Names are 128 random bits: unguessable, and the folder cannot be listed by users. */
export function dropName(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Writes one complete drop file and returns its name. Never through a link (O_EXCL,
 * O_NOFOLLOW); synced before the mode says "complete", synced again after.
 */
export function writeDropFile(dir: string, envelope: DropEnvelope, message: Buffer | Buffer[]): string {
  const name = dropName();
  const path = join(dir, name);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new DropError(dropFailure(dir, err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code);
  }
  try {
    const parts = [Buffer.from(JSON.stringify(envelope) + '\n', 'utf8'), ...(Array.isArray(message) ? message : [message])];
    for (const part of parts) {
      for (let off = 0; off < part.length;) off += writeSync(fd, part, off, part.length - off);
    }
    fsyncSync(fd);
    fchmodSync(fd, 0o644);
    fsyncSync(fd);
  } catch (err) {
    try {
      closeSync(fd);
    } catch { /* reported below */ }
    // An incomplete file (still 0600) is ignored by the pickup and removed after a day.
    throw new DropError(dropFailure(dir, err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code);
  }
  closeSync(fd);
  syncFolder(dir);
  return name;
}

/** Syncs the folder entry where we may (root, the daemon's user); others rely on the file's sync. */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch { /* not readable by us (mode 1733): fine */ }
}

function dropFailure(dir: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT': return `the maildrop folder ${dir} does not exist (has the postern daemon ever run?)`;
    case 'EACCES': case 'EPERM': return `the maildrop folder ${dir} is not writable by this user`;
    case 'ENOSPC': case 'EDQUOT': return `no space left for the message in ${dir}`;
    default: return `cannot write the message into ${dir} (${err.code ?? err.message})`;
  }
}

/** Splits a drop file into its envelope and message; a string says what is wrong with it. */
export function parseDropFile(data: Buffer, limits: { maxRecipients: number }): { envelope: DropEnvelope; message: Buffer } | string {
  const nl = data.indexOf(10);
  if (nl < 0 || nl > ENVELOPE_ALLOWANCE) return 'no envelope line';
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8', 0, nl));
  } catch {
    return 'the envelope line is not JSON';
  }
  if (typeof raw !== 'object' || raw === null) return 'the envelope line is not an object';
  const e = raw as Record<string, unknown>;
  if (e.v !== DROP_VERSION) return `unknown format version ${JSON.stringify(e.v)}`;
  const str = (v: unknown): v is string => typeof v === 'string' && v.length <= 1024 && !/[\0\r\n]/.test(v);
  if (e.sender !== undefined && !str(e.sender)) return 'bad sender';
  if (!Array.isArray(e.recipients) || !e.recipients.every(str)) return 'bad recipients';
  if (e.recipients.length > limits.maxRecipients) return `more than ${limits.maxRecipients} recipients`;
  if (e.fullName !== undefined && !str(e.fullName)) return 'bad full name';
  if (e.protocol !== 'local' && e.protocol !== 'local-esmtp') return 'bad protocol';
  return {
    envelope: {
      v: DROP_VERSION, recipients: e.recipients as string[], extract: e.extract === true, protocol: e.protocol,
      ...(e.sender !== undefined ? { sender: e.sender as string } : {}),
      ...(e.fullName !== undefined ? { fullName: e.fullName as string } : {}),
      ...(e.queueOnly === true ? { queueOnly: true } : {}),
    },
    message: data.subarray(nl + 1),
  };
}
