// core/types.ts: the nouns every module shares: addresses, replies, per-recipient
// outcomes and the record shapes the spool keeps. Imports nothing from src/.

export type RecipientState = 'pending' | 'delivered' | 'failed';

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
export interface Route {
  router: string;
  transport: string;
  hosts: HostSpec[];
}

/**
 * The result of one delivery attempt for one recipient (a closed set, as OpenSMTPD's
 * OK / TEMPFAIL / PERMFAIL). `host` is "name [ip]:port" as the log prints it.
 */
export interface Outcome {
  rcpt: string;
  kind: 'delivered' | 'deferred' | 'failed';
  /** The remote reply, or a local description of the trouble. */
  detail: string;
  /** errno-ish number shown in `defer (N)`: 111 refused, -44 RCPT 4xx, -1 other. */
  errno?: number;
  host?: HostLabel;
}

export interface HostLabel {
  name: string;
  ip: string;
  port: number;
}

/** A host-level event seen during an attempt, logged as `H=name [ip] reason`. */
export interface HostTrouble {
  host: HostLabel;
  reason: string;
}

/** One delivery attempt of a message, kept in its history (what happened, where, when). */
export interface AttemptRecord {
  at: number;
  host?: HostLabel;
  results: { rcpt: string; kind: Outcome['kind']; detail: string; errno?: number }[];
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
export interface Arrival {
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
