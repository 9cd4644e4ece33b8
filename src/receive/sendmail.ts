// receive/sendmail.ts: `sendmail [options] [recipient...]`: reads one message from
// stdin, applies the same cleanup as SMTP, and hands it to the running daemon over
// its local socket, or, when no daemon runs, commits it to the spool directly (it is
// delivered when the daemon starts). Exit 0 only after a synced commit.
import { userInfo } from 'node:os';
import type { Config } from '../config/schema.js';
import { dataError, tempError, usage } from '../core/exit.js';
import type { NewMessage } from '../core/types.js';
import { isRoutableAddress } from '../core/address.js';
import { MessageIdGenerator } from '../spool/message-id.js';
import { cleanup, LineEnds, qualify } from './cleanup.js';
import { request } from './local-client.js';

export interface SendmailArgs {
  extract: boolean;
  dotEnds: boolean;
  sender?: string;
  fullName?: string;
  queueOnly: boolean;
  recipients: string[];
}

const IGNORED = new Set(['-oem', '-oee', '-oep', '-oeq', '-oew', '-v', '-U', '-Am', '-Ac', '-odb', '-odi', '-odf', '-bm',
  '-B8BITMIME', '-B7BIT', '-oitrue', '-m', '-om', '-oo', '-n', '-x']);

/** Parses sendmail's options by hand: yargs costs more to load than the whole submission. */
export function parseSendmailArgs(argv: string[]): SendmailArgs {
  const a: SendmailArgs = { extract: false, dotEnds: true, queueOnly: false, recipients: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (flag: string): string => {
      if (arg.length > flag.length) return arg.slice(flag.length);
      const v = argv[++i];
      if (v === undefined) throw usage(`option ${flag} needs a value`);
      return v;
    };
    if (arg === '--') {
      a.recipients.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      a.recipients.push(arg);
      continue;
    }
    if (arg === '-t') a.extract = true;
    else if (arg === '-i' || arg === '-oi') a.dotEnds = false;
    else if (arg === '-ti' || arg === '-it') { a.extract = true; a.dotEnds = false; }
    else if (arg.startsWith('-f')) a.sender = value('-f');
    else if (arg.startsWith('-r')) a.sender = value('-r');
    else if (arg.startsWith('-F')) a.fullName = value('-F');
    else if (arg === '-odq') a.queueOnly = true;
    else if (arg === '-B') value('-B');
    else if (arg.startsWith('-h') || arg.startsWith('-L') || arg.startsWith('-O') || arg.startsWith('-X')) value(arg.slice(0, 2));
    else if (IGNORED.has(arg) || arg.startsWith('-B') || arg.startsWith('-o')) continue;
    else throw usage(`unknown option ${arg}`);
  }
  return a;
}

/** Reads stdin; without -i a line holding only "." ends the message. */
export async function readMessage(stdin: NodeJS.ReadableStream, dotEnds: boolean): Promise<Buffer> {
  const ends = new LineEnds();
  const parts: Buffer[] = [];
  for await (const chunk of stdin) parts.push(ends.push(chunk as Buffer));
  parts.push(ends.end());
  const data = Buffer.concat(parts);
  if (!dotEnds) return data;
  // The first line holding only "." ends the message (the last line may lack its LF).
  const DOT_LINE = Buffer.from('\n.\n');
  if (data.equals(Buffer.from('.')) || data.subarray(0, 2).equals(Buffer.from('.\n'))) return Buffer.alloc(0);
  const at = data.indexOf(DOT_LINE);
  if (at >= 0) return data.subarray(0, at + 1);
  if (data.length >= 2 && data.subarray(-2).equals(Buffer.from('\n.'))) return data.subarray(0, -1);
  return data;
}

function login(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'nobody';
  }
}

export async function sendmail(argv: string[], config: Config, stdin: NodeJS.ReadableStream): Promise<string> {
  const args = parseSendmailArgs(argv);
  const user = login();
  let sender = args.sender === undefined ? `${user}@${config.qualify_domain}` : args.sender.replace(/^<(.*)>$/, '$1');
  sender = qualify(sender, config.qualify_domain);
  if (sender !== '' && !isRoutableAddress(sender)) throw dataError(`bad sender address "${args.sender}"`);
  for (const r of args.recipients) {
    if (!isRoutableAddress(qualify(r, config.qualify_domain))) throw dataError(`bad recipient address "${r}"`);
  }
  if (!args.extract && args.recipients.length === 0) throw usage('no recipients given: name them as arguments or use -t');
  const data = await readMessage(stdin, args.dotEnds);
  const now = Date.now();
  const id = new MessageIdGenerator().next(now);
  const cleaned = cleanup(data, {
    id, now, hostname: config.hostname, qualifyDomain: config.qualify_domain, sender, recipients: args.recipients,
    protocol: 'local', user, extractRecipients: args.extract, ...(args.fullName !== undefined ? { fullName: args.fullName } : {}),
  });
  if (cleaned.recipients.length === 0) throw dataError('no recipients found in the message headers');
  for (const r of cleaned.recipients) {
    if (!isRoutableAddress(r)) throw dataError(`bad recipient address "${r}" in the message headers`);
  }
  if (Buffer.byteLength(cleaned.headers, 'latin1') + cleaned.body.length > config.listen.max_message_size) {
    throw dataError(`message is larger than max_message_size (${config.listen.max_message_size} bytes)`);
  }
  const msg: Omit<NewMessage, 'body'> = {
    id, sender, recipients: cleaned.recipients, arrival: now, protocol: 'local', user, headers: cleaned.headers,
    ...(cleaned.messageIdHeader ? { messageIdHeader: cleaned.messageIdHeader } : {}),
    ...(args.queueOnly ? { queueOnly: true } : {}),
  };
  const dir = config.spool.directory;
  let reply;
  try {
    reply = await request(dir, { op: 'submit', msg, bodyLength: cleaned.body.length }, cleaned.body);
  } catch (err) {
    throw tempError(`the daemon did not take the message (${(err as Error).message}); try again`);
  }
  if (reply?.ok) return id;
  if (reply && !reply.ok) throw tempError(`the message could not be spooled (${reply.error}); try again`);
  // No daemon: write the spool ourselves; the daemon finds the message in the due index.
  const { LmdbSpool } = await import('../spool/lmdb-spool.js');
  const { MainLog } = await import('../log/mainlog.js');
  let spool;
  try {
    spool = LmdbSpool.open(dir);
    const record = await spool.commit({ ...msg, body: [cleaned.body] });
    new MainLog(config.log.file, config.log.format, Date.now).writeSync({ type: 'received', id, sender, protocol: 'local',
      size: record.size, user, ...(msg.messageIdHeader ? { messageIdHeader: msg.messageIdHeader } : {}) });
  } catch (err) {
    throw tempError(`the message could not be spooled (${(err as Error).message}); try again`);
  } finally {
    await spool?.close();
  }
  return id;
}
