// test/receive/smtp-internals.test.ts: the tripwire for receive/smtp-internals.ts, the one
// place postern reaches into smtp-server's internals. On the installed library every
// member postern wraps or reads is there with the expected type, and a real connection
// over loopback reaches the hook before the library's init(); a server lacking a member
// is named by the check, which every postern server runs when it is built.
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AdjustedSmtpServer, CONNECTION_METHODS, greetAtOnce, isOwnReply, missingInternals, type LibConnection,
} from '../../src/receive/smtp-internals.js';

const OPTIONS = { logger: false, disabledCommands: ['AUTH', 'STARTTLS'], authOptional: true } as ConstructorParameters<typeof SMTPServer>[0];

class Recording extends AdjustedSmtpServer {
  seen: { conn: LibConnection; order: string[] }[] = [];
  protected override adjust(conn: LibConnection): void {
    const entry = { conn, order: ['adjust'] };
    greetAtOnce(conn);
    const init = conn.init;
    conn.init = function () {
      entry.order.push('init');
      return init.call(this);
    };
    this.seen.push(entry);
  }
}

const toClose: { close(cb?: () => void): void }[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(toClose.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

describe('smtp-server internals postern relies on', () => {
  it('the installed library has every member postern wraps or reads', () => {
    const server = new SMTPServer(OPTIONS);
    expect(missingInternals(server)).toEqual([]);
    expect(server.connections).toBeInstanceOf(Set);
    expect(server._pendingSockets).toBeInstanceOf(Map);
    expect('_closeTimeout' in server).toBe(true);
  });

  it('a real connection reaches the hook before init(), with every method postern wraps', async () => {
    const server = new Recording(OPTIONS);
    toClose.push(server);
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    const socket = connect((server.server.address() as AddressInfo).port, '127.0.0.1');
    sockets.push(socket);
    socket.setEncoding('utf8');
    const [greeting] = await once(socket, 'data') as [string];
    expect(greeting).toMatch(/^220 /);
    expect(server.seen).toHaveLength(1);
    const { conn, order } = server.seen[0]!;
    expect(order).toEqual(['adjust', 'init']);
    for (const m of CONNECTION_METHODS) expect(typeof conn[m], `SMTPConnection.${m}`).toBe('function');
    expect(server.connections.has(conn)).toBe(true);
  });

  it('names what a server lacks (so a library upgrade that moves it fails here and at start-up)', () => {
    const server = new SMTPServer(OPTIONS);
    (server as unknown as { _pendingSockets: unknown })._pendingSockets = undefined;
    (server as unknown as { connections: unknown }).connections = [];
    expect(missingInternals(server)).toEqual(['SMTPServer._pendingSockets (a Map)', 'SMTPServer.connections (a Set)']);
  });

  it('knows our replies by their RFC 3463 code', () => {
    expect(isOwnReply('4.3.2 Too many connections')).toBe(true);
    expect(isOwnReply('Error: too many')).toBe(false);
    expect(isOwnReply(undefined)).toBe(false);
  });
});
