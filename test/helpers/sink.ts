// test/helpers/sink.ts: a real SMTP smarthost for tests (smtp-server on loopback)
// that stores what it accepts and misbehaves on demand: 4xx/5xx per recipient, at
// MAIL or at end of data, dropped connections, slow replies.
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface Received {
  from: string;
  to: string[];
  data: string;
  /** The message as the bytes that arrived. */
  raw: Buffer;
}

export interface SinkBehaviour {
  /**
   * Reply for a recipient: undefined accepts; a number rejects with that code; a string
   * is the whole reply ("550 5.1.1 no such user").
   */
  rcpt?: (address: string) => number | string | undefined;
  mail?: (address: string) => number | undefined;
  /** Reply after the data: undefined accepts. */
  data?: (msg: Received) => number | undefined;
  /** Drop the connection at DATA end without answering. */
  dropAtData?: () => boolean;
  delayMs?: number;
}

export class Sink {
  readonly messages: Received[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];
  behaviour: SinkBehaviour = {};
  private server: SMTPServer;
  port = 0;
  connections = 0;

  constructor(opts: Record<string, unknown> = {}) {
    const err = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onConnect: (_s: SMTPServerSession, cb: (e?: Error) => void) => { this.connections++; cb(); },
      onMailFrom: (a: { address: string }, _s: SMTPServerSession, cb: (e?: Error) => void) => {
        const code = this.behaviour.mail?.(a.address);
        this.later(() => cb(code ? err(code, code >= 500 ? 'sender rejected' : 'try again later') : undefined));
      },
      onRcptTo: (a: { address: string }, _s: SMTPServerSession, cb: (e?: Error) => void) => {
        const code = this.behaviour.rcpt?.(a.address);
        if (typeof code === 'string') return this.later(() => cb(err(Number(code.slice(0, 3)), code.slice(4))));
        this.later(() => cb(code ? err(code, code >= 500 ? 'unknown user' : 'try again later') : undefined));
      },
      onData: (stream: NodeJS.ReadableStream, session: SMTPServerSession, cb: (e?: Error | null, m?: string) => void) => {
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c));
        stream.on('end', () => {
          const msg: Received = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(parts).toString('utf8'),
            raw: Buffer.concat(parts),
          };
          if (this.behaviour.dropAtData?.()) {
            (session as unknown as { _socket?: { destroy(): void } });
            this.dropAll();
            return;
          }
          const code = this.behaviour.data?.(msg);
          if (code) return this.later(() => cb(err(code, code >= 500 ? 'message rejected' : 'try again later')));
          this.messages.push(msg);
          for (const w of this.waiters.filter((x) => this.messages.length >= x.n)) w.resolve();
          this.waiters = this.waiters.filter((x) => this.messages.length < x.n);
          this.later(() => cb(null, `Ok: queued as Q${this.messages.length}`));
        });
      },
      ...opts,
    } as ConstructorParameters<typeof SMTPServer>[0]);
    this.server.on('error', () => {});
  }

  private later(fn: () => void): void {
    if (this.behaviour.delayMs) setTimeout(fn, this.behaviour.delayMs);
    else fn();
  }

  /** Destroys every open connection (a hub that goes away mid-session). */
  dropAll(): void {
    const conns = (this.server as unknown as { connections: Set<{ _socket: { destroy(): void } }> }).connections;
    for (const c of conns) c._socket.destroy();
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => {
      this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
      resolve(this.port);
    }));
  }

  /** Resolves once `n` messages have arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 20_000): Promise<void> {
    if (this.messages.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sink got ${this.messages.length} of ${n} messages in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => { clearTimeout(t); resolve(); } });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
