// Unit tests for src/admin/own-server.ts: the public socket's request checks, its
// limits (line size; idle connections give way and time out; requests per user), and
// the proof file (fresh, empty, one link, removed).
import { mkdtempSync, rmSync, writeFileSync, linkSync, symlinkSync, existsSync, utimesSync, statSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUSY_ERROR, OwnServer, ownSocketPath, PER_USER, proofOwner } from '../../src/admin/own-server.js';
import { MAX_CONNECTIONS } from '../../src/admin/line-server.js';
import type { GuardLimits } from '../../src/core/conn-guard.js';

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

  async function start(limits?: Partial<GuardLimits>, hold?: Promise<void>): Promise<{ removed: string[][] }> {
    dir = mkdtempSync(join(tmpdir(), 'own-'));
    const calls = { removed: [] as string[][] };
    server = new OwnServer({ maildrop: dir, ...(limits ? { limits } : {}), handlers: {
      list: (login) => `listing for ${login}\n`,
      remove: async (ids) => {
        calls.removed.push(ids);
        await hold;
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

  it('refuses a request line over 1 MB', async () => {
    await start();
    const r = JSON.parse(await ask(dir, Buffer.alloc(1024 * 1024 + 10, 0x61)));
    expect(r).toEqual({ ok: false, error: 'request too long' });
  });

  it('idle connections give way to a request and are closed at the first-byte time-out; at most 64 are open', async () => {
    await start({ firstByte: 300, request: 1_000 });
    const idle: Socket[] = [];
    let closed = 0;
    const born = Date.now();
    let lived = 0;
    try {
      // More idle connections than the cap, all connected (or dropped) before the request.
      await Promise.all(Array.from({ length: 2 * MAX_CONNECTIONS }, () => new Promise<void>((resolve) => {
        const c = createConnection(ownSocketPath(dir));
        idle.push(c);
        c.on('error', () => undefined);
        c.on('close', () => { closed++; lived = Math.max(lived, Date.now() - born); resolve(); });
        c.on('connect', () => resolve());
      })));
      const open = () => server!.connections.open;
      expect(open()).toBeLessThanOrEqual(MAX_CONNECTIONS);
      writeFileSync(join(dir, proof('a')), '');
      const r = JSON.parse(await ask(dir, JSON.stringify({ op: 'own', action: 'list', proof: proof('a') }) + '\n'));
      expect(r).toEqual({ ok: true, text: expect.stringMatching(/^listing for /) });
      expect(server!.connections.evicted).toBeGreaterThanOrEqual(MAX_CONNECTIONS + 1);
      expect(server!.connections.refused).toBe(0);
      // The rest: closed by the daemon once their first byte is overdue.
      await vi.waitFor(() => expect(closed).toBe(idle.length), { timeout: 5_000, interval: 20 });
      expect(open()).toBe(0);
      expect(server!.connections.timedOut).toBeGreaterThan(0);
      expect(lived).toBeLessThan(3_000);
    } finally {
      for (const c of idle) c.destroy();
    }
  });

  it('a connection that trickles its request is closed at the request time-out', async () => {
    await start({ firstByte: 300, request: 800 });
    const c = createConnection(ownSocketPath(dir));
    const t0 = Date.now();
    const tick = setInterval(() => c.write(' '), 100);
    try {
      await new Promise<void>((resolve) => { c.on('error', () => undefined); c.on('close', () => resolve()); });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
      expect(server!.connections.timedOut).toBe(1);
    } finally {
      clearInterval(tick);
      c.destroy();
    }
  });

  it(`one user has at most ${PER_USER} requests answered at once; others are not held up`, async () => {
    let release = () => {};
    const hold = new Promise<void>((r) => (release = r));
    await start(undefined, hold);
    const id = '1xVME4-0001HS-0Y';
    const removal = (c: string) => {
      writeFileSync(join(dir, proof(c)), '');
      return ask(dir, JSON.stringify({ op: 'own', action: 'remove', proof: proof(c), ids: [id] }) + '\n');
    };
    const held = ['1', '2', '3', '4'].slice(0, PER_USER).map(removal);
    // Each held request has passed its proof (the proof file is gone) before the next one.
    await vi.waitFor(() => expect(['1', '2', '3', '4'].slice(0, PER_USER).every((c) => !existsSync(join(dir, proof(c))))).toBe(true));
    expect(JSON.parse(await removal('5'))).toEqual({ ok: false, error: BUSY_ERROR });
    release();
    for (const r of await Promise.all(held)) expect(JSON.parse(r)).toEqual({ ok: true, results: ['gone'] });
    expect(JSON.parse(await removal('6'))).toEqual({ ok: true, results: ['gone'] });
  });
});
