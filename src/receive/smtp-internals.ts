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
