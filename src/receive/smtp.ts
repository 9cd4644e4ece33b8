// receive/smtp.ts: the SMTP listener (smtp-server). Enforces relay_from, size and
// recipient limits, runs every message through cleanup and answers `250 ... id=ID`
// only after the spool commit is synced. The message is never held whole: the header
// block is held (at most MAX_HEADER_SIZE) until its end, the body goes to the spool in
// 64 KB chunks as it arrives, the client paused while a chunk is being written. Wakes the scheduler through an injected
// kick(); knows nothing of delivery.
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import { SMTPServer, type SMTPServerSession, type SMTPServerDataStream } from 'smtp-server';
import type { Clock } from '../core/clock.js';
import type { EventBus, MtaEvent } from '../core/events.js';
import { REPLY, ReplyError } from '../core/replies.js';
import type { SmtpReply } from '../core/types.js';
import { isRoutableAddress } from '../core/address.js';
import type { SenderLimits } from '../limits/sender-limits.js';
import { MessageIdGenerator } from '../spool/message-id.js';
import { SpoolWriteError, type IncomingMessage, type Spool } from '../spool/spool.js';
import { cleanupHeaders, qualify } from './cleanup.js';
import { HeaderSplitter, HeaderTooLong, LineEnds, parseHeaderBlock } from './header-block.js';
import { acceptQuotedLocalParts, AdjustedSmtpServer, fastDataScan, greetAtOnce, isOwnReply, type LibConnection } from './smtp-internals.js';

export interface SmtpReceiverOptions {
  hostname: string;
  qualifyDomain: string;
  relayFrom: string[];
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  spool: Spool;
  events: EventBus;
  clock: Clock;
  ids: MessageIdGenerator;
  /** Tells the scheduler a message was committed. */
  kick: (id: string) => void;
  /** listen.idle_timeout: a client silent this long gets 421 4.4.2 (ms; default 5 minutes). */
  idleTimeout?: number;
  /** listen.max_errors: after this many 5xx replies in a session, 421 4.7.0 and close (0: no limit; default 20). */
  maxErrors?: number;
  /** [limits]: a message over its client's rate is accepted frozen. */
  limits?: SenderLimits;
}

/**
 * relay_from: Node's own CIDR matcher, and the answers it gave, by client address (a
 * check builds address objects; a satellite's clients are a handful of addresses, asked
 * at connect and at every RCPT).
 */
export class RelayList {
  private readonly answers = new Map<string, boolean>();
  constructor(private readonly list: BlockList) {}

  allows(ip: string): boolean {
    let ok = this.answers.get(ip);
    if (ok === undefined) {
      const plain = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
      ok = this.list.check(plain, isIPv6(plain) ? 'ipv6' : 'ipv4');
      if (this.answers.size >= 1024) this.answers.clear();
      this.answers.set(ip, ok);
    }
    return ok;
  }
}

/** relay_from as a BlockList. */
function relayList(cidrs: string[]): RelayList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr = '', prefix] = c.split('/');
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
    if (!isIPv4(addr) && !isIPv6(addr)) throw new Error(`"${c}" is not an address or address/prefix`);
    list.addSubnet(addr, prefix === undefined ? (type === 'ipv4' ? 32 : 128) : Number(prefix), type);
  }
  return new RelayList(list);
}

const fail = (reply: SmtpReply) => new ReplyError(reply);

/** What adjust() needs from the receiver: the limits, and where a session's trouble is logged. */
interface SessionPolicy {
  hostname: string;
  maxErrors: number;
  log: (e: Extract<MtaEvent, { type: 'smtpError' }>) => void;
}

/** How a reply the library made itself is logged (Exim's "SMTP syntax error" family). */
function errorKind(code: number, text: string): 'syntax' | 'protocol' | 'dropped' | 'refused' {
  if (code === 421) return /too many connected clients/i.test(text) ? 'refused' : 'dropped';
  if (code === 503) return 'protocol';
  return code >= 500 && code <= 504 || code === 555 ? 'syntax' : 'protocol';
}

/**
 * smtp-server with the listener's adjustments to each new connection, made before its
 * init() runs (smtp-internals.ts): trusted (relay_from) clients are greeted at once
 * instead of after the library's fixed 100 ms early-talker pause, and a reply text that
 * starts with an RFC 3463 code goes out with that code instead of the library's guess
 * from the basic code; errors are logged and counted (listen.max_errors).
 */
class PosternSmtpServer extends AdjustedSmtpServer {
  constructor(options: ConstructorParameters<typeof SMTPServer>[0], private readonly trusted: RelayList,
    private readonly policy: SessionPolicy) {
    super(options);
  }

  protected override adjust(conn: LibConnection, socket: Socket, socketOptions: { remoteAddress?: string } | undefined): void {
    const remote = socketOptions?.remoteAddress ?? socket.remoteAddress ?? '';
    adjust(conn, this.trusted.allows(remote), this.options.maxClients ?? 0, this.connections, this.policy);
  }

  /**
   * A stop that cuts no session short: no connection is accepted any more (with the
   * socket unit, whoever connects meanwhile waits for the next daemon's greeting), and
   * each session under way goes on to its QUIT; those still open after closeTimeout get
   * the library's 421 and are closed. (The library's own close answers 421 at once to
   * the next command of every session, so a client between DATA's reply and QUIT, or
   * in the middle of its transaction, saw its message refused by a restart.)
   */
  override close(callback?: () => void): void {
    const self = this;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(grace);
      callback?.();
    };
    self.server.close(() => finish());
    // Sockets still waiting for a PROXY header or a TLS handshake have no session to finish.
    self._pendingSockets.forEach((s) => s.destroy());
    const grace = setTimeout(() => {
      // From now on every command is answered 421 (smtp-connection checks _closeTimeout).
      self._closeTimeout = grace;
      for (const c of self.connections) {
        c.send(421, 'Server shutting down');
        c.close();
      }
      setImmediate(finish);
    }, self.options.closeTimeout ?? 30_000);
    grace.unref();
  }
}

function adjust(conn: LibConnection, trusted: boolean, maxClients: number, connections: Set<LibConnection>, policy: SessionPolicy): void {
  const send = conn.send;
  let lastCommand: string | undefined;
  let errors = 0;
  const log = (kind: Extract<MtaEvent, { type: 'smtpError' }>['kind'], reason: string, command = lastCommand) => policy.log({
    type: 'smtpError', kind, reason, clientIp: (conn.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, ''),
    ...(conn.hostNameAppearsAs ? { helo: conn.hostNameAppearsAs } : {}), ...(command !== undefined ? { command } : {}),
  });
  const onCommand = conn._onCommand;
  conn._onCommand = function (command, callback) {
    lastCommand = String(command ?? '').slice(0, 256);
    return onCommand.call(this, command, callback);
  };
  acceptQuotedLocalParts(conn);
  fastDataScan(conn);
  conn.send = function (code, data, context) {
    const text = typeof data === 'string' ? data : '';
    const ours = isOwnReply(text);
    if (code === 421 && !ours && /^Timeout\b/.test(text)) {
      log('timeout', 'idle timeout');
      return send.call(this, 421, `4.4.2 ${policy.hostname} SMTP command timeout - closing connection`, false);
    }
    const result = ours ? send.call(this, code, data, false) : send.call(this, code, data, context);
    if (code >= 400 && !ours) {
      const kind = errorKind(code, text);
      log(kind, kind === 'refused' ? 'too many connections' : text.replace(/^Error: /, ''));
    }
    if (code >= 500 && policy.maxErrors > 0 && ++errors >= policy.maxErrors && !conn._closing) {
      log('dropped', 'too many syntax or protocol errors');
      send.call(this, 421, `4.7.0 ${policy.hostname} Too many syntax or protocol errors`, false);
    }
    return result;
  };
  if (!trusted) return;
  greetAtOnce(conn, () => {
    if (maxClients && connections.size > maxClients) {
      log('refused', 'too many connections');
      conn.send(421, '4.3.2 Too many connections, try again later', false);
      return false;
    }
    return true;
  });
}

/** What every postern SMTP session offers (the listener and sendmail -bs alike). */
export function serverBase(hostname: string, maxMessageSize: number) {
  return {
    name: hostname,
    banner: 'postern',
    size: maxMessageSize,
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideSTARTTLS: true,
    disableReverseLookup: true,
    logger: false,
  };
}

export class SmtpReceiver {
  private readonly servers: SMTPServer[] = [];
  /** When the last SMTP connection came (daemon.idle_exit). */
  private lastConnection = Date.now();
  private readonly relay: RelayList;
  private storing = 0;
  private idleWaiters: (() => void)[] = [];

  /** Resolves when no message is being stored. */
  whenIdle(): Promise<void> {
    if (this.storing === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  constructor(private readonly o: SmtpReceiverOptions) {
    this.relay = relayList(o.relayFrom);
  }

  private newServer(): SMTPServer {
    const o = this.o;
    const server = new PosternSmtpServer({
      ...serverBase(o.hostname, o.maxMessageSize),
      maxClients: o.maxConnections,
      socketTimeout: o.idleTimeout ?? 5 * 60_000,
      closeTimeout: 10_000,
      onMailFrom: (address, session, cb) => cb(this.checkSender(address.address, address.args, session) ?? undefined),
      onRcptTo: (address, session, cb) => cb(this.checkRecipient(address.address, session) ?? undefined),
      onData: (stream, session, cb) => this.receive(stream, session, cb),
    } as ConstructorParameters<typeof SMTPServer>[0], this.relay, {
      hostname: o.hostname, maxErrors: o.maxErrors ?? 20, log: (e) => this.o.events.emit(e),
    });
    server.on('error', () => { /* per-connection trouble: the session ends, the server goes on */ });
    server.server.on('connection', () => { this.lastConnection = Date.now(); });
    this.servers.push(server);
    return server;
  }

  private client(session: SMTPServerSession) {
    const ip = session.remoteAddress.replace(/^::ffff:(?=\d+\.)/, '');
    return { ip, ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}) };
  }

  private reject(session: SMTPServerSession, stage: 'MAIL' | 'RCPT' | 'DATA', reply: SmtpReply, sender?: string, rcpt?: string): ReplyError {
    const c = this.client(session);
    this.o.events.emit({ type: 'rejected', stage, clientIp: c.ip, ...(c.helo ? { helo: c.helo } : {}),
      ...(sender !== undefined ? { sender } : {}), ...(rcpt !== undefined ? { rcpt } : {}), reason: reply.text });
    return fail(reply);
  }

  private checkSender(address: string, args: unknown, session: SMTPServerSession): ReplyError | null {
    const size = Number((args as Record<string, string> | undefined)?.SIZE ?? 0);
    if (size > this.o.maxMessageSize) return this.reject(session, 'MAIL', REPLY.messageTooBig, address);
    if (address !== '' && !isRoutableAddress(qualify(address, this.o.qualifyDomain))) {
      return this.reject(session, 'MAIL', REPLY.badSender, address);
    }
    return null;
  }

  private checkRecipient(address: string, session: SMTPServerSession): ReplyError | null {
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    if (!this.relay.allows(session.remoteAddress)) return this.reject(session, 'RCPT', REPLY.relayDenied, sender, address);
    if (session.envelope.rcptTo.length >= this.o.maxRecipients) return fail(REPLY.tooManyRecipients);
    if (!isRoutableAddress(qualify(address, this.o.qualifyDomain))) return this.reject(session, 'RCPT', REPLY.badRecipient, sender, address);
    return null;
  }

  private receive(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, msg?: string) => void): void {
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    // As Exim: the arrival time and the ID are taken when the data starts.
    const now = this.o.clock.now();
    const message = this.o.spool.incoming(this.o.ids.next(now));
    const ends = new LineEnds();
    const split = new HeaderSplitter();
    /** Decided while the data comes (too big, header too long, spool trouble); answered at its end. */
    let refused: SmtpReply | undefined;
    let writing: Promise<void> = Promise.resolve();
    let ended = false;
    const refuse = (reply: SmtpReply) => {
      if (refused) return;
      refused = reply;
      void message.abort(); // what was written goes at once; the rest of the data is read and dropped
    };
    const pass = (body: Buffer) => {
      if (body.length === 0) return;
      // Back-pressure: the client waits while the spool takes a chunk.
      stream.pause();
      writing = writing.then(() => (refused ? undefined : message.write(body))).then(
        () => { stream.resume(); },
        () => { refuse(REPLY.spoolUnavailable); stream.resume(); },
      );
    };
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      if (stream.sizeExceeded) return refuse(REPLY.messageTooBig);
      try {
        pass(split.push(ends.pushInPlace(chunk))); // the chunk is ours: no copy
      } catch (err) {
        if (!(err instanceof HeaderTooLong)) throw err;
        refuse(REPLY.headerTooLong);
      }
    });
    stream.on('error', (err) => {
      void message.abort();
      cb(err);
    });
    // The client went away mid-DATA: nothing of the message stays in the spool.
    stream.on('close', () => { if (!ended) void message.abort(); });
    stream.on('end', () => {
      ended = true;
      this.storing++;
      void this.finish(message, split, ends, () => writing, () => refused ?? (stream.sizeExceeded ? REPLY.messageTooBig : undefined), now, session, sender)
        .finally(() => {
          if (--this.storing === 0) for (const w of this.idleWaiters.splice(0)) w();
        }).then(
          (id) => cb(null, `${REPLY.queued(id).enhanced} ${REPLY.queued(id).text}`),
          (err: Error) => {
            if (err instanceof ReplyError) return cb(err);
            // A full disk is logged by the spool's owner, once a minute at most.
            if (err instanceof SpoolWriteError) return cb(fail(REPLY.spoolUnavailable));
            // Unexpected: the client is told to try again; the log says why.
            const c = this.client(session);
            this.o.events.emit({ type: 'rejected', stage: 'DATA', clientIp: c.ip, ...(c.helo ? { helo: c.helo } : {}),
              sender, reason: `local error: ${err?.message ?? String(err)}` });
            cb(fail(REPLY.spoolUnavailable));
          },
        );
    });
  }

  /** At the end of the data: the last bytes to the spool, the header fix-ups, the synced commit. */
  private async finish(message: IncomingMessage, split: HeaderSplitter, ends: LineEnds, writing: () => Promise<void>,
    refused: () => SmtpReply | undefined, now: number, session: SMTPServerSession, rawSender: string): Promise<string> {
    await writing();
    let reply = refused();
    if (!reply) {
      try {
        const last = split.push(ends.end());
        const rest = split.end();
        if (last.length) await message.write(last);
        if (rest.length) await message.write(rest);
      } catch (err) {
        reply = err instanceof HeaderTooLong ? REPLY.headerTooLong : REPLY.spoolUnavailable;
      }
    }
    if (reply) {
      await message.abort();
      throw reply.code >= 500 ? this.reject(session, 'DATA', reply, rawSender) : fail(reply);
    }
    try {
      return await this.store(message, split.head ?? Buffer.alloc(0), now, session, rawSender);
    } catch (err) {
      await message.abort();
      // A full disk at the commit: 452 4.3.1, logged by the spool once a minute, not per client.
      throw err instanceof SpoolWriteError ? fail(REPLY.spoolUnavailable) : err;
    }
  }

  private async store(message: IncomingMessage, head: Buffer, now: number, session: SMTPServerSession, rawSender: string): Promise<string> {
    const id = message.id;
    const c = this.client(session);
    const sender = qualify(rawSender, this.o.qualifyDomain);
    const esmtp = session.transmissionType === 'ESMTP' || session.transmissionType?.startsWith('ESMTP');
    // Exim puts "utf8" before the protocol of a message sent with MAIL FROM:<...> SMTPUTF8.
    const utf8 = (session.envelope as { smtpUtf8?: boolean }).smtpUtf8 ? 'utf8' : '';
    const protocol = `${utf8}${esmtp ? 'esmtp' : 'smtp'}`;
    const cleaned = cleanupHeaders(parseHeaderBlock(head), {
      id, now, hostname: this.o.hostname, qualifyDomain: this.o.qualifyDomain, sender, protocol,
      recipients: session.envelope.rcptTo.map((r) => r.address), client: c,
    });
    const origin = { clientIp: c.ip, ...(c.helo ? { helo: c.helo } : {}) };
    const hold = this.o.limits?.check({ clientIp: c.ip });
    const record = await message.commit({
      sender, recipients: cleaned.recipients, arrival: now, protocol, ...origin,
      ...(cleaned.messageIdHeader ? { messageIdHeader: cleaned.messageIdHeader } : {}),
      headers: cleaned.headers, ...(hold ? { hold: hold.entry } : {}),
    }).catch((err: unknown) => {
      this.o.limits?.refund({ clientIp: c.ip }, hold); // a 452: the client sends it again
      throw err;
    });
    this.o.events.emit({ type: 'received', id, sender, protocol, size: record.size, ...origin,
      ...(record.messageIdHeader ? { messageIdHeader: record.messageIdHeader } : {}) });
    hold?.announce(id);
    this.o.kick(id);
    return id;
  }

  /** The SMTP sessions open now, and when the last connection came (daemon.idle_exit). */
  activity(): { sessions: number; lastConnection: number } {
    const sessions = this.servers.reduce((n, s) => n + ((s as unknown as { connections: Set<unknown> }).connections?.size ?? 0), 0);
    return { sessions, lastConnection: this.lastConnection };
  }

  /** One smtp-server per listen address; resolves with the address as bound. */
  listen(host: string, port: number): Promise<string> {
    return this.listenOn(`${host}:${port}`, (server, done) => server.listen(port, host, done));
  }

  /** One smtp-server on a listening socket this process inherited (daemon/listen-fds.ts). */
  listenFd(fd: number): Promise<string> {
    return this.listenOn(`fd ${fd}`, (server, done) => server.listen({ fd }, done));
  }

  /** The descriptors of the listening sockets, to hand to a child. */
  listeningFds(): number[] {
    return this.servers.map((s) => (s as unknown as { server: { _handle?: { fd?: number } } }).server._handle?.fd)
      .filter((fd): fd is number => typeof fd === 'number' && fd >= 0);
  }

  private listenOn(what: string, listen: (server: SMTPServer, done: () => void) => void): Promise<string> {
    const server = this.newServer();
    return new Promise((resolve, reject) => {
      const srv = (server as unknown as { server: import('node:net').Server }).server;
      const onError = (err: Error) => reject(err);
      srv.once('error', onError);
      listen(server, () => {
        srv.off('error', onError);
        const a = srv.address();
        resolve(typeof a === 'object' && a ? (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`) : what);
      });
    });
  }

  close(): Promise<void> {
    return Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined);
  }
}
