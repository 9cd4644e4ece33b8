// admin/pickup-now.ts: a queue command's look at the maildrop before it reads the spool:
// what waits there (dropsWaiting) and, when no daemon is picking up, moving it into the
// spool as the daemon would (pickupNow), so a listing shows what sendmail took.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { DROP_CACHE } from '../config/load.js';
import { EventBus } from '../core/events.js';
import { MainLog } from '../log/mainlog.js';
import { OWN_SOCKET, PROOF_PREFIX } from '../receive/maildrop.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import type { MessageIdGenerator } from '../spool/message-id.js';

/**
 * The maildrop's names that may be mail (none when there is no maildrop yet). Not mail:
 * the users' socket, their proof files, and the configuration copies of root, of ours or
 * of the maildrop's owner (the daemon's user: root's commands look as it would).
 */
export function dropsWaiting(config: Config): string[] {
  const drop = config.spool.maildrop;
  try {
    const trusted = [0, process.geteuid?.(), lstatSync(drop).uid];
    return readdirSync(drop).filter((name) => name !== OWN_SOCKET && !name.startsWith(PROOF_PREFIX)
      && !(name.startsWith(DROP_CACHE) && trusted.includes(lstatSync(join(drop, name), { throwIfNoEntry: false })?.uid)));
  } catch {
    return [];
  }
}

/**
 * Moves what waits in the maildrop into the spool before a queue command looks at
 * it, as the daemon would (it does it only when it can take the delivery lock: else
 * the process that holds it, the daemon, picks up itself). The caller's ID generator:
 * one per process, so the IDs made here never meet a bounce's.
 */
export async function pickupNow(config: Config, spool: LmdbSpool, ids: MessageIdGenerator): Promise<void> {
  if (dropsWaiting(config).length === 0) return;
  let lock;
  try {
    lock = acquireDeliveryLock(config.spool.directory);
  } catch {
    return;
  }
  if (!lock.ok) return;
  try {
    const { Pickup } = await import('../receive/pickup.js');
    const { systemClock } = await import('../core/clock.js');
    const events = new EventBus();
    const log = new MainLog(config.log.file, config.log.format, Date.now);
    events.on((e) => log.writeSync(e));
    await new Pickup({
      dir: config.spool.maildrop, spool, events, clock: systemClock, ids, hostname: config.hostname, qualifyDomain: config.qualify_domain,
      maxMessageSize: config.listen.max_message_size, maxRecipients: config.listen.max_recipients, kick: () => {},
    }).run();
  } finally {
    lock.release();
  }
}
