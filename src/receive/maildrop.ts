// receive/maildrop.ts: the maildrop file, Postfix's postdrop adapted: what `sendmail`
// and `sendmail -bs` write into the drop folder (mode 1731, the daemon user's, of the
// drop group) and what the pickup reads back. One file per message: a JSON line with
// the envelope as the caller gave it (never an identity: the file's owner is the
// submitter), then the message bytes. The writer makes the file complete (mode 0644)
// only after its bytes are synced. Root and the daemon's user write here directly;
// everyone else through the setgid helper (postdrop.ts). Light (node:fs only): sendmail loads it.
import { join } from 'node:path';

// node:fs by process.getBuiltinModule: an ESM `import` of it builds its whole facade
// (fs/promises, streams, readline: 1.5 ms of sendmail's start).
const { closeSync, constants, fchmodSync, fstatSync, fsyncSync, openSync, readSync, statfsSync, unlinkSync, writeSync } = process.getBuiltinModule('node:fs');

export const DROP_VERSION = 1;
/** The maildrop's names that are no message: the users' socket (admin/own-server.ts) and its proof files. */
export const OWN_SOCKET = '.postern.sock';
export const PROOF_PREFIX = '.auth-';
/** Room for the JSON line on top of max_message_size (Postfix's envelope allowance). */
export const ENVELOPE_ALLOWANCE = 1024 * 1024;
/**
 * Free space a submission must leave on the maildrop's file system (Postfix's
 * queue_minfree): the pickup needs room to copy a message into the spool before it
 * removes the file, so sendmail refuses (75) rather than take the last of it. Twice
 * the spool's reserve (spool/reserve.ts); src/postdrop/postdrop.c has the same figure.
 */
const MINFREE = 2 * 1024 * 1024;

export interface DropEnvelope {
  v: number;
  /** The envelope sender exactly as given (-f, MAIL FROM), absent for the default. */
  sender?: string;
  recipients: string[];
  /** sendmail -t */
  extract: boolean;
  fullName?: string;
  queueOnly?: boolean;
  protocol: 'local' | 'local-smtp' | 'local-esmtp';
}

export class DropError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/**
 * Names are 128 random bits: unguessable, and the folder cannot be listed by users.
 * Read from /dev/urandom (node:crypto would cost sendmail's start more than the write).
 */
function dropName(): string {
  const bits = Buffer.alloc(16);
  try {
    const fd = openSync('/dev/urandom', constants.O_RDONLY);
    try {
      if (readSync(fd, bits, 0, 16, null) === 16) return bits.toString('hex');
    } finally {
      closeSync(fd);
    }
  } catch { /* no /dev (a chroot): node:crypto */ }
  return process.getBuiltinModule('node:crypto').randomBytes(16).toString('hex');
}

/**
 * One drop file being written: made new (O_EXCL, never through a link, mode 0600),
 * the envelope line first, then the message as it comes; finish() syncs it, marks it
 * complete (0644) and syncs again. Errors are DropErrors saying what to tell the user.
 */
export class DropWriter {
  readonly name = dropName();
  private readonly path: string;
  private fd: number | undefined;

  constructor(private readonly dir: string, envelope: DropEnvelope, size = 0) {
    this.path = join(dir, this.name);
    try {
      roomFor(dir, size);
      this.fd = openSync(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw new DropError(dropFailure(dir, err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code);
    }
    this.write(envelopeLine(envelope));
  }

  write(part: Buffer): void {
    try {
      for (let off = 0; off < part.length;) off += writeSync(this.fd!, part, off, part.length - off);
    } catch (err) {
      this.abort();
      throw new DropError(dropFailure(this.dir, err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code);
    }
  }

  finish(): string {
    try {
      fsyncSync(this.fd!);
      // The folder's entry is synced before the file is marked complete: the mark wakes
      // the daemon (its watch on the folder), whose own commit then meets only our last sync.
      syncFolder(this.dir);
      // The pickup removes a file left unfinished too long: then it is not there to be
      // taken (checked before the mark: once marked, the pickup may take it at once).
      if (fstatSync(this.fd!).nlink === 0) throw Object.assign(new Error('removed before it was complete'), { code: 'ESTALE' });
      fchmodSync(this.fd!, 0o644);
      fsyncSync(this.fd!);
      closeSync(this.fd!);
      this.fd = undefined;
    } catch (err) {
      this.abort();
      throw new DropError(dropFailure(this.dir, err as NodeJS.ErrnoException), (err as NodeJS.ErrnoException).code);
    }
    return this.name;
  }

  /** Removes what was written (the folder is sticky, but the file is ours). */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch { /* gone with the file */ }
      this.fd = undefined;
    }
    try {
      unlinkSync(this.path);
    } catch { /* an incomplete file left behind is removed by the pickup once it stops changing */ }
  }
}

/** The first line of a drop file. */
export function envelopeLine(envelope: DropEnvelope): Buffer {
  return Buffer.from(JSON.stringify(envelope) + '\n', 'utf8');
}

/** Refuses (ENOSPC) a message that would leave less than MINFREE on the maildrop's file system. */
export function roomFor(dir: string, size: number): void {
  let free: number;
  try {
    const st = statfsSync(dir);
    free = st.bavail * st.bsize;
  } catch {
    return; // the open says what is wrong with the folder
  }
  if (free < size + MINFREE) throw Object.assign(new Error('below the free-space minimum'), { code: 'ENOSPC' });
}

/** Writes one complete drop file and returns its name. */
export function writeDropFile(dir: string, envelope: DropEnvelope, message: Buffer | Buffer[]): string {
  const parts = Array.isArray(message) ? message : [message];
  const w = new DropWriter(dir, envelope, parts.reduce((n, b) => n + b.length, 0));
  for (const part of parts) w.write(part);
  return w.finish();
}

/** Syncs the folder's entries where we may (root, the daemon's user); others rely on the file's sync. */
export function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch { /* not readable by us: fine */ }
}

function dropFailure(dir: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT': return `the maildrop folder ${dir} does not exist (has the postern daemon ever run?)`;
    case 'EACCES': case 'EPERM': return `the maildrop folder ${dir} is not writable by this user`;
    case 'ENOSPC': case 'EDQUOT': return `not enough free space for the message in ${dir}`;
    case 'ESTALE': return `the message file in ${dir} was removed before it was complete (written too slowly)`;
    default: return `cannot write the message into ${dir} (${err.code ?? err.message})`;
  }
}

/** The envelope line of a drop file (without its LF); a string says what is wrong with it. */
export function parseEnvelope(line: string, limits: { maxRecipients: number }): DropEnvelope | string {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
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
  if (e.protocol !== 'local' && e.protocol !== 'local-smtp' && e.protocol !== 'local-esmtp') return 'bad protocol';
  return {
    v: DROP_VERSION, recipients: e.recipients as string[], extract: e.extract === true, protocol: e.protocol,
    ...(e.sender !== undefined ? { sender: e.sender as string } : {}),
    ...(e.fullName !== undefined ? { fullName: e.fullName as string } : {}),
    ...(e.queueOnly === true ? { queueOnly: true } : {}),
  };
}
