// receive/local-server.ts: the daemon side of `postern.sock`. Takes messages that
// `sendmail` already cleaned, commits them (the reply is sent after the synced
// commit, as a 250 is) and kicks the scheduler; also takes bare kicks from the
// queue commands. One JSON line per request, followed by the body for submissions.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import type { EventBus } from '../core/events.js';
import type { NewMessage } from '../core/types.js';
import type { Spool } from '../spool/spool.js';
import { socketPath } from './local-client.js';

export interface SubmitRequest {
  op: 'submit';
  msg: Omit<NewMessage, 'body'>;
  bodyLength: number;
}
/** A kick; `force` (from -qf, -M) also forgets the hosts' retry times, as Exim's forced runs do. */
export type LocalRequest = SubmitRequest | { op: 'kick'; force?: boolean };

const MAX_HEADER = 4 * 1024 * 1024;

export class LocalServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly o: { spoolDir: string; spool: Spool; events: EventBus; kick: (opts: { id?: string; force?: boolean }) => void; maxMessageSize: number }) {}

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
        try {
          req = JSON.parse(buf.subarray(0, nl).toString('utf8')) as LocalRequest;
        } catch {
          return answer({ ok: false, error: 'malformed request' });
        }
        chunk = buf.subarray(nl + 1);
        if (req.op === 'kick') {
          this.o.kick({ force: req.force === true });
          return answer({ ok: true });
        }
        if (req.op !== 'submit' || !(req.bodyLength >= 0) || req.bodyLength > this.o.maxMessageSize * 2) {
          return answer({ ok: false, error: 'malformed request' });
        }
      }
      if (req.op !== 'submit') return;
      parts.push(chunk);
      got += chunk.length;
      if (got >= req.bodyLength) {
        sock.off('data', onData);
        void this.submit(req, Buffer.concat(parts).subarray(0, req.bodyLength)).then(answer);
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

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
