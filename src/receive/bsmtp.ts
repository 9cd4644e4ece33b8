// receive/bsmtp.ts: `sendmail -bs` / `postern -bs`: one SMTP session on stdin/stdout for
// any local user. Each message becomes a maildrop file, as sendmail's do (written
// directly, or streamed through the setgid helper for a user the maildrop does not let
// in); the daemon's pickup makes it with the identity of the file's owner. Limits as on the listener.
import { Duplex } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import type { Config } from '../config/schema.js';
import { isRoutableAddress } from '../core/address.js';
import { REPLY } from '../core/replies.js';
import { qualify } from './cleanup.js';
import { LineEnds } from './header-block.js';
import { serverBase } from './smtp.js';
import { acceptQuotedLocalParts, AdjustedSmtpServer, fastDataScan, greetAtOnce, keepOwnCodes, qualifyLocalParts, type LibConnection } from './smtp-internals.js';
import { DropError, DropWriter, DROP_VERSION, envelopeLine, roomFor, type DropEnvelope } from './maildrop.js';
import { HelperWriter, postdropPath, refusedByFolder } from './postdrop.js';

/** A drop file being written, by us or by the helper: write() may ask us to wait. */
interface Drop {
  write(part: Buffer): Promise<void> | void;
  finish(): Promise<unknown> | unknown;
  abort(): void;
}

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

/**
 * smtp-server for one session on stdin: the caller is not a network peer, so it is
 * greeted at once (no early-talker pause: piped input is normal here), and our replies
 * keep their own enhanced codes (smtp-internals.ts).
 */
class StdioSmtpServer extends AdjustedSmtpServer {
  /** qualify_domain, for the caller's unqualified addresses. */
  qualifyDomain = '';

  protected override adjust(conn: LibConnection): void {
    greetAtOnce(conn);
    acceptQuotedLocalParts(conn); // "a b"@example.org, as the listener takes it
    qualifyLocalParts(conn, this.qualifyDomain);
    keepOwnCodes(conn);
    fastDataScan(conn);
  }
}

const reply = (r: { code: number; enhanced: string; text: string }) =>
  Object.assign(new Error(`${r.enhanced} ${r.text}`), { responseCode: r.code });

/**
 * Each message of the session becomes one maildrop file (protocol local-smtp or
 * local-esmtp): the daemon's pickup makes it with the identity of the file's owner,
 * so `250 2.0.0 OK queued` carries no spool ID. The listener's limits apply: size,
 * recipients, address syntax. `makeMaildrop` makes a missing maildrop where allowed;
 * `kick` tells the daemon a file is there (best effort: its pickup also watches the folder).
 */
export async function bsmtp(config: Config, makeMaildrop: () => boolean | Promise<boolean> = () => false,
  kick: () => void = () => {}): Promise<void> {
  const q = (a: string) => qualify(a, config.qualify_domain);
  let storing = 0;
  let idle: (() => void) | undefined;
  const server = new StdioSmtpServer({
    ...serverBase(config.hostname, config.listen.max_message_size),
    socketTimeout: config.listen.idle_timeout,
    onMailFrom: (address, _session, cb) => {
      const size = Number((address.args as Record<string, string> | undefined)?.SIZE ?? 0);
      if (size > config.listen.max_message_size) return cb(reply(REPLY.messageTooBig));
      if (address.address !== '' && !isRoutableAddress(q(address.address))) return cb(reply(REPLY.badSender));
      cb();
    },
    onRcptTo: (address, session, cb) => {
      if (session.envelope.rcptTo.length >= config.listen.max_recipients) return cb(reply(REPLY.tooManyRecipients));
      if (!isRoutableAddress(q(address.address))) return cb(reply(REPLY.badRecipient));
      cb();
    },
    onData: (stream, session, cb) => {
      const esmtp = session.transmissionType === 'ESMTP' || session.transmissionType?.startsWith('ESMTP');
      const envelope: DropEnvelope = {
        v: DROP_VERSION, extract: false, protocol: esmtp ? 'local-esmtp' : 'local-smtp',
        sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        recipients: session.envelope.rcptTo.map((r) => r.address),
      };
      storing++;
      const done = (err?: Error | null, text?: string) => {
        cb(err, text);
        if (--storing === 0) idle?.();
      };
      void open(envelope).then((drop) => {
        const ends = new LineEnds();
        let failed: Error | undefined;
        let writing: Promise<void> = Promise.resolve();
        stream.on('data', (chunk: Buffer) => {
          if (failed || stream.sizeExceeded || !drop) return;
          try {
            const wait = drop.write(ends.pushInPlace(chunk)); // the chunk is ours, and written at once
            if (wait) {
              // The helper's pipe is full: the client waits, as on the listener.
              stream.pause();
              writing = wait.then(() => void stream.resume(), (err: Error) => { failed = err; stream.resume(); });
            }
          } catch (err) {
            failed = err as Error;
          }
        });
        stream.on('end', async () => {
          await writing;
          if (!drop) return done(reply(REPLY.spoolUnavailable));
          if (stream.sizeExceeded) {
            drop.abort();
            return done(reply(REPLY.messageTooBig));
          }
          try {
            if (failed) throw failed;
            await drop.write(ends.end());
            await drop.finish();
          } catch {
            drop.abort();
            return done(reply(REPLY.spoolUnavailable));
          }
          done(null, '2.0.0 OK queued');
          kick();
        });
      });
    },
  } as ConstructorParameters<typeof SMTPServer>[0]);
  server.on('error', () => { /* the session ends */ });

  /** The drop file for one message; undefined (answered 452) when the maildrop cannot take it. */
  async function open(envelope: DropEnvelope): Promise<Drop | undefined> {
    const direct = (): Drop => {
      const w = new DropWriter(config.spool.maildrop, envelope);
      return { write: (part) => w.write(part), finish: () => w.finish(), abort: () => w.abort() };
    };
    const helper = (): Drop => {
      roomFor(config.spool.maildrop, 0); // the helper checks as it writes too
      const w = new HelperWriter(postdropPath(config.spool), config.spool.maildrop);
      void w.write(envelopeLine(envelope));
      return w;
    };
    try {
      try {
        return direct();
      } catch (err) {
        if (refusedByFolder(err)) return helper();
        if (!(err instanceof DropError && err.code === 'ENOENT' && await makeMaildrop())) return undefined;
        return direct();
      }
    } catch {
      return undefined;
    }
  }

  const socket = new StdioSocket(process.stdin, process.stdout);
  // The session is over when smtp-server has ended its side (QUIT, timeout, hang-up).
  const closed = new Promise<void>((resolve) => {
    socket.on('close', resolve);
    socket.on('finish', resolve);
  });
  server.qualifyDomain = config.qualify_domain;
  // A caller that hangs up without QUIT: once the last message is stored and
  // answered, end the session as a dropped connection would.
  socket.on('input-end', () => {
    const end = () => setTimeout(() => socket.end(), 1000);
    if (storing === 0) end();
    else idle = end;
  });
  (server as unknown as { connect(s: unknown, o: unknown): void }).connect(socket, { remoteAddress: '127.0.0.1', remotePort: 0 });
  await closed;
}
