// receive/local-server.ts: the daemon side of `postern.sock`. Takes messages that
// `sendmail` already cleaned, commits them (the reply is sent after the synced
// commit, as a 250 is) and kicks the scheduler; also takes bare kicks from the
// queue commands. One JSON line per request, followed by the body for submissions.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import type { EventBus } from '../core/events.js';
import type { NewMessage } from '../core/types.js';
import { isRoutableAddress } from '../core/address.js';
import { base62, isMessageId } from '../spool/message-id.js';
import type { Spool } from '../spool/spool.js';
import { socketPath } from './local-client.js';

export interface SubmitRequest {
  op: 'submit';
  msg: Omit<NewMessage, 'body'>;
  bodyLength: number;
}
/** A kick; `force` (from -qf, -M) also forgets the hosts' retry times, as Exim's forced runs do. */
export type LocalRequest = SubmitRequest | { op: 'kick'; force?: boolean };

/** Operator requests carry the key from `control.key` (mode 0600 in the spool folder). */
export type GiveUpHandler = (id: string, user: string) => Promise<'done' | 'gone' | 'locked'>;

const MAX_HEADER = 4 * 1024 * 1024;

/**
 * The socket is open to every local user, so a request is rebuilt field by field from
 * what sendmail may say; anything else is refused. Time comes from our own clock when
 * the caller's is off by more than a minute.
 */
export function checkSubmit(req: unknown, now: number): { msg: Omit<NewMessage, 'body'>; bodyLength: number } | string {
  if (typeof req !== 'object' || req === null) return 'malformed request';
  const r = req as { msg?: Record<string, unknown>; bodyLength?: unknown };
  const m = r.msg;
  if (typeof m !== 'object' || m === null) return 'malformed request';
  const str = (v: unknown) => typeof v === 'string';
  // The daemon's own IDs (its pid in the middle) are for what it makes itself, bounces.
  if (!str(m.id) || !isMessageId(m.id as string) || (m.id as string).split('-')[1] === base62(process.pid, 6)) return 'bad message id';
  if (!str(m.sender) || (m.sender !== '' && !isRoutableAddress(m.sender as string))) return 'bad sender';
  const rcpts = m.recipients;
  if (!Array.isArray(rcpts) || rcpts.length === 0 || rcpts.length > 100_000 || !rcpts.every((x) => str(x) && isRoutableAddress(x as string))) {
    return 'bad recipients';
  }
  if (!str(m.headers)) return 'bad headers';
  if (m.user !== undefined && !(str(m.user) && /^[\w.@+-]{1,64}$/.test(m.user as string))) return 'bad user';
  if (m.messageIdHeader !== undefined && !(str(m.messageIdHeader) && !/[\r\n]/.test(m.messageIdHeader as string))) return 'bad message-id';
  if (!Number.isInteger(r.bodyLength) || (r.bodyLength as number) < 0) return 'bad body length';
  const arrival = typeof m.arrival === 'number' && Math.abs(m.arrival - now) < 60_000 ? m.arrival : now;
  return {
    bodyLength: r.bodyLength as number,
    msg: {
      id: m.id as string, sender: m.sender as string, recipients: rcpts as string[], arrival, protocol: 'local',
      headers: m.headers as string,
      ...(m.user !== undefined ? { user: m.user as string } : {}),
      ...(m.messageIdHeader !== undefined ? { messageIdHeader: m.messageIdHeader as string } : {}),
      ...(m.queueOnly === true ? { queueOnly: true } : {}),
    },
  };
}

export class LocalServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly o: { spoolDir: string; spool: Spool; events: EventBus; kick: (opts: { id?: string; force?: boolean }) => void;
    maxMessageSize: number; giveUp?: GiveUpHandler; controlKey?: string }) {}

  listen(): Promise<void> {
    const path = socketPath(this.o.spoolDir);
    rmSync(path, { force: true });
    this.server = createServer((sock) => this.serve(sock));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => {
        // Any local user may submit, as any user may run sendmail.
        chmodSync(path, 0o666);
        resolve();
      });
    });
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = Buffer.alloc(0);
    let req: LocalRequest | undefined;
    const parts: Buffer[] = [];
    let got = 0;
    const answer = (reply: object) => sock.end(JSON.stringify(reply) + '\n');
    const onData = (chunk: Buffer) => {
      if (!req) {
        buf = Buffer.concat([buf, chunk]);
        const nl = buf.indexOf(10);
        if (nl < 0) {
          if (buf.length > MAX_HEADER) answer({ ok: false, error: 'request too long' });
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(buf.subarray(0, nl).toString('utf8'));
        } catch {
          return answer({ ok: false, error: 'malformed request' });
        }
        chunk = buf.subarray(nl + 1);
        const op = typeof parsed === 'object' && parsed !== null ? (parsed as { op?: unknown }).op : undefined;
        if (op === 'kick') {
          this.o.kick({ force: (parsed as { force?: unknown }).force === true });
          return answer({ ok: true });
        }
        if (op === 'giveup') {
          const g = parsed as { id?: unknown; user?: unknown; key?: unknown };
          if (!this.o.giveUp || !this.o.controlKey || g.key !== this.o.controlKey) return answer({ ok: false, error: 'not permitted' });
          if (typeof g.id !== 'string' || !isMessageId(g.id)) return answer({ ok: false, error: 'bad message id' });
          const user = typeof g.user === 'string' && /^[\w.@+-]{1,64}$/.test(g.user) ? g.user : 'unknown';
          void this.o.giveUp(g.id, user).then((result) => answer({ ok: true, result }), (err: Error) => answer({ ok: false, error: err.message }));
          return;
        }
        if (op !== 'submit') return answer({ ok: false, error: 'malformed request' });
        const checked = checkSubmit(parsed, Date.now());
        if (typeof checked === 'string') return answer({ ok: false, error: checked });
        if (checked.bodyLength > this.o.maxMessageSize) return answer({ ok: false, error: 'message too big' });
        req = { op: 'submit', ...checked };
      }
      if (req.op !== 'submit') return;
      parts.push(chunk);
      got += chunk.length;
      if (got >= req.bodyLength) {
        sock.off('data', onData);
        const done = this.submit(req, Buffer.concat(parts).subarray(0, req.bodyLength)).then(answer);
        this.pending.add(done);
        void done.finally(() => this.pending.delete(done));
      }
    };
    sock.on('data', onData);
  }

  private async submit(req: SubmitRequest, body: Buffer): Promise<object> {
    const m = req.msg;
    try {
      const record = await this.o.spool.commit({ ...m, body: [body] });
      this.o.events.emit({ type: 'received', id: m.id, sender: m.sender, protocol: m.protocol, size: record.size,
        ...(m.user ? { user: m.user } : {}), ...(m.messageIdHeader ? { messageIdHeader: m.messageIdHeader } : {}) });
      if (!m.queueOnly) this.o.kick({ id: m.id });
      return { ok: true, id: m.id };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Stops listening, lets submissions being committed answer, then drops the rest. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await Promise.allSettled([...this.pending]);
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
