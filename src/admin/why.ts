// admin/why.ts: the retry commands: `postern -brt ADDR [ERROR]` (which retry rule
// applies, as Exim's -brt prints it) and `postern -Mwhy ID...` ("why is it still
// here": what was done to it (operator actions, envelope edits), per undelivered recipient its state, each attempt from the journal, the rule
// that applied, the next attempt and when it freezes or is cancelled if nothing
// changes). Reads the configuration and the spool; changes nothing.
import type { Config } from '../config/schema.js';
import type { JournalEntry } from '../core/journal.js';
import { usage } from '../core/exit.js';
import { formatRetryTime, isRetryErrorName } from '../core/retry-rules.js';
import type { HostLabel, MessageRecord, Trouble } from '../core/types.js';
import { hostField, logTime } from '../log/mainlog.js';
import { changeJson, changeText, isChangeEntry, type ChangeEntry } from '../log/journal-text.js';
import { reasonText, replyText } from '../log/outcome-text.js';
import { errorType, findRule, formatRetryRule, type RetryRule } from '../scheduler/retry-rules.js';
import { frozenLimit, ruleFor } from '../scheduler/settle.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';

type Out = (s: string) => void;

/** -brt ADDR [ERROR]: Exim's `Retry rule: ...` or `No retry information found`. */
export function retryTest(args: string[], config: Config, out: Out): number {
  const json = args.includes('--json');
  const [addr, error, ...extra] = args.filter((a) => a !== '--json');
  if (addr === undefined) throw usage('-brt needs an address or domain');
  if (extra.length > 0) throw usage(`unexpected argument ${extra[0]} after -brt`);
  if (error !== undefined && (error === '*' || !isRetryErrorName(error))) throw usage(`unknown error type ${error} after -brt`);
  const rule = findRule(config.retry.rules, addr, error);
  if (json) {
    out(`${JSON.stringify({ address: addr, ...(error ? { error } : {}), rule: rule ? formatRetryRule(rule) : null })}\n`);
  } else {
    out(rule ? `Retry rule: ${formatRetryRule(rule)}\n` : 'No retry information found\n');
  }
  return 0;
}

interface AttemptLine {
  at: number;
  host?: string;
  kind: string;
  reason: string;
  errno?: number;
  reply?: string;
}

interface RecipientWhy {
  rcpt: string;
  state: 'pending' | 'frozen';
  tries: number;
  firstFailure?: number;
  attempts: AttemptLine[];
  error?: string;
  rule?: string;
  nextAttempt?: number;
  /** If nothing changes: when it freezes (past the rule's last cutoff), is cancelled or discarded, and why; or held until thawed. */
  end?: { what: 'freeze' | 'cancel' | 'discard' | 'hold'; at?: number; why: string };
}

/** The first host an attempt entry names: its result's, else the first host error it logged. */
function attemptHost(e: Extract<JournalEntry, { type: 'attempt' }>): HostLabel | undefined {
  if (e.host) return e.host;
  for (const { event } of e.events) if (event.type === 'hostError' && !event.fellBack) return event.host;
  return undefined;
}

function attemptsFor(journal: JournalEntry[], rcpt: string, sender: string): { lines: AttemptLine[]; last?: Trouble } {
  const lines: AttemptLine[] = [];
  let last: Trouble | undefined;
  for (const e of journal) {
    if (e.type === 'attempt') {
      const r = e.results.find((x) => x.rcpt === rcpt);
      if (!r) continue;
      const host = attemptHost(e);
      const words = reasonText(r, rcpt, sender);
      lines.push({ at: e.at, ...(host ? { host: hostField(host) } : {}), kind: r.kind, reason: words.text,
        ...(r.kind === 'deferred' ? { errno: words.errno } : {}), ...(r.reply ? { reply: replyText(r.reply) } : {}) });
      last = r;
    } else if (e.type === 'legacy-attempt') {
      const r = e.results.find((x) => x.rcpt === rcpt);
      if (r) lines.push({ at: e.at, ...(e.host ? { host: hostField(e.host) } : {}), kind: r.kind, reason: r.detail, ...(r.errno !== undefined ? { errno: r.errno } : {}) });
    }
  }
  return { lines, ...(last ? { last } : {}) };
}

const lastCutoff = (rule: RetryRule | undefined) => (rule && rule.params.length ? Math.max(...rule.params.map((p) => p.cutoff)) : undefined);

function explain(record: MessageRecord, journal: JournalEntry[], config: Config): RecipientWhy[] {
  const limits = { timeoutFrozenAfter: config.retry.timeout_frozen_after, ignoreBounceErrorsAfter: config.retry.ignore_bounce_errors_after,
    delayWarning: config.retry.delay_warning };
  return record.recipients.filter((r) => r.state === 'pending').map((r): RecipientWhy => {
    const { lines, last } = attemptsFor(journal, r.address, record.sender);
    const error = last ? (last.cause === 'retry_time' ? undefined : errorType(last)) : undefined;
    const rule = last ? ruleFor(config.retry.rules, { rcpt: r.address, kind: 'deferred', ...last }) : undefined;
    const why: RecipientWhy = { rcpt: r.address, state: record.frozen ? 'frozen' : 'pending', tries: r.tries,
      ...(r.firstFailure !== undefined ? { firstFailure: r.firstFailure } : {}), attempts: lines,
      ...(error ? { error } : {}), ...(rule ? { rule: formatRetryRule(rule) } : {}) };
    if (record.frozen) {
      const at = frozenLimit(record, limits);
      // Frozen by an operator or a [limits] rate: off the due index, no timer looks at it.
      const by = record.nextAttempt === null
        ? [...journal].reverse().find((e) => e.type === 'limit' || (e.type === 'admin' && e.action === 'frozen'))
        : undefined;
      if (by) {
        why.end = { what: 'hold', why: by.type === 'limit' ? `held for review: limits.${by.limit} froze it on arrival` : 'frozen by an operator' };
      } else if (at !== Infinity) {
        why.end = record.sender === ''
          ? { what: 'discard', at, why: 'a bounce nobody takes: ignore_bounce_errors_after, timeout_frozen_after' }
          : { what: 'cancel', at, why: 'timeout_frozen_after; the sender gets a bounce' };
      }
      return why;
    }
    if (record.nextAttempt !== null) why.nextAttempt = record.nextAttempt;
    const cutoff = lastCutoff(rule);
    if (last && r.firstFailure !== undefined && cutoff !== undefined) {
      why.end = { what: 'freeze', at: r.firstFailure + cutoff,
        why: `the rule's last cutoff, ${formatRetryTime(cutoff)} after the first failure; Exim would bounce` };
    } else if (last && rule === undefined) {
      why.end = { what: 'freeze', why: 'no retry rule applies' };
    }
    return why;
  });
}

function endText(e: NonNullable<RecipientWhy['end']>): string {
  const at = e.at === undefined ? '' : logTime(e.at);
  switch (e.what) {
    case 'freeze': return e.at === undefined ? `frozen by the next temporary failure (${e.why})` : `frozen by the first failed attempt after ${at} (${e.why})`;
    case 'cancel': return `cancelled at ${at} (${e.why})`;
    case 'discard': return `discarded at ${at} (${e.why})`;
    case 'hold': return `stays frozen until thawed (postern -Mt ID, postern-qgrep --thaw) or removed (${e.why})`;
  }
}

function whyText(record: MessageRecord, whys: RecipientWhy[], changes: ChangeEntry[]): string {
  let out = `${record.id} <${record.sender}>${record.frozen ? ' *** frozen ***' : ''}\n`;
  // What was done to it besides attempts (operator actions, envelope edits, limits), oldest first.
  for (const e of changes) out += `  ${logTime(e.at)} ${changeText(e)}\n`;
  if (whys.length === 0) out += '  no undelivered recipients\n';
  for (const w of whys) {
    out += `  ${w.rcpt}: ${w.state}, ${w.tries} ${w.tries === 1 ? 'try' : 'tries'}${w.firstFailure !== undefined ? `, failing since ${logTime(w.firstFailure)}` : ''}\n`;
    if (w.attempts.length === 0) out += '    not tried yet\n';
    for (const a of w.attempts) {
      out += `    ${logTime(a.at)}${a.host ? ` H=${a.host}` : ''} ${a.kind === 'deferred' ? `defer (${a.errno ?? -1})` : a.kind}: ${a.reason}\n`;
    }
    if (w.attempts.length > 0) out += `    retry rule: ${w.rule ?? 'none (no rule matches: a temporary error freezes it)'}${w.error ? ` (error ${w.error})` : ''}\n`;
    if (w.nextAttempt !== undefined) out += `    next attempt: ${logTime(w.nextAttempt)}\n`;
    if (w.end) out += `    if nothing changes: ${endText(w.end)}\n`;
  }
  return out + '\n';
}

function whyJson(record: MessageRecord, whys: RecipientWhy[], changes: ChangeEntry[]): string {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return `${JSON.stringify({
    id: record.id, sender: record.sender, frozen: record.frozen, changes: changes.map(changeJson),
    recipients: whys.map((w) => ({
      rcpt: w.rcpt, state: w.state, tries: w.tries, firstFailure: iso(w.firstFailure),
      attempts: w.attempts.map((a) => ({ ...a, at: iso(a.at) })),
      error: w.error, rule: w.rule ?? null, nextAttempt: iso(w.nextAttempt),
      ...(w.end ? { end: { ...w.end, at: iso(w.end.at) } } : {}),
    })),
  })}\n`;
}

/** -Mwhy ID... [--json]: exit 1 if any ID is not in the spool. */
export function messageWhy(ids: string[], json: boolean, config: Config, spool: LmdbSpool, out: Out): number {
  let status = 0;
  for (const id of ids) {
    const record = spool.load(id);
    if (!record) {
      if (json) out(`${JSON.stringify({ id, error: 'not in the spool' })}\n`);
      else out(`Spool data file for ${id} does not exist\n`);
      status = 1;
      continue;
    }
    const journal = spool.journal(id);
    const whys = explain(record, journal, config);
    const changes = journal.filter(isChangeEntry);
    out(json ? whyJson(record, whys, changes) : whyText(record, whys, changes));
  }
  return status;
}
