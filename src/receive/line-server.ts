// receive/line-server.ts: what the daemon's two local sockets share (the admins'
// control socket and the users' own-messages socket): listen on a Unix socket path with
// a mode, at most 64 connections, one JSON request line within 10 s and within a size
// bound, one JSON reply line; requests still being worked on are answered before close.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';

export const REQUEST_TIMEOUT = 10_000;
export const MAX_CONNECTIONS = 64;

export type Answer = (reply: object) => void;

export abstract class JsonLineServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly path: string, private readonly mode: number, private readonly maxRequest: number) {}

  /** One parsed request (any JSON value): answer it, now or later (see track()). */
  protected abstract handle(request: unknown, answer: Answer): void;

  /** Keeps close() waiting for an answer still being worked on. */
  protected track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  listen(): Promise<void> {
    rmSync(this.path, { force: true }); // a stale one from a daemon that crashed
    this.server = createServer((sock) => this.serve(sock));
    this.server.maxConnections = MAX_CONNECTIONS;
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.path, () => {
        chmodSync(this.path, this.mode);
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
    const answer: Answer = (reply) => sock.end(JSON.stringify(reply) + '\n');
    const onData = (chunk: Buffer) => {
      // Joined once the line is complete: a long line costs no copying per chunk.
      parts.push(chunk);
      size += chunk.length;
      const at = chunk.indexOf(10);
      const end = at < 0 ? -1 : size - chunk.length + at;
      if (end < 0 ? size > this.maxRequest : end > this.maxRequest) {
        sock.off('data', onData);
        return answer({ ok: false, error: 'request too long' });
      }
      if (end < 0) return;
      sock.off('data', onData);
      sock.setTimeout(0);
      let request: unknown;
      try {
        request = JSON.parse(Buffer.concat(parts).subarray(0, end).toString('utf8'));
      } catch {
        return answer({ ok: false, error: 'malformed request' });
      }
      this.handle(request, answer);
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
