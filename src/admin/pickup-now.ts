// admin/pickup-now.ts: a queue command's look at the maildrop before it reads the spool:
// what waits there (dropsWaiting) and, when no daemon is picking up, moving it into the
// spool as the daemon would (pickupNow), so a listing shows what sendmail took.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { DROP_CACHE } from '../config/load.js';
import { EventBus } from '../core/events.js';
import { MainLog } from '../log/mainlog.js';
import { OWN_SOCKET } from '../receive/maildrop.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import type { MessageIdGenerator } from '../spool/message-id.js';

/**
 * The maildrop's names that may be mail (none when there is no maildrop yet). Not mail:
 * the daemon's socket, and the configuration caches when they are root's or ours (the
 * pickup passes them over; one of anyone else's it takes as a drop file). `as`: the uid
 * whose look to take when that is not ours (root about to become the daemon's user).
 */
export function dropsWaiting(config: Config, as = process.geteuid?.()): string[] {
  try {
    return readdirSync(config.spool.maildrop).filter((name) => name !== OWN_SOCKET
      && !(name.startsWith(DROP_CACHE) && [0, as].includes(lstatSync(join(config.spool.maildrop, name), { throwIfNoEntry: false })?.uid)));
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
