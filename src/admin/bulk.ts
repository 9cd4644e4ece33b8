// admin/bulk.ts: postern-qgrep's bulk actions on the messages that match, through the one
// client of admin/actions.ts: --remove, --freeze, --thaw in one spool transaction, by
// the daemon or under the delivery lock (as -Mrm, -Mf, -Mt: the same per-message
// lines, the same operator log lines), --deliver as -M (all made due in one
// transaction, then the daemon is poked or this process delivers), --giveup as -Mg
// (the daemon does it between attempts, refusing a message being delivered as locked;
// with no daemon, this process under the delivery lock). --dry-run changes nothing and
// says what would be done. --json: one `{"id","action","result"}` per message.
import { userInfo } from 'node:os';
import type { Config } from '../config/schema.js';
import { EventBus } from '../core/events.js';
import { MainLog } from '../log/mainlog.js';
import { giveUpAll, resultLine, runAction, type Shown } from './actions.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import type { DeliverHere } from './queue-commands.js';

/** postern-qgrep's bulk actions. */
export type BulkAction = 'remove' | 'freeze' | 'thaw' | 'deliver' | 'giveup';

/** What happened to one message: done, already so (unchanged), not in the spool (gone), being delivered (locked), or dry-run. */
type BulkResult = Extract<Shown, string>;

function operator(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

export async function bulkAction(action: BulkAction, ids: string[], o: { dryRun: boolean; json: boolean; frozen: ReadonlySet<string> },
  config: Config, spool: LmdbSpool, out: (s: string) => void, gen: MessageIdGenerator, deliverHere: DeliverHere): Promise<number> {
  const show = (id: string, result: BulkResult) => {
    if (o.json) out(JSON.stringify({ id, action, result }) + '\n');
    else out(resultLine(action, id, result));
  };
  if (o.dryRun) {
    for (const id of ids) {
      const already = (action === 'freeze' && o.frozen.has(id)) || (action === 'thaw' && !o.frozen.has(id));
      show(id, already ? 'unchanged' : 'dry-run');
    }
    return 0;
  }
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.writeSync(e));
  const user = operator();
  let results: Map<string, BulkResult>;
  if (action === 'remove' || action === 'freeze' || action === 'thaw') {
    const done = await runAction(action, ids, config, spool, events, user);
    results = new Map(ids.map((id, n) => [id, done[n] as BulkResult]));
  } else if (action === 'deliver') {
    results = new Map(ids.map((id) => [id, 'done']));
    for (const id of ids) show(id, 'done');
    if (ids.length === 0) return 0;
    const { queueRun } = await import('./queue-commands.js');
    return await queueRun(config, spool, { force: true, thaw: true, ids }, gen, deliverHere);
  } else {
    results = await giveUpAll(ids, config, spool, events, user, gen) as Map<string, BulkResult>; // never an edit's result
  }
  let status = 0;
  for (const id of ids) {
    const r = results.get(id) ?? 'gone';
    if (r !== 'done') status = 1;
    show(id, r);
  }
  return status;
}
