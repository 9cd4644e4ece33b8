// admin/queue-commands.ts: Exim's queue commands on the spool, daemon running or not:
// -bp and friends, -Mvh/-Mvb/-Mvl, -Mrm/-Mf/-Mt, -M and -q runs. Per-message results
// go to stdout in Exim's words; the exit status is 1 if any ID failed.
import { userInfo } from 'node:os';
import type { Config } from '../config/schema.js';
import { EventBus } from '../core/events.js';
import { usage } from '../core/exit.js';
import { MainLog } from '../log/mainlog.js';
import { journalJson, journalText } from '../log/journal-text.js';
import { isRoutableAddress } from '../core/address.js';
import { request } from './control-client.js';
import { LmdbSpool, QUEUE_ONLY_DELAY } from '../spool/lmdb-spool.js';
import { isMessageId, MessageIdGenerator } from '../spool/message-id.js';
import { resultLine, resultWords, runAction, type ActionResult, type AdminAction } from './actions.js';
import type { EnvelopeEdit } from '../core/change.js';

type Out = (s: string | Buffer) => void;

function operator(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

export function checkIds(flag: string, ids: string[]): void {
  if (ids.length === 0) throw usage(`no message ID given after ${flag}`);
  for (const id of ids) if (!isMessageId(id)) throw usage(`malformed message id ${id} after ${flag} option`);
}

export async function messageCommand(flag: string, args: string[], config: Config, spool: LmdbSpool, out: Out,
  idGen = new MessageIdGenerator(), err: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  const json = args.includes('--json');
  let ids = args.filter((a) => a !== '--json');
  if (EDITS.has(flag)) return editCommand(flag, ids, config, spool, json, out);
  let status = 0;
  if (MANY.has(flag)) {
    // As Exim, one ID after another: a malformed one is reported and the others done.
    const good = ids.filter((id) => isMessageId(id));
    if (good.length > 0 && good.length < ids.length) {
      for (const id of ids) if (!isMessageId(id)) err(`postern: malformed message id ${id} after ${flag} option\n`);
      status = 1;
      ids = good;
    }
  }
  checkIds(flag, ids);
  if (flag === '-Mvh' || flag === '-Mvb' || flag === '-Mvl' || flag === '-Mvc') {
    if (ids.length > 1) throw usage(`only one message can be listed at once with ${flag}`);
    const id = ids[0] as string;
    // Headers and body are shown as the bytes they are, whatever their charset.
    const headers = flag === '-Mvh' || flag === '-Mvc' ? spool.headers(id) : undefined;
    const text = flag === '-Mvl' ? (spool.load(id) ? journalText(spool.journal(id)) : undefined)
      : flag === '-Mvh' ? (headers === undefined ? undefined : Buffer.from(headers, 'latin1'))
      : flag === '-Mvc' ? (headers === undefined || !spool.load(id) ? undefined : Buffer.concat([Buffer.from(`${headers}\n`, 'latin1'), await bodyBytes(spool, id)]))
      : spool.load(id) ? await bodyBytes(spool, id) : undefined;
    if (json) {
      // The message as JSON: headers and body as text (latin1: one char per byte).
      if (text === undefined) {
        out(JSON.stringify({ id, action: flag.slice(1), result: 'gone' }) + '\n');
        return 1;
      }
      if (flag === '-Mvl') out(JSON.stringify({ id, history: journalJson(spool.journal(id), spool.load(id)?.sender ?? '') }) + '\n');
      else out(JSON.stringify({ id, [flag === '-Mvh' ? 'headers' : flag === '-Mvb' ? 'body' : 'message']: Buffer.from(text).toString('latin1') }) + '\n');
      return 0;
    }
    if (text === undefined) {
      out(`Spool data file for ${id} does not exist\n`);
      return 1;
    }
    out(text);
    return 0;
  }
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.writeSync(e));
  const user = operator();
  if (flag === '-Mg') {
    for (const id of ids) {
      const result = await giveUpCommand(id, config, spool, events, user, idGen);
      out(json ? JSON.stringify({ id, result: resultWords('giveup', result) }) + '\n' : resultLine('giveup', id, result));
      if (result !== 'done') status = 1;
    }
    return status;
  }
  const action = ACTIONS[flag];
  if (!action) throw usage(`unknown option ${flag}`);
  const results = await runAction(action, ids, config, spool, events, user);
  return Math.max(status, show(action, ids, results, json, out));
}

/** The -M actions on queued messages, as admin/actions.ts names them. */
const ACTIONS: Record<string, AdminAction> = { '-Mrm': 'remove', '-Mf': 'freeze', '-Mt': 'thaw', '-Mmad': { edit: { op: 'mark-all-delivered' } } };

/**
 * Prints one result per ID: Exim's lines, or with --json `{"id", "result"}` (result:
 * Exim's words after `Message ID `, e.g. `has been removed`). 1 if any was not done.
 */
function show(action: AdminAction, ids: string[], results: ActionResult[], json: boolean, out: Out): number {
  let status = 0;
  ids.forEach((id, n) => {
    const r = results[n] ?? 'gone';
    if (r !== 'done' && !(r === 'unchanged' && typeof action === 'object')) status = 1;
    out(json ? JSON.stringify({ id, result: resultWords(action, r) }) + '\n' : resultLine(action, id, r));
  });
  return status;
}

/** Actions that take many IDs (a malformed one does not stop the others). */
const MANY = new Set(['-Mrm', '-Mf', '-Mt', '-Mg', '-Mmad']);
/** Envelope edits: one ID, then addresses. */
const EDITS = new Set(['-Mar', '-Mes', '-Mmd']);

/** -Mar ID addr..., -Mes ID addr, -Mmd ID addr...: Exim's envelope edits, one transaction each. */
async function editCommand(flag: string, args: string[], config: Config, spool: LmdbSpool, json: boolean, out: Out): Promise<number> {
  const [id, ...raw] = args;
  if (id === undefined) throw usage(`no message ID given after ${flag}`);
  if (!isMessageId(id)) throw usage(`malformed message id ${id} after ${flag} option`);
  if (raw.length === 0) throw usage(`${flag} needs ${flag === '-Mes' ? 'an address' : 'at least one address'} after the message ID`);
  if (flag === '-Mes' && raw.length > 1) throw usage('-Mes takes one address');
  const nullSender = flag === '-Mes' && (raw[0] === '<>' || raw[0] === '');
  const { qualify } = await import('../receive/cleanup.js'); // with its header parsing: not loaded by a listing
  const addresses = nullSender ? [''] : raw.map((a) => qualify(a.replace(/^<(.*)>$/, '$1'), config.qualify_domain));
  for (const [n, a] of addresses.entries()) if (!nullSender && !isRoutableAddress(a)) throw usage(`malformed address ${raw[n]} after ${flag}`);
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.writeSync(e));
  const edit: EnvelopeEdit = flag === '-Mar' ? { op: 'add-recipients', addresses } : flag === '-Mes' ? { op: 'set-sender', address: addresses[0] as string }
    : { op: 'mark-delivered', addresses };
  const results = await runAction({ edit }, [id], config, spool, events, operator());
  return show({ edit }, [id], results, json, out);
}

/**
 * -Mg. The process that delivers from the spool does it: the daemon through its
 * socket (it refuses while the message is being delivered), or, with no daemon, this
 * command while it holds the delivery lock.
 */
async function giveUpCommand(id: string, config: Config, spool: LmdbSpool, events: EventBus, user: string,
  ids: MessageIdGenerator): Promise<'done' | 'gone' | 'locked'> {
  const { giveUpAll } = await import('./actions.js');
  const result = (await giveUpAll([id], config, spool, events, user, ids, '-Mg')).get(id);
  return result === 'done' || result === 'locked' ? result : 'gone';
}

async function bodyBytes(spool: LmdbSpool, id: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of spool.body(id)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function kickDaemon(config: Config, force = false): Promise<boolean> {
  try {
    return (await request(config.spool.directory, { op: 'kick', force }, 5000)) !== undefined;
  } catch {
    return false;
  }
}

/**
 * Delivers what is due, once, in this process (daemon/delivery.ts's deliverHere).
 * Handed in by the command line, which sits above both: admin/ asks the daemon and
 * never imports it.
 */
export type DeliverHere = (config: Config, spool: LmdbSpool, idGen: MessageIdGenerator) => Promise<void>;

/**
 * -q, -qf, -qff and -M: make the chosen messages due now. With a daemon running it is
 * poked and delivers them; otherwise this process runs the deliveries itself.
 */
export async function queueRun(config: Config, spool: LmdbSpool,
  opts: { force: boolean; thaw: boolean; ids?: string[]; select?: { recipient?: string; sender?: string } },
  idGen: MessageIdGenerator, deliverHere: DeliverHere): Promise<number> {
  const now = Date.now();
  if (opts.ids) {
    await spool.apply(opts.ids.map((id) => ({ kind: 'make-due', id, at: now, thaw: true })));
  } else {
    // A forced run takes every (unfrozen) message; a plain run the due ones, which
    // include sendmail -odq mail not yet tried: that is on the due index within
    // QUEUE_ONLY_DELAY of now, so only that stretch of the index is read. -R/-S
    // (`select`): the messages with an undelivered recipient / a sender containing the
    // string, case-independently, made due now.
    const ids: string[] = [];
    const sel = opts.select;
    const has = (text: string, part: string | undefined) => part === undefined || text.toLowerCase().includes(part.toLowerCase());
    const plain = !opts.force && !sel;
    const candidates = plain
      ? (function* () {
        for (const k of spool.dueAfter(undefined, now + QUEUE_ONLY_DELAY, Number.MAX_SAFE_INTEGER)) {
          const r = spool.load(k.id);
          if (r) yield r;
        }
      })()
      : spool.list();
    for (const r of candidates) {
      if (sel && !(has(r.sender, sel.sender) && (sel.recipient === undefined || r.recipients.some((x) => x.state === 'pending' && has(x.address, sel.recipient))))) continue;
      if (plain ? r.queueOnly && r.attempts === 0 && !r.frozen : opts.thaw || !r.frozen) ids.push(r.id);
    }
    for (let i = 0; i < ids.length; i += 1000) await spool.apply(ids.slice(i, i + 1000).map((id) => ({ kind: 'make-due', id, at: now, thaw: opts.thaw })));
  }
  if (await kickDaemon(config, opts.force)) return 0;
  // No daemon answered: this process delivers, if no other one is doing so already.
  await deliverHere(config, spool, idGen);
  return 0;
}

