// transports/transport.ts: the contract between the scheduler and a transport. A
// transport turns one delivery job into per-recipient outcomes and never throws for
// remote trouble; it does not touch the spool.
import type { Readable } from 'node:stream';
import type { HostLabel, HostSpec, HostTrouble, Outcome, Trouble } from '../core/types.js';

export interface DeliveryJob {
  id: string;
  sender: string;
  recipients: string[];
  /** Hosts to try, in failover order (already filtered by the host retry state). */
  hosts: HostSpec[];
  /** The message's size as stored (headers, blank line, body). */
  size: number;
  /** The header block as stored (a byte string, one char per byte, LF line ends): the transport rewrites what it must (outgoing.ts). */
  headers: string;
  /** A fresh stream of the body, LF line ends. */
  body: () => Readable;
  /** The same body read at once, in the spool's chunks, for one small enough to hold (a body within 1 MB). */
  bodyChunks?: () => Buffer[];
}

export interface DeliveryResult {
  outcomes: Outcome[];
  /** Hosts that failed as hosts (refused, timed out, TLS, AUTH): logged and remembered. */
  troubles: HostTrouble[];
  /** Hosts that answered SMTP properly during this job. */
  healthy: HostSpec[];
  /** Worth a log line but not a host failure (a STARTTLS failure that fell back to cleartext). */
  notes?: HostTrouble[];
}

/** What a probe of a host found: it answered (connect, EHLO, TLS and AUTH as configured, QUIT), or why not. */
export type ProbeResult = { ok: true; host: HostLabel } | { ok: false; host: HostLabel; trouble: Trouble };

export interface Transport {
  readonly name: string;
  deliver(job: DeliveryJob): Promise<DeliveryResult>;
  /** Is a host that was down answering again? Sends no mail. Optional: without it, hosts are not probed. */
  probe?(host: HostSpec): Promise<ProbeResult>;
  close(): Promise<void>;
}
