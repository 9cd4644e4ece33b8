// core/types.ts: the nouns every module shares: addresses, replies, per-recipient
// outcomes and the record shapes the spool keeps. Imports nothing from src/.

type RecipientState = 'pending' | 'delivered' | 'failed';

/** The rate limits of `[limits]` (limits/sender-limits.ts). */
export type LimitName = 'per_user' | 'per_client';

/** An SMTP-style reply: basic code, RFC 3463 enhanced code, text. */
export interface SmtpReply {
  code: number;
  enhanced: string;
  text: string;
}

/** Where a recipient goes: Exim's router/transport names and the smarthost list. */
export interface HostSpec {
  name: string;
  port: number;
}

/** A smarthost as a map key: `name:port`. */
export const hostKey = (h: { name: string; port: number }): string => `${h.name}:${h.port}`;
export interface Route {
  router: string;
  transport: string;
  hosts: HostSpec[];
  /** The address sent to the hub when a router redirected it (Debian's hub_user); the spool keeps the original. */
  address?: string;
}

/** The step of an SMTP session a reply or failure belongs to; `dot` is the reply after the final dot. */
export type Phase = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'auth' | 'mail' | 'rcpt' | 'data' | 'dot';

/**
 * Why an attempt did not deliver (a closed set): the hub `refused` the connection, it
 * was `unreachable` (no route), a `timeout`, a `lost_connection`, a `tls` or `auth`
 * failure, a `reply` from the hub, `retry_time` (every host waits for its retry time),
 * a `local` problem (our spool, the client library), or `unroutable` (no route for the
 * address). A delivered outcome has cause `reply` (the hub's 250).
 */
export type Cause = 'refused' | 'unreachable' | 'timeout' | 'lost_connection' | 'tls' | 'auth' | 'reply'
  | 'retry_time' | 'local' | 'unroutable';

/**
 * A reply from a remote server. `enhanced` is the hub's RFC 3463 code when its text
 * began with one; otherwise it is derived from the basic code (class.0.0) and
 * `derived` is set (log lines then print the reply as the hub sent it, without it).
 */
export interface RemoteReply extends SmtpReply {
  derived?: true;
}

/** What went wrong (or right) in an attempt, as data; log/outcome-text.ts renders it. */
export interface Trouble {
  cause: Cause;
  phase?: Phase;
  reply?: RemoteReply;
  /** A short local reason (spool read error, library refusal, routing), or the library's TLS/socket error text. */
  note?: string;
}

/**
 * The result of one delivery attempt for one recipient (a closed set, as OpenSMTPD's
 * OK / TEMPFAIL / PERMFAIL). `host` is "name [ip]:port" as the log prints it.
 */
export interface Outcome extends Trouble {
  rcpt: string;
  kind: 'delivered' | 'deferred' | 'failed';
  /** The address the hub was given when a router redirected `rcpt`, and that router (the log shows both: `=> new <rcpt> R=router`). */
  sentAs?: string;
  router?: string;
  host?: HostLabel;
  /** For a delivery: the TLS and AUTH of the session that carried it. */
  session?: SessionInfo;
}

/** The TLS and AUTH of an SMTP session, as Exim's `X=`, `CV=` and `A=` print them. */
export interface SessionInfo {
  /** `version` as Exim writes it (`TLS1.3`), OpenSSL's cipher name, its secret bits, the certificate verified. */
  tls?: { version: string; cipher: string; bits: number; verified: boolean };
  /** The authenticator, named as Debian's Exim names its client authenticators (`plain`, `login`, `cram_md5`). */
  auth?: string;
}

export interface HostLabel {
  name: string;
  ip: string;
  port: number;
}

/** A host-level event seen during an attempt, logged as `H=name [ip] reason`. */
export interface HostTrouble extends Trouble {
  host: HostLabel;
  /** STARTTLS failed and the session went on in cleartext (tls = opportunistic): a note, not a host failure. */
  fellBack?: true;
}

/** One recipient's result inside an attempt record. */
export interface AttemptResult extends Trouble {
  rcpt: string;
  kind: Outcome['kind'];
}

/** One delivery attempt of a message, kept in its history (what happened, where, when). */
export interface AttemptRecord {
  at: number;
  host?: HostLabel;
  results: AttemptResult[];
}

export interface RecipientRecord {
  address: string;
  state: RecipientState;
  tries: number;
  firstFailure?: number;
  lastTry?: number;
  lastError?: string;
}

/** How and from whom a message arrived: what the `<=` line shows. */
interface Arrival {
  id: string;
  /** '' is the null sender <>. */
  sender: string;
  /** Arrival, ms since the epoch. */
  arrival: number;
  protocol: string;
  user?: string;
  clientName?: string;
  clientIp?: string;
  helo?: string;
  messageIdHeader?: string;
  /** For bounces: the ID of the message they report on. */
  bounceOf?: string;
}

/** Envelope and state of one queued message; headers and body are stored apart. */
export interface MessageRecord extends Arrival {
  v: 1;
  /** Header + body bytes as stored (Exim's S=). */
  size: number;
  frozen: boolean;
  recipients: RecipientRecord[];
  /** ms; null when frozen or finished. The due index holds the same key. */
  nextAttempt: number | null;
  attempts: number;
  lastError?: string;
  warningsSent: number;
  /** Submitted with sendmail -odq: waits for a queue run. */
  queueOnly?: boolean;
  /** Body bytes and chunk count, so readers know what to expect. */
  bodySize: number;
  chunks: number;
  /** The body is in a file of its own (spool/bodies/ID, a body over 1 MB), not in chunks (then 0). */
  bodyFile?: true;
}

/** What the receiving side hands to the spool. */
export interface NewMessage extends Arrival {
  recipients: string[];
  /** The header block, LF line ends, as a byte string (one char per byte). */
  headers: string;
  /** Body chunks, LF line ends. */
  body: Buffer[];
  /** Do not deliver until a queue run (sendmail -odq). */
  queueOnly?: boolean;
}

/** Just the Trouble fields of an outcome or host trouble (what events and records keep). */
export function troubleOf(t: Trouble): Trouble {
  return { cause: t.cause, ...(t.phase ? { phase: t.phase } : {}), ...(t.reply ? { reply: t.reply } : {}), ...(t.note !== undefined ? { note: t.note } : {}) };
}
