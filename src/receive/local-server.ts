// receive/local-server.ts: the daemon side of `postern.sock`, the administrators'
// control socket. It lives in the spool folder (mode 0700), so only root and the
// daemon's user reach it; messages never come this way (they come through the
// maildrop). Takes kicks (look at the maildrop and the due index now; `force` also
// forgets the hosts' retry times) and -Mg requests. One JSON line per request; a
// request line must arrive within 10 s, and at most 64 connections are served at once.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { isMessageId } from '../spool/message-id.js';
import { socketPath } from './local-client.js';

/** A kick; `force` (from -qf, -M) also forgets the hosts' retry times, as Exim's forced runs do. */
export type LocalRequest = { op: 'kick'; force?: boolean } | { op: 'giveup'; id: string; user?: string; key: string }
  | { op: 'giveup'; ids: string[]; user?: string; key: string }
  | { op: 'bulk'; action: 'remove' | 'freeze' | 'thaw'; ids: string[]; user?: string; key: string };

/** Operator requests carry the key from `control.key` (mode 0600 in the spool folder). */
export type GiveUpHandler = (id: string, user: string) => Promise<'done' | 'gone' | 'locked'>;
/** postern-qgrep --remove/--freeze/--thaw: one result per ID, in order (see cli/bulk.ts). */
export type BulkHandler = (action: 'remove' | 'freeze' | 'thaw', ids: string[], user: string) => Promise<string[]>;

/** A request line: postern-qgrep's bulk actions send their IDs in one (a million IDs are 19 MB). */
const MAX_REQUEST = 32 * 1024 * 1024;
export const REQUEST_TIMEOUT = 10_000;
export const MAX_CONNECTIONS = 64;

export class LocalServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly o: { spoolDir: string; kick: (opts: { id?: string; force?: boolean }) => void;
    giveUp?: GiveUpHandler; bulk?: BulkHandler; controlKey?: string }) {}

  listen(): Promise<void> {
    const path = socketPath(this.o.spoolDir);
    rmSync(path, { force: true });
    this.server = createServer((sock) => this.serve(sock));
    this.server.maxConnections = MAX_CONNECTIONS;
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => {
        // The folder keeps others out; the socket itself is its owner's only too.
        chmodSync(path, 0o600);
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
    let buf = Buffer.alloc(0);
    const answer = (reply: object) => sock.end(JSON.stringify(reply) + '\n');
    const onData = (chunk: Buffer) => {
      // Joined once the line is complete: a long line costs no copying per chunk.
      parts.push(chunk);
      size += chunk.length;
      const at = chunk.indexOf(10);
      const nl = at < 0 ? -1 : size - chunk.length + at;
      if (nl >= 0) buf = Buffer.concat(parts);
      if (nl < 0) {
        if (size > MAX_REQUEST) {
          sock.off('data', onData);
          answer({ ok: false, error: 'request too long' });
        }
        return;
      }
      sock.off('data', onData);
      sock.setTimeout(0);
      let parsed: unknown;
      try {
        parsed = JSON.parse(buf.subarray(0, nl).toString('utf8'));
      } catch {
        return answer({ ok: false, error: 'malformed request' });
      }
      const op = typeof parsed === 'object' && parsed !== null ? (parsed as { op?: unknown }).op : undefined;
      if (op === 'kick') {
        this.o.kick({ force: (parsed as { force?: unknown }).force === true });
        return answer({ ok: true });
      }
      if (op === 'bulk') {
        const g = parsed as { ids?: unknown; user?: unknown; key?: unknown; action?: unknown };
        if (!this.o.bulk || !this.o.controlKey || g.key !== this.o.controlKey) return answer({ ok: false, error: 'not permitted' });
        if (g.action !== 'remove' && g.action !== 'freeze' && g.action !== 'thaw') return answer({ ok: false, error: 'unknown action' });
        if (!Array.isArray(g.ids) || !g.ids.every((id) => typeof id === 'string' && isMessageId(id))) return answer({ ok: false, error: 'bad message id' });
        const user = typeof g.user === 'string' && /^[\w.@+-]{1,64}$/.test(g.user) ? g.user : 'unknown';
        const done = this.o.bulk(g.action, g.ids as string[], user)
          .then((results) => answer({ ok: true, results }), (err: Error) => answer({ ok: false, error: err.message }));
        this.pending.add(done);
        void done.finally(() => this.pending.delete(done));
        return;
      }
      if (op === 'giveup') {
        const g = parsed as { id?: unknown; user?: unknown; key?: unknown };
        if (!this.o.giveUp || !this.o.controlKey || g.key !== this.o.controlKey) return answer({ ok: false, error: 'not permitted' });
        const user = typeof g.user === 'string' && /^[\w.@+-]{1,64}$/.test(g.user) ? g.user : 'unknown';
        // postern-qgrep --giveup sends `ids` (one request per batch): one result per ID, in order.
        const many = (parsed as { ids?: unknown }).ids;
        if (Array.isArray(many)) {
          if (!many.every((id) => typeof id === 'string' && isMessageId(id))) return answer({ ok: false, error: 'bad message id' });
          const giveUp = this.o.giveUp;
          const done = Promise.all((many as string[]).map((id) => giveUp(id, user)))
            .then((results) => answer({ ok: true, results }), (err: Error) => answer({ ok: false, error: err.message }));
          this.pending.add(done);
          void done.finally(() => this.pending.delete(done));
          return;
        }
        if (typeof g.id !== 'string' || !isMessageId(g.id)) return answer({ ok: false, error: 'bad message id' });
        const done = this.o.giveUp(g.id, user).then((result) => answer({ ok: true, result }), (err: Error) => answer({ ok: false, error: err.message }));
        this.pending.add(done);
        void done.finally(() => this.pending.delete(done));
        return;
      }
      return answer({ ok: false, error: 'malformed request' });
    };
    sock.on('data', onData);
  }

  /** Stops listening, lets requests being worked on answer, then drops the rest. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await Promise.allSettled([...this.pending]);
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
