// admin/own-server.ts: the daemon side of `<maildrop>/.postern.sock`, the public
// socket through which any local user lists and removes the messages they submitted
// themselves (SPEC's exception to "queue commands are for admins"). Node cannot read a
// Unix socket's peer credentials, so the caller proves who it is with a file: it makes
// an empty `.auth-<32 hex>` in the maildrop (1733, so only its maker or the daemon may
// remove it) and sends its name; the file's owner, as the kernel reports it, is the
// caller. Takes only {op: 'own', action: 'list' | 'remove', proof, ids?}: one bounded
// JSON line, its first byte within 2 s and all of it within 5 s. Fairness: before the
// proof nobody is known, so idle connections give way to new ones (core/conn-guard.ts);
// after it, each uid holds at most PER_USER connections at once.
import { lstatSync, rmSync, unlinkSync } from 'node:fs';
import { JsonLineServer, type Connection } from './line-server.js';
import type { GuardLimits } from '../core/conn-guard.js';
import { join } from 'node:path';
import { isMessageId } from '../spool/message-id.js';
import { userName } from '../core/users.js';
import { OWN_SOCKET } from '../receive/maildrop.js';

const isProofName = (name: string) => /^\.auth-[0-9a-f]{32}$/.test(name);
/** A proof older than this is refused (it may be someone's left-over file). */
const PROOF_AGE = 60_000;
const MAX_REQUEST = 1024 * 1024; // 50,000 IDs
const MAX_IDS = 50_000;
/** Requests of one user being answered at once (a removal may take a while; a big listing, a slow reader). */
export const PER_USER = 4;
export const BUSY_ERROR = 'too many of your requests at once';

export const ownSocketPath = (maildrop: string) => join(maildrop, OWN_SOCKET);

export type OwnReply = { ok: true; text?: string; results?: ('done' | 'gone' | 'locked')[] } | { ok: false; error: string };

export interface OwnHandlers {
  /** The caller's messages in -bp's format. */
  list: (login: string) => string;
  /** Removes those of `ids` whose submitter is `login`; one result per ID ('gone' for others' and unknown ones). */
  remove: (ids: string[], login: string) => Promise<('done' | 'gone' | 'locked')[]>;
}

/** The caller's uid from its proof file, or undefined when it proves nothing; the file is removed either way. */
export function proofOwner(maildrop: string, proof: unknown, now = Date.now()): number | undefined {
  if (typeof proof !== 'string' || !isProofName(proof)) return undefined;
  const path = join(maildrop, proof);
  let uid: number | undefined;
  try {
    const st = lstatSync(path);
    const fresh = (t: number) => now - t < PROOF_AGE && t - now < 5_000;
    // A symlink, a hard link (another user's file linked in), anything not empty or not fresh proves nothing.
    if (st.isFile() && st.nlink === 1 && st.size === 0 && fresh(st.mtimeMs) && fresh(st.ctimeMs)) uid = st.uid;
  } catch {
    return undefined;
  }
  try {
    unlinkSync(path); // the maildrop is the daemon's: a proof is good once
  } catch {
    return undefined; // not removable by us: not in our maildrop as expected
  }
  return uid;
}

export class OwnServer extends JsonLineServer {
  constructor(private readonly o: { maildrop: string; handlers: OwnHandlers; limits?: Partial<GuardLimits> }) {
    super(ownSocketPath(o.maildrop), 0o666, MAX_REQUEST, o.limits); // every local user may ask (about their own mail only)
  }

  protected handle(parsed: unknown, answer: (reply: OwnReply) => void, conn: Connection): void {
    if (typeof parsed !== 'object' || parsed === null) return answer({ ok: false, error: 'malformed request' });
    const req = parsed as { op?: unknown; action?: unknown; proof?: unknown; ids?: unknown };
    if (req.op !== 'own' || (req.action !== 'list' && req.action !== 'remove')) return answer({ ok: false, error: 'malformed request' });
    const ids = req.ids;
    if (req.action === 'remove' && (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS
      || !ids.every((id) => typeof id === 'string' && isMessageId(id)))) return answer({ ok: false, error: 'bad message id' });
    const uid = proofOwner(this.o.maildrop, req.proof);
    if (uid === undefined) return answer({ ok: false, error: 'not permitted' });
    if (!conn.claim(String(uid), PER_USER)) return answer({ ok: false, error: BUSY_ERROR });
    const login = userName(uid);
    if (req.action === 'list') {
      try {
        return answer({ ok: true, text: this.o.handlers.list(login) });
      } catch (err) {
        return answer({ ok: false, error: (err as Error).message });
      }
    }
    const done = this.o.handlers.remove(ids as string[], login)
      .then((results) => answer({ ok: true, results }), (err: Error) => answer({ ok: false, error: err.message }));
    this.track(done);
  }

  /** Stops listening, lets removals being worked on answer, then removes the socket. */
  override async close(): Promise<void> {
    await super.close();
    rmSync(ownSocketPath(this.o.maildrop), { force: true });
  }
}
