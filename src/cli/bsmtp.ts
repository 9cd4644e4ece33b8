// cli/bsmtp.ts: `sendmail -bs` / `postern -bs`: one SMTP session on stdin/stdout
// for a local user (protocol local-esmtp), with the same smtp-server handling as the
// listener. Messages are committed to the spool directly; a running daemon is poked.
import { Duplex } from 'node:stream';
import { userInfo } from 'node:os';
import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { EventBus } from '../core/events.js';
import { MainLog } from '../log/mainlog.js';
import { LmdbSpool } from '../spool/lmdb-spool.js';
import { MessageIdGenerator } from '../spool/message-id.js';
import { request } from '../receive/local-client.js';
import { SmtpReceiver } from '../receive/smtp.js';

/** stdin and stdout as one socket-like stream, with the setTimeout() smtp-server expects. */
class StdioSocket extends Duplex {
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly input: NodeJS.ReadStream, private readonly output: NodeJS.WriteStream) {
    super();
    input.on('data', (d: Buffer) => { this.touch(); if (!this.push(d)) input.pause(); });
    input.on('end', () => {
      this.push(null);
      this.emit('input-end');
    });
  }
  private idle?: () => void;
  private ms = 0;
  private touch(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.ms && this.idle) this.timer = setTimeout(this.idle, this.ms);
  }
  setTimeout(ms: number, fn?: () => void): this {
    this.ms = ms;
    if (fn) this.idle = fn;
    this.touch();
    return this;
  }
  override _read(): void {
    this.input.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.output.write(chunk, cb);
  }
  override _final(cb: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.input.pause();
    this.input.destroy();
    cb();
  }
  /** smtp-server writes only to a socket whose readyState is 'open'. */
  get readyState(): string {
    return this.writable ? 'open' : 'closed';
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

export async function bsmtp(config: Config): Promise<void> {
  const spool = LmdbSpool.open(config.spool.directory);
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.writeSync(e));
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch { /* keep unknown */ }
  const receiver = new SmtpReceiver({
    hostname: config.hostname, qualifyDomain: config.qualify_domain, relayFrom: ['127.0.0.1/32'],
    maxMessageSize: config.listen.max_message_size, maxRecipients: config.listen.max_recipients,
    maxConnections: 1, spool, events, clock: systemClock, ids: new MessageIdGenerator(), localUser: user,
    kick: () => void request(config.spool.directory, { op: 'kick' }, undefined, 5000).catch(() => undefined),
  });
  const socket = new StdioSocket(process.stdin, process.stdout);
  const done = new Promise<void>((resolve) => socket.on('close', resolve));
  // A caller that hangs up without QUIT: once the last message is stored and
  // answered, end the session as a dropped connection would.
  socket.on('input-end', () => {
    void receiver.whenIdle().then(() => setTimeout(() => socket.end(), 1000).unref());
  });
  receiver.serve(socket);
  await done;
  await spool.close();
}
