// transports/smtp.ts: the remote_smtp transport to the smarthost, on nodemailer's
// SMTPConnection. Owns the connection cache (idle connections reused across messages,
// PIPELINING as the hub offers it), TLS and AUTH policy, and failover across the host
// list, the sender and headers rewritten as they leave (outgoing.ts). Returns
// per-recipient outcomes; only a bug makes it throw.
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Clock, Timer } from '../core/clock.js';
import { hostKey, type HostLabel, type HostSpec, type HostTrouble, type Outcome, type SessionInfo, type Trouble } from '../core/types.js';
import { classifyError, classifyRejection, connectTrouble, oneLine, parseReply, type SmtpClientError } from './smtp-errors.js';
import { outgoing, type OutgoingJob, type OutgoingRewrite } from './outgoing.js';
import type { DeliveryJob, DeliveryResult, ProbeResult, Transport } from './transport.js';
import { oneChunk, passWire, toWire } from './wire.js';

export interface SmtpTransportOptions {
  heloName: string;
  tls: 'none' | 'opportunistic' | 'required' | 'implicit';
  tlsCaFile?: string;
  authUser?: string;
  authPasswordFile?: string;
  /** Inactivity limit for one SMTP command, ms. */
  timeout: number;
  /** How long an idle connection is kept for the next message, ms. */
  idleTime?: number;
  clock: Clock;
  /** [rewrite]: the sender and headers as they leave (outgoing.ts); none: sent as stored. */
  rewrite?: OutgoingRewrite;
}

interface Cached {
  conn: SMTPConnection;
  label: HostLabel;
  /** Set when STARTTLS failed and this session went on in cleartext (tls = opportunistic). */
  fellBack?: Trouble;
  timer?: Timer;
  dead: boolean;
  /** Has carried a message before: the hub may have dropped it while idle. */
  used: boolean;
  /** TLS and AUTH of this session, for the `=>` line (X=, CV=, A=). */
  session?: SessionInfo;
  /** The connection's data streams can pass a message on in DATA form (see passWire). */
  wire: boolean;
  /** The next message is handed over in DATA form (toWire), this many bytes: its data stream only passes it on. */
  wireNext: number | false;
}

/** Exim's words when a message needs SMTPUTF8 and the hub does not offer it (transports/smtp.c). */
const UTF8_NOT_OFFERED = 'utf8 support required but not offered for forwarding';

/** Non-ASCII in the envelope: the message needs the hub's SMTPUTF8 (RFC 6531). */
export function needsSmtpUtf8(sender: string, recipients: string[]): boolean {
  return [sender, ...recipients].some((a) => /[^\x00-\x7f]/.test(a));
}

/** The secret bits of an OpenSSL cipher, by its name (Node does not say; Exim prints them). */
export function cipherBits(name: string): number {
  if (/AES_?256|CHACHA20|CAMELLIA_?256|ARIA_?256/i.test(name)) return 256;
  if (/AES_?128|CAMELLIA_?128|ARIA_?128|SM4/i.test(name)) return 128;
  if (/3DES|DES-CBC3/i.test(name)) return 168;
  return 0;
}

/** Exim's name for the TLS version: SSL_get_version() without its "v" (TLSv1.3 → TLS1.3). */
export function tlsVersionName(protocol: string): string {
  return protocol.replace('v', '');
}


type Callback<T> = (err: Error | null | undefined, value?: T) => void;

/**
 * One SMTPConnection call as a promise that always settles. nodemailer leaves a
 * callback pending when the hub drops the connection in the middle of some commands
 * (AUTH among them), which held a delivery slot forever; so the end of the connection,
 * an error event and (when given) a deadline settle it too.
 */
function guarded<T>(conn: SMTPConnection, deadlineMs: number | undefined, start: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish: Callback<T> = (err, value) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      conn.off('end', onEnd);
      conn.off('error', onError);
      if (err) reject(err);
      else resolve(value as T);
    };
    const onEnd = () => finish(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }));
    const onError = (err: Error) => finish(err);
    if (deadlineMs !== undefined) {
      timer = setTimeout(() => finish(Object.assign(new Error('Timeout: no answer in time'), { code: 'ETIMEDOUT' })), deadlineMs);
    }
    conn.on('end', onEnd);
    conn.on('error', onError);
    try {
      start(finish);
    } catch (err) {
      finish(err as Error);
    }
  });
}

/**
 * Whether to AUTH in this session: Exim's hosts_try_auth, as Debian's smarthost
 * transport sets it for passwd.client's hosts. Only inside TLS (the password never
 * travels in clear), and only when the hub offers AUTH; otherwise the message goes
 * without, and the hub decides whether it takes it. tls = "required" or "implicit"
 * never gets this far without TLS; a hub that refuses the login (535) is still a host
 * error, as SPEC says.
 */
function mayAuthenticate(conn: SMTPConnection): boolean {
  // nodemailer's list of the mechanisms EHLO offered (10.6, pinned); were it gone in
  // another version, AUTH is tried inside TLS as before rather than silently never.
  const offered = (conn as unknown as { _supportedAuth?: unknown })._supportedAuth;
  return conn.secure && (!Array.isArray(offered) || offered.length > 0);
}

/** A failure of the TLS handshake itself (not a missing STARTTLS, not a reply code). */
function tlsHandshakeFailed(err: SmtpClientError): boolean {
  return connectTrouble(err).cause === 'tls' && !/did not offer STARTTLS/.test(err.message);
}

export class SmtpTransport implements Transport {
  readonly name = 'remote_smtp';
  private readonly idle = new Map<string, Cached[]>();
  private closing = false;

  constructor(private readonly opts: SmtpTransportOptions) {}

  async deliver(stored: DeliveryJob): Promise<DeliveryResult> {
    const job = outgoing(stored, this.opts.rewrite);
    const troubles: HostTrouble[] = [];
    const healthy: HostSpec[] = [];
    let lastTrouble: Trouble = { cause: 'retry_time' };
    for (const host of stored.hosts) {
      const ips = await this.addresses(host);
      if (ips.length === 0) {
        lastTrouble = { cause: 'local', note: 'host lookup did not complete' };
        troubles.push({ host: { name: host.name, ip: host.name, port: host.port }, ...lastTrouble });
        continue;
      }
      // Every address of a host, in the resolver's order, as Exim tries them.
      for (const ip of ips) {
        const attempt = await this.tryHost(host, ip, job);
        if (attempt.kind === 'done') {
          healthy.push(host);
          return { outcomes: attempt.outcomes, troubles, healthy, ...(attempt.notes.length ? { notes: attempt.notes } : {}) };
        }
        troubles.push({ host: attempt.label, ...attempt.trouble });
        lastTrouble = attempt.trouble;
      }
    }
    // Every host failed as a host: everyone is deferred with the last reason.
    const outcomes = job.recipients.map((rcpt): Outcome => ({ rcpt, kind: 'deferred', ...lastTrouble }));
    return { outcomes, troubles, healthy };
  }

  /** Connects to each address of the host as a delivery would (EHLO, TLS, AUTH), then QUIT; the first that answers. */
  async probe(host: HostSpec): Promise<ProbeResult> {
    const ips = await this.addresses(host);
    let last: ProbeResult = { ok: false, host: { name: host.name, ip: host.name, port: host.port }, trouble: { cause: 'local', note: 'host lookup did not complete' } };
    for (const ip of ips) {
      try {
        const cached = await this.connect(host, ip);
        this.discard(cached, true);
        return { ok: true, host: cached.label };
      } catch (err) {
        const e = err as SmtpClientError & { label?: HostLabel };
        last = { ok: false, host: e.label ?? { name: host.name, ip, port: host.port }, trouble: connectTrouble(e) };
      }
    }
    return last;
  }

  private async addresses(host: HostSpec): Promise<string[]> {
    if (isIP(host.name)) return [host.name];
    try {
      return (await lookup(host.name, { all: true })).map((a) => a.address);
    } catch {
      return [];
    }
  }

  private async tryHost(host: HostSpec, ip: string, job: OutgoingJob):
    Promise<{ kind: 'done'; outcomes: Outcome[]; notes: HostTrouble[] } | { kind: 'host'; label: HostLabel; trouble: Trouble }> {
    // A cached connection may have been closed by the hub since; one retry on a fresh one.
    for (let round = 0; round < 2; round++) {
      let cached: Cached;
      try {
        cached = round === 0 ? this.takeIdle(host) ?? await this.connect(host, ip) : await this.connect(host, ip);
      } catch (err) {
        const e = err as SmtpClientError & { label?: HostLabel };
        return { kind: 'host', label: e.label ?? { name: host.name, ip, port: host.port }, trouble: connectTrouble(e) };
      }
      const reused = cached.used;
      const notes: HostTrouble[] = cached.fellBack && !reused ? [{ host: cached.label, ...cached.fellBack, fellBack: true }] : [];
      // A message that needs SMTPUTF8 is not sent as raw 8-bit to a hub that does not
      // offer it: each recipient fails here, with Exim's words (Exim defers; no retry
      // would change what this hub offers). The session is fine for the next message.
      const offered = (cached.conn as unknown as { _supportedExtensions?: string[] })._supportedExtensions ?? [];
      if (needsSmtpUtf8(job.sender, job.recipients) && !offered.includes('SMTPUTF8')) {
        cached.used = true;
        this.release(host, cached);
        return { kind: 'done', notes, outcomes: job.recipients.map((rcpt): Outcome =>
          ({ rcpt, kind: 'failed', cause: 'local', note: UTF8_NOT_OFFERED, host: cached.label })) };
      }
      // A message small enough to hold goes out in DATA form, made natively (toWire).
      const whole = cached.wire && job.messageParts ? toWire(job.messageParts()) : undefined;
      const stream = whole ? oneChunk(whole) : job.message();
      cached.wireNext = whole ? whole.length : false;
      try {
        const info = await this.send(cached, job, stream);
        cached.used = true;
        this.release(host, cached);
        return { kind: 'done', outcomes: this.fromInfo(job, cached.label, info, cached.session), notes };
      } catch (err) {
        const e = err as SmtpClientError;
        const c = classifyError(e);
        cached.wireNext = false; // the envelope may have failed before any data stream was made
        if (c.scope === 'host') {
          this.discard(cached);
          if (reused && stream.readableDidRead === false) continue;
          return { kind: 'host', label: cached.label, trouble: c.trouble };
        }
        // The hub refused this message; the session is fine: RSET and keep it. A read
        // error of our own leaves a DATA half sent: that session cannot be reused.
        if (e.code === 'ESTREAM') this.discard(cached);
        else cached.conn.reset((resetErr) => (resetErr ? this.discard(cached) : this.release(host, cached)));
        if (c.scope === 'recipients') {
          return { kind: 'done', outcomes: this.fromInfo(job, cached.label, { accepted: [], rejectedErrors: e.rejectedErrors ?? [], response: '' }), notes };
        }
        const kind = c.permanent ? 'failed' : 'deferred';
        return {
          kind: 'done',
          notes,
          outcomes: job.recipients.map((rcpt): Outcome => ({ rcpt, kind, ...c.trouble, host: cached.label })),
        };
      }
    }
    throw new Error('unreachable');
  }

  private fromInfo(job: OutgoingJob, label: HostLabel,
    info: { accepted: string[]; rejectedErrors?: SmtpClientError[]; response: string }, session?: SessionInfo): Outcome[] {
    const rejected = new Map((info.rejectedErrors ?? []).map((e) => [e.recipient ?? '', e]));
    const confirmation = parseReply(info.response, 250);
    return job.recipients.map((rcpt): Outcome => {
      const err = rejected.get(rcpt);
      if (err) {
        const r = classifyRejection(err);
        return { rcpt, kind: r.permanent ? 'failed' : 'deferred', ...r.trouble, host: label };
      }
      if (info.accepted.includes(rcpt)) {
        return { rcpt, kind: 'delivered', cause: 'reply', phase: 'dot', reply: confirmation, host: label, ...(session ? { session } : {}) };
      }
      return { rcpt, kind: 'deferred', cause: 'local', note: 'recipient not confirmed by remote server', host: label };
    });
  }

  private send(cached: Cached, job: OutgoingJob, stream: NodeJS.ReadableStream):
    Promise<{ accepted: string[]; rejectedErrors?: SmtpClientError[]; response: string }> {
    // No overall deadline: a big message may take long; socketTimeout bounds silence.
    return guarded(cached.conn, undefined, (cb) => {
      // BODY=8BITMIME is always correct to declare (RFC 6152), and 8-bit mail needs it.
      cached.conn.send({ from: job.sender, to: job.recipients, size: job.size, use8BitMime: true } as SMTPConnection.Envelope,
        stream as never, (err, info) => cb(err, info as never));
    });
  }

  private takeIdle(host: HostSpec): Cached | undefined {
    const list = this.idle.get(hostKey(host));
    while (list && list.length > 0) {
      const c = list.pop() as Cached;
      c.timer?.cancel();
      if (!c.dead) return c;
    }
    return undefined;
  }

  private release(host: HostSpec, c: Cached): void {
    if (c.dead) return;
    if (this.closing) return this.discard(c, true);
    const list = this.idle.get(hostKey(host)) ?? [];
    this.idle.set(hostKey(host), list);
    list.push(c);
    c.timer = this.opts.clock.at(this.opts.clock.now() + (this.opts.idleTime ?? 5000), () => {
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      this.discard(c, true);
    });
  }

  private discard(c: Cached, polite = false): void {
    c.timer?.cancel();
    c.dead = true;
    if (polite) c.conn.quit();
    else c.conn.close();
  }

  private async connect(host: HostSpec, ip: string): Promise<Cached> {
    try {
      return await this.open(host, ip, this.opts.tls);
    } catch (err) {
      // Exim and Postfix: under "opportunistic" a failed STARTTLS handshake is not a
      // reason to keep mail back; deliver in cleartext, and say so in the log.
      if (this.opts.tls !== 'opportunistic' || !tlsHandshakeFailed(err as SmtpClientError)) throw err;
      const cached = await this.open(host, ip, 'none');
      cached.fellBack = { cause: 'tls', phase: 'starttls', note: oneLine((err as Error).message) };
      return cached;
    }
  }

  private async open(host: HostSpec, ip: string, tls: SmtpTransportOptions['tls']): Promise<Cached> {
    const label: HostLabel = { name: host.name, ip, port: host.port };
    const o = this.opts;
    const verify = tls === 'required' || tls === 'implicit';
    const tlsOptions: Record<string, unknown> = { rejectUnauthorized: verify };
    if (!isIP(host.name)) tlsOptions.servername = host.name;
    if (verify && o.tlsCaFile) tlsOptions.ca = readFileSync(o.tlsCaFile);
    const conn = new SMTPConnection({
      host: ip,
      port: host.port,
      name: o.heloName,
      secure: tls === 'implicit',
      ignoreTLS: tls === 'none',
      requireTLS: tls === 'required',
      opportunisticTLS: tls === 'opportunistic',
      tls: tlsOptions,
      ...(isIP(host.name) ? {} : { servername: host.name }),
      connectionTimeout: Math.min(o.timeout, 30_000),
      greetingTimeout: Math.min(o.timeout, 30_000),
      socketTimeout: o.timeout,
      socketCloseTimeout: 1000,
      logger: false,
    } as SMTPConnection.Options);
    const cached: Cached = { conn, label, dead: false, used: false, wire: false, wireNext: false };
    cached.wire = passWire(conn, cached);
    conn.on('error', () => { cached.dead = true; });
    conn.on('end', () => { cached.dead = true; });
    // Greeting, EHLO, STARTTLS and AUTH: a few commands, each bounded by socketTimeout;
    // the deadline is a backstop for a callback that never comes.
    const deadline = 4 * o.timeout + 30_000;
    let authenticating = false;
    let authenticated = false;
    try {
      await guarded<void>(conn, deadline, (cb) => conn.connect(() => cb(null)));
      if (o.authUser !== undefined && mayAuthenticate(conn)) {
        const pass = readFileSync(o.authPasswordFile ?? '', 'utf8').split('\n')[0] ?? '';
        authenticating = true;
        await guarded<void>(conn, deadline, (cb) => conn.login({ user: o.authUser as string, pass }, (err) => cb(err)));
        authenticated = true;
      }
    } catch (err) {
      cached.dead = true;
      conn.close();
      const e = err as SmtpClientError;
      // A connection lost during AUTH is an AUTH failure as far as the log can tell.
      if (authenticating && e.code !== 'EAUTH') {
        e.code = 'EAUTH';
        e.message = `${e.message} during AUTH`;
      }
      throw Object.assign(e, { label });
    }
    cached.session = this.sessionOf(conn, verify, authenticated);
    return cached;
  }

  /** What the `=>` line says of the session: TLS version, cipher and bits, verified or not; the authenticator. */
  private sessionOf(conn: SMTPConnection, verified: boolean, authenticated: boolean): SessionInfo | undefined {
    const c = conn as unknown as { secure: boolean; _socket?: { getProtocol?(): string | null; getCipher?(): { name: string } | undefined; authorized?: boolean };
      _authMethod?: string | false };
    const session: SessionInfo = {};
    const sock = c._socket;
    const protocol = c.secure ? sock?.getProtocol?.() : undefined;
    const cipher = c.secure ? sock?.getCipher?.() : undefined;
    if (protocol && cipher) {
      session.tls = { version: tlsVersionName(protocol), cipher: cipher.name, bits: cipherBits(cipher.name), verified: verified && sock?.authorized === true };
    }
    if (authenticated && c._authMethod) session.auth = c._authMethod.toLowerCase().replace(/-/g, '_');
    return session.tls || session.auth ? session : undefined;
  }

  /** Closes idle connections now and busy ones as their delivery ends. */
  async close(): Promise<void> {
    this.closing = true;
    for (const list of this.idle.values()) for (const c of list.splice(0)) this.discard(c, true);
    this.idle.clear();
  }
}
