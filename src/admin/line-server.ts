// admin/line-server.ts: what the daemon's two local sockets share (the admins'
// control socket and the users' own-messages socket): listen on a Unix socket path with
// a mode, one JSON request line within a size bound, one JSON reply line. Connection
// limits (a cap, first-byte and request deadlines, who gives way at the cap) are
// core/conn-guard.ts's; per-caller caps, once a request says who the caller is, are here
// (claim()). Requests still being worked on are answered before close.
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { ConnectionGuard, type GuardLimits } from '../core/conn-guard.js';
import type { Clock } from '../core/clock.js';

/** Connections open at once on each socket. */
export const MAX_CONNECTIONS = 64;
/** A client sends its request line as soon as it is connected: 2 s for the first byte, 5 s for the line. */
const FIRST_BYTE_TIMEOUT = 2_000;
const REQUEST_TIMEOUT = 5_000;
const DEFAULT_LIMITS: GuardLimits = { max: MAX_CONNECTIONS, firstByte: FIRST_BYTE_TIMEOUT, request: REQUEST_TIMEOUT };

export type Answer = (reply: object) => void;

/** The connection a request came on: claim() counts it against a caller (a uid) until it closes. */
export interface Connection {
  /** False, counting nothing, when `key` already holds `max` connections. */
  claim(key: string, max: number): boolean;
}

export abstract class JsonLineServer {
  private server: Server | undefined;
  private readonly guard: ConnectionGuard;
  private readonly claims = new Map<string, number>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly path: string, private readonly mode: number, private readonly maxRequest: number,
    limits: Partial<GuardLimits> = {}, clock?: Clock) {
    this.guard = new ConnectionGuard({ ...DEFAULT_LIMITS, ...limits }, clock);
  }

  /** One parsed request (any JSON value): answer it, now or later (see track()). */
  protected abstract handle(request: unknown, answer: Answer, conn: Connection): void;

  /** Keeps close() waiting for an answer still being worked on. */
  protected track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** Connections open now, and what the limits did (for tests). */
  get connections(): { open: number; evicted: number; refused: number; timedOut: number } {
    return { open: this.guard.size, ...this.guard.counts };
  }

  listen(): Promise<void> {
    rmSync(this.path, { force: true }); // a stale one from a daemon that crashed
    this.server = createServer((sock) => this.serve(sock));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.path, () => {
        chmodSync(this.path, this.mode);
        resolve();
      });
    });
  }

  private serve(sock: Socket): void {
    sock.on('error', () => sock.destroy());
    if (!this.guard.admit(sock)) return;
    const parts: Buffer[] = [];
    let size = 0;
    const answer: Answer = (reply) => {
      if (sock.destroyed) return;
      // Closed as soon as the line is handed to the kernel (on a Unix socket it is then in
      // the client's queue): a client that never closes holds nothing.
      sock.end(JSON.stringify(reply) + '\n', () => sock.destroy());
    };
    const conn: Connection = {
      claim: (key, max) => {
        const n = this.claims.get(key) ?? 0;
        if (n >= max) return false;
        this.claims.set(key, n + 1);
        sock.once('close', () => {
          const left = (this.claims.get(key) ?? 1) - 1;
          if (left > 0) this.claims.set(key, left);
          else this.claims.delete(key);
        });
        return true;
      },
    };
    const onData = (chunk: Buffer) => {
      if (size === 0) this.guard.started(sock);
      // Joined once the line is complete: a long line costs no copying per chunk.
      parts.push(chunk);
      size += chunk.length;
      const at = chunk.indexOf(10);
      const end = at < 0 ? -1 : size - chunk.length + at;
      if (end < 0 ? size > this.maxRequest : end > this.maxRequest) {
        sock.off('data', onData);
        this.guard.busy(sock, this.guard.limits.request);
        return answer({ ok: false, error: 'request too long' });
      }
      if (end < 0) return;
      sock.off('data', onData);
      // No deadline while the request is worked on (a removal waits for the spool); the
      // answer then has as long as the request had to reach a client that may not read it.
      this.guard.busy(sock);
      const answerOnce: Answer = (reply) => {
        this.guard.busy(sock, this.guard.limits.request);
        answer(reply);
      };
      let request: unknown;
      try {
        request = JSON.parse(Buffer.concat(parts).subarray(0, end).toString('utf8'));
      } catch {
        return answerOnce({ ok: false, error: 'malformed request' });
      }
      this.handle(request, answerOnce, conn);
    };
    sock.on('data', onData);
  }

  /** Stops listening, lets requests being worked on answer, then drops the rest. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await Promise.allSettled([...this.pending]);
    this.guard.destroyAll();
    await closed;
  }
}
