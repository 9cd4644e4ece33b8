// receive/own-server.ts: the daemon side of `<maildrop>/.postern.sock`, the public
// socket through which any local user lists and removes the messages they submitted
// themselves (SPEC's exception to "queue commands are for admins"). Node cannot read a
// Unix socket's peer credentials, so the caller proves who it is with a file: it makes
// an empty `.auth-<32 hex>` in the maildrop (1733, so only its maker or the daemon may
// remove it) and sends its name; the file's owner, as the kernel reports it, is the
// caller. Takes only {op: 'own', action: 'list' | 'remove', proof, ids?}; one JSON line
// within 10 s, at most 64 connections, a bounded line.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isMessageId } from '../spool/message-id.js';
import { userName } from '../core/users.js';

export const OWN_SOCKET = '.postern.sock';
export const PROOF_PREFIX = '.auth-';
export const isProofName = (name: string) => /^\.auth-[0-9a-f]{32}$/.test(name);
/** A proof older than this is refused (it may be someone's left-over file). */
export const PROOF_AGE = 60_000;
const MAX_REQUEST = 1024 * 1024; // 50,000 IDs
const MAX_IDS = 50_000;
export const REQUEST_TIMEOUT = 10_000;
export const MAX_CONNECTIONS = 64;

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

export class OwnServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly o: { maildrop: string; handlers: OwnHandlers }) {}

  listen(): Promise<void> {
    const path = ownSocketPath(this.o.maildrop);
    rmSync(path, { force: true }); // a stale one from a daemon that crashed
    this.server = createServer((sock) => this.serve(sock));
    this.server.maxConnections = MAX_CONNECTIONS;
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => {
        chmodSync(path, 0o666); // every local user may ask (about their own mail only)
        resolve();
      });
    });
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(REQUEST_TIMEOUT, () => sock.destroy());
    const parts: Buffer[] = [];
    let size = 0;
    const answer = (reply: OwnReply) => sock.end(JSON.stringify(reply) + '\n');
    const onData = (chunk: Buffer) => {
      parts.push(chunk);
      size += chunk.length;
      const at = chunk.indexOf(10);
      if (at < 0) {
        if (size > MAX_REQUEST) {
          sock.off('data', onData);
          answer({ ok: false, error: 'request too long' });
        }
        return;
      }
      sock.off('data', onData);
      sock.setTimeout(0);
      const line = Buffer.concat(parts).subarray(0, size - chunk.length + at);
      if (line.length > MAX_REQUEST) return answer({ ok: false, error: 'request too long' });
      let req: { op?: unknown; action?: unknown; proof?: unknown; ids?: unknown };
      try {
        req = JSON.parse(line.toString('utf8')) as typeof req;
        if (typeof req !== 'object' || req === null) throw new Error();
      } catch {
        return answer({ ok: false, error: 'malformed request' });
      }
      if (req.op !== 'own' || (req.action !== 'list' && req.action !== 'remove')) return answer({ ok: false, error: 'malformed request' });
      const ids = req.ids;
      if (req.action === 'remove' && (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS
        || !ids.every((id) => typeof id === 'string' && isMessageId(id)))) return answer({ ok: false, error: 'bad message id' });
      const uid = proofOwner(this.o.maildrop, req.proof);
      if (uid === undefined) return answer({ ok: false, error: 'not permitted' });
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
      this.pending.add(done);
      void done.finally(() => this.pending.delete(done));
    };
    sock.on('data', onData);
  }

  /** Stops listening, lets removals being worked on answer, then drops the rest. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await Promise.allSettled([...this.pending]);
    for (const s of this.sockets) s.destroy();
    await closed;
    rmSync(ownSocketPath(this.o.maildrop), { force: true });
  }
}
