// scheduler/give-up.ts: Exim's -Mg. Every undelivered recipient fails without a
// reason, one bounce goes to the sender (none for a bounce), and the message
// completes: one settle Change, one transaction. Run by whichever process delivers from the spool
// (the daemon, between attempts, or a command holding the delivery lock), so a
// message being delivered is never given up under the transport's feet.
import { bounceArrival, failureReport, RETURN_SIZE_LIMIT } from '../bounce/dsn.js';
import type { EventBus } from '../core/events.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import type { Spool } from '../spool/spool.js';

export interface GiveUpContext {
  spool: Spool;
  events: EventBus;
  ids: MessageIdGenerator;
  hostname: string;
  qualifyDomain: string;
  now: number;
}

/** Resolves with the bounce's ID ('' when none was due), or undefined for an unknown message. */
export async function giveUp(c: GiveUpContext, id: string, user: string): Promise<string | undefined> {
  const record = c.spool.load(id);
  if (!record) return undefined;
  const pending = record.recipients.filter((r) => r.state === 'pending');
  const bounce = record.sender !== '' && pending.length > 0 ? failureReport({
    id: c.ids.next(c.now), now: c.now, hostname: c.hostname, qualifyDomain: c.qualifyDomain, user,
    original: record, originalHeaders: c.spool.headers(id) ?? '', originalBody: c.spool.bodyPrefix(id, RETURN_SIZE_LIMIT + 1),
    failed: pending.map((r) => ({ rcpt: r.address })),
  }) : undefined;
  const cancelled = { type: 'admin', id, action: 'cancelled', user } as const;
  const [result] = await c.spool.apply([{ kind: 'settle', id, settlement: {
    recipients: pending.map((r) => ({ ...r, state: 'failed' as const })),
    nextAttempt: null,
    journal: [{ v: 1, type: 'admin', at: c.now, action: 'cancelled', user }],
    ...(bounce ? { enqueue: [bounce] } : {}),
  } }]);
  if (!result || result.kind === 'gone') return undefined;
  c.events.emit(cancelled);
  if (bounce) c.events.emit(bounceArrival(bounce));
  if (result.kind === 'completed') c.events.emit({ type: 'completed', id });
  return bounce?.id ?? '';
}
