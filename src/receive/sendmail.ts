// receive/sendmail.ts: `sendmail [options] [recipient...]`, for every user, root
// included: reads one message from stdin, checks it as the pickup will (addresses,
// recipients, size), and writes it as one file into the maildrop folder (maildrop.ts).
// Exit 0 only after that file is synced; the daemon picks it up, now or when it
// starts. Never talks to the spool itself. A user the maildrop does not let in
// writes through the setgid helper (postdrop.ts), which makes the file theirs.
import type { Config } from '../config/schema.js';
import { dataError, tempError, usage } from '../core/exit.js';
import { isRoutableAddress } from '../core/address.js';
import { cleanup, qualify } from './cleanup.js';
import { LineEnds } from './header-block.js';
import { DropError, DROP_VERSION, type DropEnvelope } from './maildrop.js';
import { dropMessage } from './postdrop.js';

// node:fs and node:os by process.getBuiltinModule: an ESM `import` of node:fs builds its
// whole facade (fs/promises, streams, readline: 1.5 ms of sendmail's start).
const { readSync } = process.getBuiltinModule('node:fs');
const { userInfo } = process.getBuiltinModule('node:os');

interface SendmailArgs {
  extract: boolean;
  dotEnds: boolean;
  sender?: string;
  fullName?: string;
  queueOnly: boolean;
  recipients: string[];
}

const IGNORED = new Set(['-oem', '-oee', '-oep', '-oeq', '-oew', '-v', '-U', '-Am', '-Ac', '-odb', '-odi', '-odf', '-bm',
  '-B8BITMIME', '-B7BIT', '-oitrue', '-m', '-om', '-oo', '-n', '-x']);

/** `-f 'Name <addr>'`: the address inside the angle brackets (`<>` is the null sender). */
function senderAddress(v: string): string {
  const m = /<([^<>]*)>\s*$/.exec(v);
  return m ? (m[1] as string).trim() : v;
}

/** Parses sendmail's options by hand: yargs costs more to load than the whole submission. */
function parseSendmailArgs(argv: string[]): SendmailArgs {
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
    else if (arg.startsWith('-f')) a.sender = senderAddress(value('-f'));
    else if (arg.startsWith('-r')) a.sender = senderAddress(value('-r'));
    // DSN options (NOTIFY, RET, ENVID): accepted and not acted on; `-N never` is no reason to refuse mail.
    else if (arg.startsWith('-N') || arg.startsWith('-R') || arg.startsWith('-V')) value(arg.slice(0, 2));
    // -oMa, -oMaa, -oMai, -oMas, -oMi, -oMm, -oMr, -oMs, -oMt: Exim's trusted-caller overrides take the next argument.
    else if (/^-oM[a-z]{1,2}$/.test(arg)) value(arg);
    else if (arg.startsWith('-F')) a.fullName = value('-F');
    else if (arg === '-odq') a.queueOnly = true;
    else if (arg === '-B') value('-B');
    else if (arg.startsWith('-h') || arg.startsWith('-L') || arg.startsWith('-O') || arg.startsWith('-X')) value(arg.slice(0, 2));
    else if (IGNORED.has(arg) || arg.startsWith('-B') || arg.startsWith('-o')) continue;
    else throw usage(`unknown option ${arg}`);
  }
  return a;
}

/**
 * Reads a descriptor with plain read(2) calls to its end, each chunk handed to `take`
 * (no stream: setting up process.stdin costs sendmail's start a few ms). Returns false
 * when the descriptor cannot be read so (a non-blocking pipe says EAGAIN): the caller
 * goes on with the stream, which starts where these reads stopped.
 */
function readAll(fd: number, take: (chunk: Buffer) => void): boolean {
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch {
      return false;
    }
    if (n === 0) return true;
    take(Buffer.from(buf.subarray(0, n)));
  }
}

/**
 * Reads stdin (a stream, or 0: the process's own, read directly); without -i a line
 * holding only "." ends the message.
 */
export async function readMessage(stdin: NodeJS.ReadableStream | 0, dotEnds: boolean): Promise<Buffer> {
  const ends = new LineEnds();
  const parts: Buffer[] = [];
  if (stdin !== 0 || !readAll(0, (chunk) => parts.push(ends.pushInPlace(chunk)))) {
    for await (const chunk of stdin === 0 ? process.stdin : stdin) parts.push(ends.push(chunk as Buffer));
  }
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

/**
 * `makeMaildrop` (from the caller, who knows who may): makes a missing maildrop and
 * says whether it is there now.
 */
export async function sendmail(argv: string[], config: Config, stdin: NodeJS.ReadableStream | 0,
  makeMaildrop: () => boolean | Promise<boolean> = () => false): Promise<string | undefined> {
  const args = parseSendmailArgs(argv);
  // The checks below only validate: the daemon's pickup makes the message again from
  // the drop file, with the identity the kernel gives (the file's owner).
  const user = login();
  let sender = args.sender === undefined ? `${user}@${config.qualify_domain}` : args.sender.replace(/^<(.*)>$/, '$1');
  sender = qualify(sender, config.qualify_domain);
  if (sender !== '' && !isRoutableAddress(sender)) throw dataError(`bad sender address "${args.sender}"`);
  for (const r of args.recipients) {
    if (!isRoutableAddress(qualify(r, config.qualify_domain))) throw dataError(`bad recipient address "${r}"`);
  }
  if (!args.extract && args.recipients.length === 0) throw usage('no recipients given: name them as arguments or use -t');
  const tooMany = () => dataError(`too many recipients (at most ${config.listen.max_recipients})`);
  if (args.recipients.length > config.listen.max_recipients) throw tooMany();
  const data = await readMessage(stdin, args.dotEnds);
  const tooBig = () => dataError(`message is larger than max_message_size (${config.listen.max_message_size} bytes)`);
  if (data.length > config.listen.max_message_size) throw tooBig();
  const cleaned = cleanup(data, {
    id: 'validation', now: Date.now(), hostname: config.hostname, qualifyDomain: config.qualify_domain, sender, recipients: args.recipients,
    protocol: 'local', user, extractRecipients: args.extract, ...(args.fullName !== undefined ? { fullName: args.fullName } : {}),
  });
  if (cleaned.recipients.length === 0) throw dataError('no recipients found in the message headers');
  for (const r of cleaned.recipients) {
    if (!isRoutableAddress(r)) throw dataError(`bad recipient address "${r}" in the message headers`);
  }
  if (cleaned.recipients.length > config.listen.max_recipients) throw tooMany();
  if (Buffer.byteLength(cleaned.headers, 'latin1') + cleaned.body.length > config.listen.max_message_size) throw tooBig();
  const envelope: DropEnvelope = {
    v: DROP_VERSION, recipients: args.recipients, extract: args.extract, protocol: 'local',
    ...(args.sender !== undefined ? { sender: args.sender } : {}),
    ...(args.fullName !== undefined ? { fullName: args.fullName } : {}),
    ...(args.queueOnly ? { queueOnly: true } : {}),
  };
  let name: string | undefined;
  try {
    try {
      name = dropMessage(config.spool, envelope, [data]);
    } catch (err) {
      if (!(err instanceof DropError && err.code === 'ENOENT' && await makeMaildrop())) throw err;
      name = dropMessage(config.spool, envelope, [data]);
    }
  } catch (err) {
    if (err instanceof DropError) throw tempError(`${err.message}; try again later`);
    throw err;
  }
  // No call to the daemon: it watches the maildrop (and scans it every 2 s when it
  // cannot), and connecting costs this start more than all of the above (node:net).
  return name;
}
