// admin/own-commands.ts: `mailq`/`-bp` and `-Mrm` for a user who is no admin: their own
// messages only, through the daemon's public socket `<maildrop>/.postern.sock` (the
// spool is 0700). Proves who it is with an empty `.auth-<32 hex>` file of its own in the
// maildrop (see admin/own-server.ts), made by the setgid helper (receive/postdrop.ts)
// when the maildrop does not let this user in; with no daemon listening, one sentence, exit 75.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { failure, tempError, usage } from '../core/exit.js';
import { requestAt } from './control-client.js';
import { BUSY_ERROR, ownSocketPath, type OwnReply } from './own-server.js';
import { PROOF_PREFIX } from '../receive/maildrop.js';
import { postdropPath, proofByHelper } from '../receive/postdrop.js';
import { isMessageId } from '../spool/message-id.js';

type Out = (s: string) => void;

const TIMEOUT = 60_000;
/** Exchanges tried when the daemon drops the connection before reading the request. */
const ATTEMPTS = 3;

function ask(maildrop: string, header: object): Promise<OwnReply | undefined> {
  return requestAt<OwnReply>(ownSocketPath(maildrop), header, TIMEOUT);
}

/**
 * Makes the proof file, sends the request, and removes the proof if the daemon did not.
 * A proof still there after a failed exchange says the daemon never read the request
 * (a connection dropped at its cap, under a flood of others): then it is asked again.
 */
async function own(config: Config, action: 'list' | 'remove', ids?: string[]): Promise<OwnReply & { ok: true }> {
  const maildrop = config.spool.maildrop;
  const what = action === 'list' ? 'list' : 'remove';
  const later = tempError(`only the running daemon can ${what} your own messages; try again later`);
  // No socket, no daemon: no proof made (one the helper made is not ours to remove).
  if (!existsSync(ownSocketPath(maildrop))) throw later;
  let reply: OwnReply | undefined;
  for (let attempt = 1; ; attempt++) {
    let proof = `${PROOF_PREFIX}${randomBytes(16).toString('hex')}`;
    try {
      closeSync(openSync(join(maildrop, proof), constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o600));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EPERM') throw later; // no maildrop: no daemon has run
      try {
        proof = proofByHelper(postdropPath(config.spool), maildrop); // a user the maildrop does not let in
      } catch {
        throw later;
      }
    }
    const path = join(maildrop, proof);
    let unread = false;
    try {
      reply = await ask(maildrop, { op: 'own', action, proof, ...(ids ? { ids } : {}) });
    } catch (err) {
      unread = existsSync(path);
      if (!unread || attempt >= ATTEMPTS) throw tempError(`${(err as Error).message}; try again later`);
    } finally {
      try {
        unlinkSync(path);
      } catch { /* the daemon removed it */ }
    }
    if (!unread) break;
    await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
  }
  if (!reply) throw later;
  if (!reply.ok) throw reply.error === BUSY_ERROR ? tempError(`${reply.error}; try again later`) : failure(`the daemon refused: ${reply.error}`);
  return reply;
}

/** A non-admin's `-bp` (mode) or `-Mrm ID...`: their own messages only. */
export async function ownMessages(mode: '-bp' | '-Mrm', args: string[], config: Config, out: Out): Promise<number> {
  if (mode === '-bp') {
    const reply = await own(config, 'list');
    out(reply.text ?? '');
    return 0;
  }
  if (args.length === 0) throw usage('no message ID given after -Mrm');
  for (const id of args) if (!isMessageId(id)) throw usage(`malformed message id ${id} after -Mrm option`);
  const reply = await own(config, 'remove', args);
  let status = 0;
  args.forEach((id, i) => {
    const r = reply.results?.[i] ?? 'gone';
    if (r === 'done') out(`Message ${id} has been removed\n`);
    else if (r === 'locked') out(`Message ${id} is locked\n`);
    else out(`Spool data file for ${id} does not exist\n`);
    if (r !== 'done') status = 1;
  });
  return status;
}
