// admin/control-server.ts: the daemon side of `postern.sock`, the administrators'
// control socket. It lives in the spool folder (mode 0700), so only root and the
// daemon's user reach it; messages never come this way (they come through the
// maildrop). Takes kicks, operator actions (admin/actions.ts) (look at the maildrop and the due index now; `force` also
// forgets the hosts' retry times) and -Mg requests. One JSON line per request, its first
// byte within 5 s and all of it within 30 s (a bulk request carries up to 32 MB of IDs);
// at most 64 connections at once. A listener of its own, which users cannot reach: no
// slot here is ever taken by a user's connection to the own-messages socket.
import { parseAction, type ActionResult, type AdminAction } from './actions.js';
import { JsonLineServer, type Answer } from './line-server.js';
import { isMessageId } from '../spool/message-id.js';
import { socketPath } from './control-client.js';

/** Operator requests carry the key from `control.key` (mode 0600 in the spool folder). */
export type GiveUpHandler = (id: string, user: string) => Promise<'done' | 'gone' | 'locked'>;
/** Every operator action but -Mg (admin/actions.ts): one result per ID, in order. */
export type BulkHandler = (action: AdminAction, ids: string[], user: string) => Promise<ActionResult[]>;

/** A request line: postern-qgrep's bulk actions send their IDs in one (a million IDs are 19 MB). */
const MAX_REQUEST = 32 * 1024 * 1024;

export class LocalServer extends JsonLineServer {
  constructor(private readonly o: { spoolDir: string; kick: (opts: { id?: string; force?: boolean }) => void;
    giveUp?: GiveUpHandler; bulk?: BulkHandler; controlKey?: string }) {
    // The folder keeps others out; the socket itself is its owner's only too.
    super(socketPath(o.spoolDir), 0o600, MAX_REQUEST, { firstByte: 5_000, request: 30_000 });
  }

  protected handle(parsed: unknown, answer: Answer): void {
    const op = typeof parsed === 'object' && parsed !== null ? (parsed as { op?: unknown }).op : undefined;
    if (op === 'kick') {
      this.o.kick({ force: (parsed as { force?: unknown }).force === true });
      return answer({ ok: true });
    }
    if (op === 'bulk') {
      const g = parsed as { ids?: unknown; user?: unknown; key?: unknown; action?: unknown };
      if (!this.o.bulk || !this.o.controlKey || g.key !== this.o.controlKey) return answer({ ok: false, error: 'not permitted' });
      const action = parseAction(g.action);
      if (!action) return answer({ ok: false, error: 'unknown action' });
      if (!Array.isArray(g.ids) || !g.ids.every((id) => typeof id === 'string' && isMessageId(id))) return answer({ ok: false, error: 'bad message id' });
      const user = typeof g.user === 'string' && /^[\w.@+-]{1,64}$/.test(g.user) ? g.user : 'unknown';
      const done = this.o.bulk(action, g.ids as string[], user)
        .then((results) => answer({ ok: true, results }), (err: Error) => answer({ ok: false, error: err.message }));
      this.track(done);
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
        this.track(done);
        return;
      }
      if (typeof g.id !== 'string' || !isMessageId(g.id)) return answer({ ok: false, error: 'bad message id' });
      const done = this.o.giveUp(g.id, user).then((result) => answer({ ok: true, result }), (err: Error) => answer({ ok: false, error: err.message }));
      this.track(done);
      return;
    }
    return answer({ ok: false, error: 'malformed request' });
  }
}
