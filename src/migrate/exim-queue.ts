// migrate/exim-queue.ts: takes over Exim's queue (`postern install --import-queue`):
// reads each message of Exim's spool (`input/ID-H`: submitter, sender, arrival, flags,
// the recipients Exim has not delivered yet, headers; `ID-D`: the body; `ID-J`: the
// addresses a crashed delivery finished) and commits it to postern's spool under the
// same ID, frozen where Exim's was, then removes Exim's files. Once per message: Exim's
// files stay until postern's commit is synced, and an ID postern already holds is not
// taken twice. Root reads Exim's files; the spool is written by a child running as the
// daemon's user (root never writes in a folder that user owns), over a pipe.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import { EventBus } from '../core/events.js';
import { EX, failure, usage } from '../core/exit.js';
import { userByName } from '../core/users.js';
import { MainLog } from '../log/mainlog.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { isMessageId } from '../spool/message-id.js';

const EXIM_SPOOL = '/var/spool/exim4';

/** One message of Exim's queue, as postern will keep it. */
export interface EximMessage {
  id: string;
  /** '' for <>. */
  sender: string;
  /** The submitter's login (line 2 of -H). */
  user: string;
  /** ms since the epoch. */
  arrival: number;
  protocol: string;
  clientIp?: string;
  helo?: string;
  frozen: boolean;
  /** Not yet delivered by Exim. */
  recipients: string[];
  /** Delivered by Exim (the non-recipients tree and the -J file). */
  delivered: string[];
  warningsSent: number;
  /** The header block, LF line ends, one char per byte; headers Exim marked deleted (`*`) left out. */
  headers: string;
  messageIdHeader?: string;
  body: Buffer;
}

const bad = (id: string, why: string) => new Error(`${id}: ${why}`);

/** Parses an `ID-H` file (bytes as latin1), with the `ID-D` body and the `ID-J` lines if any. */
export function parseEximMessage(id: string, h: string, d: Buffer, j = ''): EximMessage {
  const lines = h.split('\n');
  let i = 0;
  const next = () => {
    if (i >= lines.length) throw bad(id, 'the -H file ends early');
    return lines[i++] as string;
  };
  if (next() !== `${id}-H`) throw bad(id, 'the -H file does not begin with its name');
  const user = next().split(' ')[0] ?? '';
  const senderLine = next();
  if (!/^<.*>$/.test(senderLine)) throw bad(id, 'no envelope sender on line 3 of the -H file');
  const [secs, warnings] = next().split(' ').map(Number);
  if (!Number.isFinite(secs)) throw bad(id, 'no arrival time on line 4 of the -H file');
  const m: EximMessage = {
    id, sender: senderLine.slice(1, -1), user, arrival: (secs as number) * 1000, protocol: 'local', frozen: false,
    recipients: [], delivered: [], warningsSent: Number.isFinite(warnings) ? (warnings as number) : 0, headers: '', body: d,
  };
  // Flags: `-name value` lines, up to the non-recipients tree.
  let line = next();
  while (line.startsWith('-')) {
    const sp = line.indexOf(' ');
    const name = sp < 0 ? line.slice(1) : line.slice(1, sp);
    const value = sp < 0 ? '' : line.slice(sp + 1);
    if (name === 'received_time_usec') m.arrival += Math.floor(Number(value.replace(/^\./, '0.')) * 1000) || 0;
    else if (name === 'received_protocol') m.protocol = value;
    else if (name === 'frozen') m.frozen = true;
    else if (name === 'host_address') m.clientIp = value.replace(/\.\d+$/, '').replace(/^\[|\]$/g, '');
    else if (name === 'helo_name') m.helo = value;
    line = next();
  }
  // The non-recipients tree: `XX` when empty, else a node a line, `LR address`, L and R
  // saying whether a left and a right subtree follow (Exim writes it depth-first).
  const done = new Set<string>();
  const readTree = (l: string): void => {
    if (l === 'XX') return;
    const node = /^([YN])([YN]) (.*)$/.exec(l);
    if (!node) throw bad(id, `a malformed line in the non-recipients tree: ${l}`);
    done.add((node[3] as string).toLowerCase());
    if (node[1] === 'Y') readTree(next());
    if (node[2] === 'Y') readTree(next());
  };
  readTree(line);
  for (const a of j.split('\n')) if (a.trim()) done.add(a.trim().toLowerCase());
  const count = Number(next());
  if (!Number.isInteger(count) || count < 0) throw bad(id, 'no recipient count in the -H file');
  for (let n = 0; n < count; n++) {
    // A recipient line may carry Exim's extra fields after the address (`addr 3,12#1`): the address is the first word.
    const address = next().replace(/ \d+,\d+#\d+$/, '').replace(/ \d+#\d+$/, '');
    (done.has(address.toLowerCase()) ? m.delivered : m.recipients).push(address);
  }
  if (next() !== '') throw bad(id, 'no blank line after the recipients in the -H file');
  // Headers: `NNNx text`, NNN the length of the text with its line end (continuation lines included).
  const rest = lines.slice(i).join('\n');
  let at = 0;
  const kept: string[] = [];
  while (at < rest.length) {
    const head = /^(\d{3,})(.) /.exec(rest.slice(at, at + 16));
    if (!head) {
      if (rest.slice(at).trim() === '') break;
      throw bad(id, 'a malformed header entry in the -H file');
    }
    const len = Number(head[1]);
    const text = rest.slice(at + head[0].length, at + head[0].length + len);
    at += head[0].length + len;
    if (head[2] === '*') continue;
    kept.push(text);
    if (head[2] === 'I') m.messageIdHeader = /^[^:]*:\s*<?([^>\s]*)>?/.exec(text)?.[1];
  }
  // Each header with its line end, as postern's own spool holds them: the transport adds the blank line before the body.
  m.headers = kept.length ? kept.join('').replace(/\n?$/, '\n') : '';
  // -D: its name on the first line, then the body (CRLF with -spool_file_wireformat).
  const first = d.indexOf(0x0a);
  if (first < 0 || d.subarray(0, first).toString('latin1') !== `${id}-D`) throw bad(id, 'the -D file does not begin with its name');
  let body = d.subarray(first + 1);
  if (/^-spool_file_wireformat$/m.test(h.slice(0, h.indexOf('\n\n') + 1 || undefined))) body = Buffer.from(body.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
  m.body = body;
  return m;
}

/** The IDs in Exim's `input` folder (also its split subfolders) that have both files. */
function eximQueueIds(input: string): { id: string; dir: string }[] {
  const found: { id: string; dir: string }[] = [];
  const scan = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    const set = new Set(names);
    for (const n of names) {
      if (n.length === 1 && dir === input) scan(join(dir, n));
      const id = n.slice(0, -2);
      if (n.endsWith('-H') && isMessageId(id) && set.has(`${id}-D`)) found.push({ id, dir });
    }
  };
  scan(input);
  return found.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function readMessage(dir: string, id: string): EximMessage {
  const j = join(dir, `${id}-J`);
  return parseEximMessage(id, readFileSync(join(dir, `${id}-H`), 'latin1'), readFileSync(join(dir, `${id}-D`)),
    existsSync(j) ? readFileSync(j, 'latin1') : '');
}

/** Exim's own files of a message: the spool pair, its journal and its message log. */
function removeEximFiles(eximSpool: string, dir: string, id: string): void {
  for (const p of [join(dir, `${id}-D`), join(dir, `${id}-J`), join(eximSpool, 'msglog', `${id}`), join(eximSpool, 'msglog', id.slice(5, 6), id), join(dir, `${id}-H`)]) {
    try {
      unlinkSync(p);
    } catch { /* not there */ }
  }
}

type Taken = 'imported' | 'present';

/**
 * Commits one message to postern's spool: as Exim had it, frozen or due now. The
 * caller holds the delivery lock, so nobody delivers it between its two transactions.
 */
async function takeMessage(spool: LmdbSpool, events: EventBus, m: EximMessage, now: number): Promise<Taken> {
  if (spool.load(m.id)) return 'present';
  const record = await spool.admit({
    id: m.id, sender: m.sender, arrival: m.arrival, protocol: m.protocol, recipients: m.recipients, headers: m.headers, body: [m.body],
    ...(m.user ? { user: m.user } : {}), ...(m.clientIp ? { clientIp: m.clientIp } : {}), ...(m.helo ? { helo: m.helo } : {}),
    ...(m.messageIdHeader ? { messageIdHeader: m.messageIdHeader } : {}),
  });
  if (m.frozen) await spool.apply([{ kind: 'freeze', id: m.id, by: { at: now, user: 'Exim (taken over frozen)' } }]);
  events.emit({ type: 'received', id: m.id, sender: m.sender, protocol: m.protocol, size: record.size, ...(m.user ? { user: m.user } : {}),
    ...(m.clientIp ? { clientIp: m.clientIp } : {}), ...(m.helo ? { helo: m.helo } : {}), ...(m.messageIdHeader ? { messageIdHeader: m.messageIdHeader } : {}) });
  events.emit({ type: 'notice', id: m.id, text: `taken over from Exim's queue${m.frozen ? ' (frozen, as it was there)' : ''}${m.delivered.length ? `; already delivered by Exim: ${m.delivered.join(', ')}` : ''}` });
  return 'imported';
}

interface WireMessage extends Omit<EximMessage, 'body'> {
  body: string;
}

/**
 * The writer's side (`postern install --import-queue-writer`, run as the daemon's
 * user): one message a JSON line on stdin, one answer a line on stdout.
 */
export async function importWriter(config: Config, spool: LmdbSpool): Promise<number> {
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.writeSync(e));
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line) continue;
    const w = JSON.parse(line) as WireMessage;
    let answer: { id: string; result: Taken | 'error'; why?: string };
    try {
      answer = { id: w.id, result: await takeMessage(spool, events, { ...w, body: Buffer.from(w.body, 'base64') }, Date.now()) };
    } catch (e) {
      answer = { id: w.id, result: 'error', why: (e as Error).message };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
  return EX.OK;
}

export interface ImportOptions {
  eximSpool: string;
  dryRun: boolean;
  configFile?: string;
}

/** Commits messages one at a time through a writer (in this process, or a child as the daemon's user). */
interface Writer {
  take(m: EximMessage): Promise<Taken>;
  close(): Promise<void>;
}

function childWriter(config: Config, configFile: string | undefined): Writer {
  const u = userByName(config.user as string);
  if (!u) throw failure(`the user "${config.user}" (configuration key user) does not exist`);
  const bin = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/postern');
  const child = spawn(process.execPath, [bin, 'install', '--import-queue-writer', ...(configFile ? ['-C', configFile] : [])], {
    uid: u.uid, gid: u.gid, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, UV_USE_IO_URING: '0' },
  });
  const answers = createInterface({ input: child.stdout!, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return {
    async take(m) {
      const { body, ...rest } = m;
      child.stdin!.write(`${JSON.stringify({ ...rest, body: body.toString('base64') })}\n`);
      const next = await answers.next();
      if (next.done) throw failure(`the spool writer (running as ${config.user}) ended with status ${await exited}`);
      const a = JSON.parse(next.value) as { result: Taken | 'error'; why?: string };
      if (a.result === 'error') throw new Error(a.why);
      return a.result;
    },
    async close() {
      child.stdin!.end();
      await exited;
    },
  };
}

/**
 * `postern install --import-queue [--dry-run] [--exim-spool DIR]`: Exim's queue into
 * postern's spool, a line per message and the count. Holds the delivery lock (so no
 * postern delivers meanwhile): with a daemon running, it says to stop it first.
 */
export async function importEximQueue(o: ImportOptions, config: Config, out: (s: string) => void, err: (s: string) => void,
  openSpool: () => Promise<LmdbSpool>): Promise<number> {
  const input = join(o.eximSpool, 'input');
  if (!existsSync(input)) {
    out(`no Exim queue at ${input}: nothing to import\n`);
    return EX.OK;
  }
  const ids = eximQueueIds(input);
  if (ids.length === 0) {
    out(`Exim's queue (${input}) is empty: nothing to import\n`);
    return EX.OK;
  }
  const asRoot = (process.geteuid?.() ?? 0) === 0 && config.user !== undefined;
  let writer: Writer | undefined;
  let release = () => {};
  let spool: LmdbSpool | undefined;
  if (!o.dryRun) {
    if (!existsSync(config.spool.directory)) throw failure(`postern's spool ${config.spool.directory} does not exist yet: start postern once (systemctl start postern), stop it, and import again`);
    const lock = acquireDeliveryLock(config.spool.directory);
    if (!lock.ok) throw failure(`postern (pid ${lock.heldBy}) is delivering from this spool: stop it first (systemctl stop postern), import, then start it`);
    release = lock.release;
    if (asRoot) writer = childWriter(config, o.configFile);
    else {
      const events = new EventBus();
      const log = new MainLog(config.log.file, config.log.format, Date.now);
      events.on((e) => log.writeSync(e));
      spool = await openSpool();
      const s = spool;
      writer = { take: (m) => takeMessage(s, events, m, Date.now()), close: async () => {} };
    }
  }
  let imported = 0;
  let present = 0;
  let failed = 0;
  try {
    for (const { id, dir } of ids) {
      let m: EximMessage;
      try {
        m = readMessage(dir, id);
      } catch (e) {
        err(`postern install: ${id} not imported: ${(e as Error).message.replace(`${id}: `, '')}; Exim's files left in ${dir}\n`);
        failed++;
        continue;
      }
      const what = `${id} <${m.sender}> ${m.recipients.length} recipient${m.recipients.length === 1 ? '' : 's'}${m.delivered.length ? ` (${m.delivered.length} delivered by Exim)` : ''}${m.frozen ? ', frozen' : ''}, ${m.body.length} body bytes`;
      if (o.dryRun) {
        out(`${what}: would be imported\n`);
        imported++;
        continue;
      }
      if (m.recipients.length === 0) {
        removeEximFiles(o.eximSpool, dir, id);
        out(`${what}: nothing left to deliver, Exim's files removed\n`);
        continue;
      }
      let r: Taken;
      try {
        r = await writer!.take(m);
      } catch (e) {
        err(`postern install: ${id} not imported: ${(e as Error).message}; Exim's files left in ${dir}\n`);
        failed++;
        continue;
      }
      // Committed and synced: only now do Exim's files go.
      removeEximFiles(o.eximSpool, dir, id);
      if (r === 'present') present++;
      else imported++;
      out(`${what}: ${r === 'present' ? 'already in postern\'s queue' : 'imported'}\n`);
    }
  } finally {
    await writer?.close();
    await spool?.close();
    release();
  }
  const n = (k: number) => `${k} message${k === 1 ? '' : 's'}`;
  out(o.dryRun
    ? `${n(imported)} of Exim's queue (${input}) would be imported; nothing was changed\n`
    : `imported ${n(imported)} from Exim's queue (${input})${present ? `, ${n(present)} already there` : ''}${failed ? `; ${n(failed)} not imported (named above, their files kept)` : ''}\n`);
  return failed ? EX.FAIL : EX.OK;
}

/** `postern install --import-queue ...`: its own options. */
export function parseImportArgs(argv: string[]): { dryRun: boolean; eximSpool: string } {
  let dryRun = false;
  let eximSpool = EXIM_SPOOL;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--import-queue') continue;
    if (a === '--dry-run' || a === '-n') dryRun = true;
    else if (a === '--exim-spool') eximSpool = argv[++i] ?? '';
    else if (a.startsWith('--exim-spool=')) eximSpool = a.slice(13);
    else throw usage(`unknown option ${a} for postern install --import-queue`);
  }
  if (!eximSpool || !statSync(eximSpool, { throwIfNoEntry: false })?.isDirectory()) {
    if (eximSpool !== EXIM_SPOOL) throw failure(`${eximSpool} is not a folder`);
  }
  return { dryRun, eximSpool };
}
