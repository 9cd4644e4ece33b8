// admin/actions.ts: the one client for operator actions on queued messages. Every -M*
// action (-Mrm, -Mf, -Mt, -Mar, -Mes, -Mmd, -Mmad), postern-qgrep's --remove, --freeze,
// --thaw and a user's own -Mrm become Change values (core/change.ts) applied by the
// process that delivers from the spool: the daemon, through its control socket, which
// answers `locked` for a message it is delivering; with no daemon, this process under
// the delivery lock. Results are values, rendered once as Exim's lines (resultLine) and
// once as JSON. -Mg goes the same two ways (giveUpAll), as scheduler/give-up.ts's
// settlement, which makes the bounce.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Change, ChangeResult, EnvelopeEdit } from '../core/change.js';
import type { EventBus } from '../core/events.js';
import { tempError } from '../core/exit.js';
import { changeText } from '../log/journal-text.js';
import { controlKeyPath, request } from './control-client.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import type { MessageIdGenerator } from '../spool/message-id.js';

/** An operator action on each of a list of messages. */
export type AdminAction = 'remove' | 'freeze' | 'thaw' | { edit: EnvelopeEdit };

/** What an action did to one message. */
export type ActionResult = 'done' | 'unchanged' | 'gone' | 'locked' | { notRecipient: string };

/** The Change an action is for one message. */
function changeFor(action: AdminAction, id: string, at: number, user: string): Change {
  const by = { at, user };
  return typeof action === 'string' ? { kind: action, id, by } : { kind: 'edit', id, edit: action.edit, by };
}

function resultOf(r: ChangeResult | undefined): ActionResult {
  if (!r || r.kind === 'gone') return 'gone';
  if (r.kind === 'not-recipient') return { notRecipient: r.address };
  return r.kind === 'unchanged' ? 'unchanged' : 'done';
}

/**
 * Applies `action` to `ids` in one transaction, leaving alone what `busy` says is being
 * delivered ('locked'), and logs what was done. Run by the daemon (busy: its
 * scheduler's deliveries) or, with none, by the command under the delivery lock.
 */
export async function applyAction(spool: LmdbSpool, events: EventBus, action: AdminAction, ids: string[], user: string,
  busy: (id: string) => boolean): Promise<ActionResult[]> {
  const at = Date.now();
  const free = ids.filter((id) => !busy(id));
  const applied = await spool.apply(free.map((id) => changeFor(action, id, at, user)));
  const byId = new Map<string, ActionResult>();
  free.forEach((id, n) => {
    const r = applied[n];
    byId.set(id, resultOf(r));
    if (!r || (r.kind !== 'changed' && r.kind !== 'completed')) return;
    if (typeof action === 'string') events.emit({ type: 'admin', id, action: action === 'remove' ? 'removed' : action === 'freeze' ? 'frozen' : 'unfrozen', user });
    for (const e of r.entries) if (e.type === 'edit') events.emit({ type: 'notice', id, text: changeText(e) });
    if (r.kind === 'completed') events.emit({ type: 'completed', id });
  });
  return ids.map((id) => byId.get(id) ?? 'locked');
}

/** The daemon's control key (readable by the spool's administrators), or '' when there is none to read. */
function controlKey(config: Config): string {
  try {
    return readFileSync(controlKeyPath(config.spool.directory), 'utf8').trim();
  } catch {
    return ''; // no daemon has run, or not ours to read
  }
}

function actionName(action: AdminAction): string {
  return typeof action === 'string' ? action : action.edit.op;
}

/**
 * The action on `ids`, done by the process that delivers: the daemon (which leaves
 * what it is delivering alone: 'locked'); with no daemon, this process under the
 * delivery lock (nothing is being delivered then). One result per ID, in order.
 */
export async function runAction(action: AdminAction, ids: string[], config: Config, spool: LmdbSpool, events: EventBus,
  user: string): Promise<ActionResult[]> {
  if (ids.length === 0) return [];
  const key = controlKey(config);
  const reply = await request(config.spool.directory, { op: 'bulk', action, ids, user, key }, 600_000).catch(() => undefined);
  if (reply && !reply.ok) throw tempError(`the daemon refused ${actionName(action)} (${reply.error}); run it as the spool's owner`);
  if (reply) return ids.map((_, n) => (reply.results?.[n] ?? 'gone') as ActionResult);
  const lock = acquireDeliveryLock(config.spool.directory);
  if (!lock.ok) throw tempError(`another postern process (pid ${lock.heldBy}) is delivering from this spool; try again`);
  try {
    return await applyAction(spool, events, action, ids, user, () => false);
  } finally {
    lock.release();
  }
}

/** IDs per -Mg request to the daemon: each holds its bounce (with up to RETURN_SIZE_LIMIT of the body) until done. */
const GIVEUP_BATCH = 100;

/** -Mg for one or many (`flag` names the caller in errors): by the daemon in batches, or here under the delivery lock when none runs. */
export async function giveUpAll(ids: string[], config: Config, spool: LmdbSpool, events: EventBus, user: string,
  gen: MessageIdGenerator, flag = '--giveup'): Promise<Map<string, ActionResult>> {
  const results = new Map<string, ActionResult>();
  if (ids.length === 0) return results;
  const key = controlKey(config);
  for (let i = 0; i < ids.length; i += GIVEUP_BATCH) {
    const batch = ids.slice(i, i + GIVEUP_BATCH);
    const reply = await request(config.spool.directory, { op: 'giveup', ids: batch, user, key }, 600_000).catch(() => undefined);
    if (reply && !reply.ok) throw tempError(`the daemon refused ${flag} (${reply.error}); run it as the spool's owner`);
    if (!reply) {
      if (i > 0) throw tempError(`the daemon went away during ${flag}; run it again for what is left`);
      break;
    }
    batch.forEach((id, n) => results.set(id, (reply.results?.[n] ?? 'gone') as ActionResult));
  }
  if (results.size > 0) return results;
  const lock = acquireDeliveryLock(config.spool.directory);
  if (!lock.ok) throw tempError(`another postern process (pid ${lock.heldBy}) is delivering from this spool; try again`);
  try {
    const { giveUp } = await import('../scheduler/give-up.js');
    const now = Date.now();
    for (const id of ids) {
      const bounce = await giveUp({ spool, events, ids: gen, hostname: config.hostname, qualifyDomain: config.qualify_domain, now }, id, user);
      results.set(id, bounce === undefined ? 'gone' : 'done');
    }
  } finally {
    lock.release();
  }
  // The bounces are due now: a daemon started later sends them.
  return results;
}

/** What a command asked of each message: an action above, or -M / -Mg (postern-qgrep --deliver, --giveup). */
export type Asked = AdminAction | 'deliver' | 'giveup';

/** A result as shown: what was done, or what --dry-run says would be done. */
export type Shown = ActionResult | 'dry-run';

const WOULD: Record<string, string> = {
  remove: 'would be removed', freeze: 'would be frozen', thaw: 'would be thawed', deliver: 'would be delivered', giveup: 'would be given up',
};

/** Exim's words after `Message ID ` for one result (the line is resultLine's; --json carries them). */
export function resultWords(action: Asked, r: Shown): string {
  if (r === 'dry-run') return WOULD[typeof action === 'string' ? action : action.edit.op] ?? 'would be modified';
  if (r === 'gone') return 'does not exist';
  if (r === 'locked') return 'is locked';
  if (typeof r === 'object') return 'error while marking as delivered';
  if (action === 'remove') return 'has been removed';
  if (action === 'freeze') return r === 'done' ? 'is now frozen' : 'is already frozen';
  if (action === 'thaw') return r === 'done' ? 'is no longer frozen' : 'is not frozen';
  if (action === 'giveup') return 'given up';
  if (action === 'deliver') return 'delivered';
  return 'has been modified';
}

/** Exim's line(s) for one result: the one renderer of every -M* action's and postern-qgrep's lines ('' where Exim prints none: -M and -Mg that worked). */
export function resultLine(action: Asked, id: string, r: Shown): string {
  if (r === 'gone') return `Spool data file for ${id} does not exist\n`;
  if (typeof r === 'object') return `Message ${id} - error while marking as delivered:\n  ${r.notRecipient} is not a recipient: message not updated\n`;
  if (r === 'done' && (action === 'deliver' || action === 'giveup')) return '';
  const extra = typeof action === 'object' && action.edit.op === 'mark-all-delivered' && r !== 'locked' ? '\n' : '';
  return `Message ${id} ${resultWords(action, r)}\n${extra}`;
}

/** An action as the control socket carries it, checked (undefined: not one). */
export function parseAction(x: unknown): AdminAction | undefined {
  if (x === 'remove' || x === 'freeze' || x === 'thaw') return x;
  const e = typeof x === 'object' && x !== null ? (x as { edit?: unknown }).edit : undefined;
  if (typeof e !== 'object' || e === null) return undefined;
  const { op, addresses, address } = e as { op?: unknown; addresses?: unknown; address?: unknown };
  const strings = (a: unknown): a is string[] => Array.isArray(a) && a.length > 0 && a.every((s) => typeof s === 'string' && s.length < 1000);
  if (op === 'mark-all-delivered') return { edit: { op } };
  if (op === 'set-sender' && typeof address === 'string' && address.length < 1000) return { edit: { op, address } };
  if ((op === 'add-recipients' || op === 'mark-delivered') && strings(addresses)) return { edit: { op, addresses } };
  return undefined;
}
