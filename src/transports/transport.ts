// transports/transport.ts: the contract between the scheduler and a transport. A
// transport turns one delivery job into per-recipient outcomes and never throws for
// remote trouble; it does not touch the spool.
import type { Readable } from 'node:stream';
import type { HostSpec, HostTrouble, Outcome } from '../core/types.js';

export interface DeliveryJob {
  id: string;
  sender: string;
  recipients: string[];
  /** Hosts to try, in failover order (already filtered by the host retry state). */
  hosts: HostSpec[];
  size: number;
  /** A fresh stream of the whole message (headers, blank line, body), LF line ends. */
  message: () => Readable;
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

export interface Transport {
  readonly name: string;
  deliver(job: DeliveryJob): Promise<DeliveryResult>;
  close(): Promise<void>;
}
