// Unit tests for src/receive/own-server.ts: the public socket's request checks, its
// limits (line size, connections), and the proof file (fresh, empty, one link, removed).
import { mkdtempSync, rmSync, writeFileSync, linkSync, symlinkSync, existsSync, utimesSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OwnServer, ownSocketPath, proofOwner, MAX_CONNECTIONS } from '../../src/receive/own-server.js';

const me = process.geteuid?.() ?? 0;
const proof = (c: string) => `.auth-${c.repeat(32)}`;

function ask(dir: string, line: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(ownSocketPath(dir));
    let d = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(line));
    s.on('data', (x: string) => (d += x));
    s.on('end', () => resolve(d));
    s.on('error', reject);
  });
}

describe('own-server', () => {
  let dir = '';
  let server: OwnServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(): Promise<{ removed: string[][] }> {
    dir = mkdtempSync(join(tmpdir(), 'own-'));
    const calls = { removed: [] as string[][] };
    server = new OwnServer({ maildrop: dir, handlers: {
      list: (login) => `listing for ${login}\n`,
      remove: async (ids) => {
        calls.removed.push(ids);
        return ids.map(() => 'gone' as const);
      },
    } });
    await server.listen();
    return calls;
  }

  it('answers a good proof with its owner and removes the proof; the socket is 0666', async () => {
    await start();
    expect(statSync(ownSocketPath(dir)).mode & 0o777).toBe(0o666);
    writeFileSync(join(dir, proof('a')), '', { mode: 0o600 });
    const r = JSON.parse(await ask(dir, JSON.stringify({ op: 'own', action: 'list', proof: proof('a') }) + '\n'));
    expect(r.ok).toBe(true);
    expect(r.text).toMatch(/^listing for \S+\n$/);
    expect(existsSync(join(dir, proof('a')))).toBe(false);
    // Used once only.
    expect(JSON.parse(await ask(dir, JSON.stringify({ op: 'own', action: 'list', proof: proof('a') }) + '\n'))).toEqual({ ok: false, error: 'not permitted' });
  });

  it('refuses links, stale, non-empty and badly named proofs, and anything but op own', async () => {
    const calls = await start();
    const other = join(dir, 'x');
    writeFileSync(other, '');
    linkSync(other, join(dir, proof('b')));
    symlinkSync(other, join(dir, proof('c')));
    writeFileSync(join(dir, proof('d')), 'not empty');
    writeFileSync(join(dir, proof('e')), '');
    utimesSync(join(dir, proof('e')), new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    for (const p of [proof('b'), proof('c'), proof('d'), proof('e'), '.auth-x', '../x', 'x', 42]) {
      expect(proofOwner(dir, p)).toBeUndefined();
    }
    writeFileSync(join(dir, proof('f')), '');
    expect(proofOwner(dir, proof('f'))).toBe(me);
    expect(JSON.parse(await ask(dir, '{"op":"kick"}\n'))).toEqual({ ok: false, error: 'malformed request' });
    expect(JSON.parse(await ask(dir, 'nope\n'))).toEqual({ ok: false, error: 'malformed request' });
    writeFileSync(join(dir, proof('g')), '');
    expect(JSON.parse(await ask(dir, JSON.stringify({ op: 'own', action: 'remove', proof: proof('g'), ids: ['../../etc'] }) + '\n')))
      .toEqual({ ok: false, error: 'bad message id' });
    expect(calls.removed).toEqual([]);
  });

  it('refuses a request line over 1 MB and serves at most 64 connections at once', async () => {
    await start();
    const r = JSON.parse(await ask(dir, Buffer.alloc(1024 * 1024 + 10, 0x61)));
    expect(r).toEqual({ ok: false, error: 'request too long' });
    expect(MAX_CONNECTIONS).toBe(64);
    expect((server as unknown as { server: { maxConnections: number } }).server.maxConnections).toBe(64);
  });
});
