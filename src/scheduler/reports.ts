// scheduler/reports.ts: the reports an attempt's settle decision asks for, as new
// messages to be committed in the transaction of its result: a failure report (a
// bounce, with the start of the original) to the sender of the recipients that
// failed, and a delay warning of those still deferred. Builds them (bounce/); sends
// and commits nothing.
import { failureReport, RETURN_SIZE_LIMIT } from '../bounce/dsn.js';
import { delayReport } from '../bounce/delay-warning.js';
import type { MessageRecord, NewMessage } from '../core/types.js';
import type { SchedulerOptions } from './options.js';
import type { SettleDecision } from './settle.js';

/** What the reports need: the spool (the original's body), the one ID generator, the names they carry. */
export type ReportContext = Pick<SchedulerOptions, 'spool' | 'ids' | 'hostname' | 'qualifyDomain' | 'user'>;

export function reportsFor(o: ReportContext, record: MessageRecord, d: SettleDecision, headers: string, now: number): NewMessage[] {
  const base = { now, hostname: o.hostname, qualifyDomain: o.qualifyDomain, ...(o.user ? { user: o.user } : {}), original: record, originalHeaders: headers };
  const out: NewMessage[] = [];
  if (d.bounce) {
    out.push(failureReport({ ...base, id: o.ids.next(now), originalBody: o.spool.bodyPrefix(record.id, RETURN_SIZE_LIMIT + 1), failed: d.bounce }));
  }
  if (d.warning) out.push(delayReport({ ...base, id: o.ids.next(now), delay: d.warning.delay, delayed: d.warning.delayed }));
  return out;
}
