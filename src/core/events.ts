// core/events.ts: the typed events domain code emits (arrival, delivery results,
// operator actions, rejections). Formatting happens at the edge (log/mainlog.ts);
// nothing else builds log strings.
import { EventEmitter } from 'node:events';
import type { HostLabel, LimitName, RemoteReply, SessionInfo, Trouble } from './types.js';

export type MtaEvent =
  | { type: 'received'; id: string; sender: string; protocol: string; size: number; user?: string;
      clientName?: string; clientIp?: string; helo?: string; messageIdHeader?: string; bounceOf?: string }
  /** `sentAs`: the address the hub got when a router redirected `rcpt` (hub_user); Exim logs `=> sentAs <rcpt>`. */
  | { type: 'delivered'; id: string; rcpt: string; first: boolean; router: string; transport: string;
      host: HostLabel; reply: RemoteReply; session?: SessionInfo; sentAs?: string }
  /** A recipient deferred or failed: the result as data (log/outcome-text.ts words it); `sender` for MAIL FROM:<>. */
  | { type: 'deferred' | 'failed'; id: string; rcpt: string; router: string; transport: string; sender: string;
      result: Trouble; host?: HostLabel; sentAs?: string }
  /** A host failed as a host (or, with `fellBack`, TLS failed and delivery went on in cleartext). */
  | { type: 'hostError'; id: string; host: HostLabel; result: Trouble; fellBack?: true }
  | { type: 'completed'; id: string }
  /** Frozen: a bounce nobody takes, or a recipient past its retry rule's last cutoff. */
  | { type: 'frozen'; id: string; reason: 'bounce' }
  | { type: 'frozen'; id: string; reason: 'retry_timeout'; rcpt: string; sender: string; result: Trouble }
  /** A sender went over a `[limits]` rate: `id` is its first message held (frozen on arrival); once per episode. */
  | { type: 'limited'; id: string; limit: LimitName; key: string; rate: string }
  | { type: 'admin'; id: string; action: 'frozen' | 'unfrozen' | 'removed' | 'cancelled'; user: string }
  | { type: 'rejected'; stage: 'connect' | 'MAIL' | 'RCPT' | 'DATA'; clientName?: string; clientIp?: string;
      helo?: string; sender?: string; rcpt?: string; reason: string }
  | { type: 'notice'; id?: string; text: string }
  /** A smarthost that was down answered a probe: `due` messages held back for it are due now. */
  | { type: 'hostBack'; host: HostLabel; due: number }
  /** An SMTP client's command refused by the protocol engine, or its session ended by a limit. */
  | { type: 'smtpError'; kind: 'syntax' | 'protocol' | 'dropped' | 'timeout' | 'refused'; clientIp?: string;
      helo?: string; command?: string; reason: string };

/** A tiny typed bus. The daemon owns one; the CLI owns one per command. */
export class EventBus {
  private readonly ee = new EventEmitter();
  emit(event: MtaEvent): void {
    this.ee.emit('event', event);
  }
  on(fn: (event: MtaEvent) => void): () => void {
    this.ee.on('event', fn);
    return () => this.ee.off('event', fn);
  }
}
