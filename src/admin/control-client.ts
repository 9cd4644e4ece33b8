// admin/control-client.ts: the command side of the daemon's control socket
// (`postern.sock` in the private spool folder, so root and the daemon's user only):
// poke the daemon to look at the maildrop and the due index, or ask it for -Mg.
// Light: node:net only, loaded only when there is a socket to talk to.
import { join } from 'node:path';

// node:fs by process.getBuiltinModule: an ESM `import` of it builds its whole facade
// (fs/promises, streams, readline: 1.5 ms of sendmail's start).
const { lstatSync } = process.getBuiltinModule('node:fs');

export const socketPath = (spoolDir: string) => join(spoolDir, 'postern.sock');

export type LocalReply = { ok: true; id?: string; result?: string; results?: unknown[] } | { ok: false; error: string };
export const controlKeyPath = (spoolDir: string) => join(spoolDir, 'control.key');

/**
 * Sends one request (a JSON line) to the control socket and reads the JSON reply line.
 * Resolves undefined when no daemon listens (socket missing or refused).
 */
export function request(spoolDir: string, header: object, timeoutMs = 60_000): Promise<LocalReply | undefined> {
  return requestAt<LocalReply>(socketPath(spoolDir), header, timeoutMs);
}

function missing(path: string): boolean {
  try {
    lstatSync(path);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT'; // others (EACCES): connecting says it
  }
}

/** The same exchange on any of the daemon's sockets (the own-messages one too). */
export function requestAt<R>(path: string, header: object, timeoutMs = 60_000): Promise<R | undefined> {
  // No socket file: no daemon (what connecting would say, ENOENT), without loading node:net.
  if (missing(path)) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const sock = process.getBuiltinModule('node:net').createConnection(path);
    let reply = '';
    let connected = false;
    const timer = setTimeout(() => sock.destroy(new Error('the daemon did not answer in time')), timeoutMs);
    sock.on('connect', () => {
      connected = true;
      // One line, one write: the daemon answers and closes as soon as it has the line.
      sock.write(JSON.stringify(header) + '\n');
    });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      reply += d;
      // Only the new data can hold the end of the line (a bulk action's reply is long).
      const nl = d.includes('\n') ? reply.indexOf('\n', reply.length - d.length) : -1;
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        try {
          resolve(JSON.parse(reply.slice(0, nl)) as R);
        } catch {
          reject(new Error('the daemon sent a malformed reply'));
        }
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK')) resolve(undefined);
      else reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (connected && !reply.includes('\n')) reject(new Error('the daemon closed the connection without answering'));
    });
  });
}
