// receive/smtp-internals.ts: the one place postern reaches into smtp-server's internals
// (pinned to 3.21, package.json; the members are in the library's own type
// declarations, so tsc checks their shapes). A hook on each new connection before the
// library init()s it (its connect() adds the connection to `connections` first), and
// the wrappers of its private methods that the listener (smtp.ts) and `-bs` (bsmtp.ts)
// share. missingInternals() names what a library upgrade took away: every server made
// here checks it when built, and test/receive/smtp-internals.test.ts fails on it.
import { Server, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** One session of the library (its SMTPConnection, which it does not export). */
export type LibConnection = SMTPServer['connections'] extends Set<infer C> ? C : never;

/** The connection's methods postern wraps or calls. */
export const CONNECTION_METHODS = ['init', '_setListeners', 'connectionReady', '_onCommand', '_parseAddressCommand', 'send', 'close'] as const;

/**
 * A connection made the library's way on a socket that is never used, caught as it is
 * added to `connections` and before its init(): what the hook below relies on. A
 * string says what went wrong instead.
 */
function probeConnection(server: SMTPServer): LibConnection | string {
  const connections = server.connections;
  if (!(connections instanceof Set)) return 'SMTPServer.connections (a Set)';
  const add = connections.add;
  const caught = new Error('probe');
  let conn: LibConnection | undefined;
  connections.add = (c: LibConnection) => {
    conn = c;
    throw caught;
  };
  try {
    SMTPServer.prototype.connect.call(server, {} as Socket, { localAddress: '127.0.0.1', remoteAddress: '127.0.0.1' });
  } catch (err) {
    if (err !== caught) return `SMTPServer.connect() adding the connection to \`connections\` before init() (${(err as Error).message})`;
  } finally {
    connections.add = add;
  }
  return conn ?? 'SMTPServer.connect() adding the connection to `connections`';
}

/** What postern patches or reads that `server`'s library lacks (none: []). */
export function missingInternals(server: SMTPServer): string[] {
  const missing: string[] = [];
  if (!(server.server instanceof Server)) missing.push('SMTPServer.server (a net.Server)');
  if (!(server._pendingSockets instanceof Map)) missing.push('SMTPServer._pendingSockets (a Map)');
  if (!('_closeTimeout' in server)) missing.push('SMTPServer._closeTimeout');
  const conn = probeConnection(server);
  if (typeof conn === 'string') missing.push(conn);
  else for (const m of CONNECTION_METHODS) if (typeof conn[m] !== 'function') missing.push(`SMTPConnection.${m}()`);
  return missing;
}

/**
 * smtp-server whose every new connection goes through adjust() before the library's
 * init(). Refuses to be built on a library that lacks what the adjustments use.
 */
export abstract class AdjustedSmtpServer extends SMTPServer {
  constructor(options: ConstructorParameters<typeof SMTPServer>[0]) {
    super(options);
    const missing = missingInternals(this);
    if (missing.length > 0) {
      throw new Error(`smtp-server no longer has what postern adjusts (src/receive/smtp-internals.ts): ${missing.join(', ')}`);
    }
  }

  protected abstract adjust(conn: LibConnection, socket: Socket, socketOptions: { remoteAddress?: string } | undefined): void;

  override connect(socket: Socket, socketOptions?: { remoteAddress?: string } | null): void {
    const connections = this.connections;
    const add = connections.add;
    connections.add = (conn: LibConnection) => {
      connections.add = add;
      this.adjust(conn, socket, socketOptions ?? undefined);
      return add.call(connections, conn);
    };
    super.connect(socket, socketOptions as never);
  }
}

/** The library's 100 ms early-talker pause skipped: the greeting goes out once `admit()` lets the session in. */
export function greetAtOnce(conn: LibConnection, admit: () => boolean = () => true): void {
  conn.init = () => conn._setListeners(() => {
    if (admit()) conn.connectionReady();
  });
}

/** A reply text that starts with an RFC 3463 code is ours: sent with that code, not the library's guess. */
export const isOwnReply = (text: unknown) => typeof text === 'string' && /^[245]\.\d{1,3}\.\d{1,3} /.test(text);

/** Replies of ours keep their enhanced codes (the -bs session; the listener wraps send() with more). */
export function keepOwnCodes(conn: LibConnection): void {
  const send = conn.send;
  conn.send = function (code, data, context) {
    return send.call(this, code, data, isOwnReply(data) ? false : context);
  };
}

// `MAIL FROM:<"quoted local"@domain> params`: the library splits the path at white space
// and at every "@", so a quoted local part is swapped for an atom while it parses.
const QUOTED_PATH = /^(\s*[A-Za-z]+\s+[A-Za-z]+\s*:\s*<)("(?:[^"\\\r\n]|\\[^\r\n])*")(@[^<>\s]*>.*)$/s;

/**
 * Lets the library's MAIL/RCPT parser (_parseAddressCommand) take a quoted local part
 * (`"a b"@x`), which it splits at the space or the inner "@": the quoted string is
 * swapped for an atom while the library parses, then put back. The address checks
 * (core/address.ts) still judge the result. The listener's and -bs's.
 */
export function acceptQuotedLocalParts(conn: LibConnection): void {
  const parseAddress = conn._parseAddressCommand;
  conn._parseAddressCommand = function (name, command) {
    const m = QUOTED_PATH.exec(String(command ?? ''));
    if (!m) return parseAddress.call(this, name, command);
    const parsed = parseAddress.call(this, name, `${m[1]}q${m[3]}`);
    if (parsed && parsed.address.startsWith('q@')) parsed.address = (m[2] as string) + parsed.address.slice(1);
    return parsed;
  };
}

/**
 * `MAIL FROM:<www-data>`, `RCPT TO:<root>`: Exim qualifies a local -bs caller's bare
 * local parts with qualify_domain (the listener, as Exim's daemon, refuses them); the
 * library would refuse them for want of an "@", so they are qualified before it parses.
 */
export function qualifyLocalParts(conn: LibConnection, domain: string): void {
  const parse = conn._parseAddressCommand;
  conn._parseAddressCommand = function (name, command) {
    const m = /^(\s*[A-Za-z]+\s+[A-Za-z]+\s*:\s*<)([^<>@\s"\\:,]+)(>.*)$/s.exec(String(command ?? ''));
    return parse.call(this, name, m ? `${m[1]}${m[2]}@${domain}${m[3]}` : command);
  };
}

type DataParser = Extract<LibConnection['_parser'], object>;
const END_SEQUENCE = Buffer.from('\r\n.\r\n');
const LF_DOT = Buffer.from('\n.');
const DATA_START_END = Buffer.from('.\r\n');

/**
 * The library's DATA-phase scan (SMTPStream._feedDataStream in smtp-server 3.21, pinned
 * in package.json) with its byte-by-byte JavaScript loop for a dot at a line's start
 * replaced by Buffer#indexOf of "\n." (native): the same decisions at the same places,
 * everything else as the library has it. For a 100 KB message the loop was the
 * library's largest cost. A parser without the method is left as it is.
 */
export function fastDataScan(conn: LibConnection): void {
  const parser = conn._parser;
  if (!parser || typeof parser._feedDataStream !== 'function') return;
  parser._feedDataStream = function (this: DataParser, input: Buffer, done: (err?: Error | null) => void): void {
    feedDataStream(this, input, done);
  };
}

function feedDataStream(self: DataParser, input: Buffer, done: (err?: Error | null) => void): void {
  const dataStream = self._dataStream as NonNullable<DataParser['_dataStream']> & { writable: boolean; destroyed: boolean };
  let chunk = input;
  if (self._lastBytes && self._lastBytes.length) {
    chunk = Buffer.concat([self._lastBytes, chunk], self._lastBytes.length + chunk.length);
    self._lastBytes = false;
  }
  let len = chunk.length;
  if (self._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DATA_START_END) === 0) {
    self._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (self._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1);
    len--;
    self._atDataStart = false;
  }
  // The library: for (i = 2; i < len - 2; i++) if (chunk[i] === '.' && chunk[i - 1] === '\n').
  for (let nl = chunk.indexOf(LF_DOT, 1); nl >= 0 && nl + 1 < len - 2; nl = chunk.indexOf(LF_DOT, nl + 1)) {
    const i = nl + 1;
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      const buf = chunk.subarray(0, i);
      self._countDataBytes(buf.length);
      self._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === 0x2e) {
      const buf = chunk.subarray(0, i);
      self._lastBytes = false;
      self._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      const rest = chunk.subarray(i + 1);
      setImmediate(() => self._feedDataStream(rest, done));
      return;
    }
  }
  self._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4);
  if (self._lastBytes.length < chunk.length) {
    const buf = chunk.subarray(0, chunk.length - self._lastBytes.length);
    self._countDataBytes(buf.length);
    if (dataStream.writable) {
      const handled = dataStream.write(buf);
      if (!handled && !dataStream.destroyed) {
        const onDrain = () => {
          dataStream.removeListener('drain', onDrain);
          dataStream.removeListener('close', onDrain);
          done();
        };
        dataStream.once('drain', onDrain);
        dataStream.once('close', onDrain);
      } else {
        return done();
      }
    } else {
      return done();
    }
  } else {
    return done();
  }
}
