// End-to-end: big messages are never held whole in the daemon's memory. 20 clients
// send 20 MB each at once while the daemon's RSS is sampled (SPEC: within 150 MB of its
// idle RSS from the first DATA until the last 250), and all 20 reach the smarthost
// intact; the same while the hub takes them as they arrive (bodies over 1 MB are files
// read with plain reads, so no body page stays mapped), until the last is settled; a
// client that drops mid-DATA, an oversized message and a daemon killed mid-DATA leave
// no chunks or body files behind, and the daemon keeps serving.
import { createHash, type Hash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { Instance, waitUntil } from '../helpers/postern.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

const MB = 1024 * 1024;
const CLIENTS = 20;
/** 318 blocks of 1,000 66-byte lines: 20.0 MiB per message. */
const BLOCKS = 318;
const LINES = 1000;

/** Block `i` of client `k`'s body: CRLF lines of hex, none starting with a dot. */
function block(k: number, i: number): Buffer {
  const seed = createHash('sha256').update(`${k}:${i}`).digest('hex');
  const line = Buffer.from(seed + '\r\n', 'latin1'); // 66 bytes
  const out = Buffer.allocUnsafe(line.length * LINES);
  for (let j = 0; j < LINES; j++) line.copy(out, j * line.length);
  return out;
}

/**
 * A smarthost that keeps only the SHA-256 of each body (by Subject), never the bytes;
 * hold() keeps new connections waiting for their greeting, and connections already open
 * (the transport keeps one for the next message) waiting for the reply to MAIL, until
 * release().
 */
class HashSink {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((res) => (this.open = res));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  readonly bodies = new Map<string, { hash: string; size: number }>();
  /** By Subject: the header block's size with LF line ends (as the spool counts it). */
  readonly headerSizes = new Map<string, number>();
  private server: SMTPServer;
  port = 0;
  constructor() {
    this.server = new SMTPServer({
      authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], disableReverseLookup: true, logger: false,
      size: 100 * MB,
      onConnect: (_s: SMTPServerSession, cb: (e?: Error) => void) => {
        if (this.gate) void this.gate.then(() => cb());
        else cb();
      },
      onMailFrom: (_a: unknown, _s: SMTPServerSession, cb: (e?: Error) => void) => {
        if (this.gate) void this.gate.then(() => cb());
        else cb();
      },
      onData: (stream: NodeJS.ReadableStream, _s: SMTPServerSession, cb: (e?: Error | null, m?: string) => void) => {
        let head: Buffer | undefined = Buffer.alloc(0);
        let hash: Hash | undefined;
        let subject = '';
        let size = 0;
        stream.on('data', (c: Buffer) => {
          if (hash) {
            hash.update(c);
            size += c.length;
            return;
          }
          head = Buffer.concat([head as Buffer, c]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = head.subarray(0, end + 2).toString('latin1');
          subject = /^Subject: (.*)$/m.exec(text)?.[1]?.trim() ?? '';
          this.headerSizes.set(subject, text.replace(/\r\n/g, '\n').length);
          hash = createHash('sha256').update(head.subarray(end + 4));
          size = head.length - end - 4;
          head = undefined;
        });
        stream.on('end', () => {
          this.bodies.set(subject, { hash: hash?.digest('hex') ?? '', size });
          cb(null, 'Ok');
        });
      },
    } as ConstructorParameters<typeof SMTPServer>[0]);
    this.server.on('error', () => {});
  }
  listen(): Promise<void> {
    return new Promise((res) => this.server.listen(0, '127.0.0.1', () => {
      this.port = ((this.server as unknown as { server: { address(): { port: number } } }).server.address()).port;
      res();
    }));
  }
  close(): Promise<void> {
    return new Promise((res) => this.server.close(() => res()));
  }
}

/** VmRSS and its parts (anonymous, file-backed: the spool's mapped pages), kB. */
function rss(pid: number): { total: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { total: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

async function write(sock: import('node:net').Socket, data: Buffer | string): Promise<void> {
  if (!sock.write(data)) await once(sock, 'drain');
}

/** One client: the whole transaction, the body generated block by block. Calls onData at its 354. */
async function sendBig(port: number, k: number, onData: () => void): Promise<{ reply: string; hash: string; size: number }> {
  const { client } = await RawSmtp.open(port);
  const sock = (client as unknown as { sock: import('node:net').Socket }).sock;
  try {
    await client.cmd('EHLO big.test');
    await client.cmd('MAIL FROM:<big@example.org>');
    await client.cmd('RCPT TO:<ops@example.org>');
    const go = await client.cmd('DATA');
    if (!go.startsWith('354')) return { reply: go, hash: '', size: 0 };
    onData();
    const hash = createHash('sha256');
    await write(sock, `Subject: big ${k}\r\nFrom: big@example.org\r\n\r\n`);
    let size = 0;
    for (let i = 0; i < BLOCKS; i++) {
      const b = block(k, i);
      hash.update(b);
      size += b.length;
      await write(sock, b);
    }
    await write(sock, '.\r\n');
    return { reply: await client.reply(300_000), hash: hash.digest('hex'), size };
  } finally {
    client.close();
  }
}

/** Body files in a spool folder (bodies over 1 MB, committed or being received). */
function bodyFiles(spoolDir: string): string[] {
  try {
    return readdirSync(join(spoolDir, 'bodies'));
  } catch {
    return [];
  }
}

let p: Instance | undefined;
let sink: HashSink | undefined;
let spool: LmdbSpool | undefined;

afterEach(async () => {
  await spool?.close();
  spool = undefined;
  await p?.cleanup();
  p = undefined;
  sink?.release();
  await sink?.close();
  sink = undefined;
});

async function setUp(maxSize: string): Promise<Instance> {
  sink = new HashSink();
  await sink.listen();
  p = new Instance([sink.port]);
  writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('max_message_size = "1M"', `max_message_size = "${maxSize}"`)
    .replace('timeout = "10s"', 'timeout = "5m"'));
  await p.start();
  return p;
}

describe('big messages', () => {
  it(`${CLIENTS} concurrent 20 MB messages: the daemon's RSS stays within 150 MB of idle, all arrive intact`, async () => {
    const inst = await setUp('25M');
    const pid = inst.daemon!.pid!;
    expect((await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: small\n\nhello\n')).startsWith('250')).toBe(true);
    await waitUntil('the small message at the sink', () => sink!.bodies.has('small'));
    const idle = rss(pid);

    // Receiving: the hub holds its greeting meanwhile, so the window measures receiving
    // alone (sending on is measured apart below, and both at once in the next case).
    sink!.hold();
    let peak = idle;
    const sample = () => {
      const now = rss(pid);
      if (now.total > peak.total) peak = now;
    };
    let sampler: NodeJS.Timeout | undefined;
    const startSampling = () => {
      sampler ??= setInterval(sample, 50);
    };
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, k) => sendBig(inst.port, k, startSampling)));
    sample();
    clearInterval(sampler);
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    console.log(`big messages, receiving: idle RSS ${mb(idle.total)} MB, peak ${mb(peak.total)} MB, peak - idle ` +
      `${mb(peak.total - idle.total)} MB (anonymous ${mb(peak.anon - idle.anon)}, spool pages mapped ${mb(peak.file - idle.file)}), ` +
      `${CLIENTS} x ${(results[0]!.size / MB).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const r of results) expect(r.reply).toMatch(/^250 2\.0\.0 OK id=/);
    expect((peak.total - idle.total) / 1024).toBeLessThan(150);

    // Sending on: bodies are read from their files 64 KB at a time, never whole in the heap.
    let out = rss(pid);
    const sender = setInterval(() => {
      const now = rss(pid);
      if (now.anon > out.anon) out = { ...now, file: Math.max(now.file, out.file) };
      else if (now.file > out.file) out = { ...out, file: now.file };
    }, 50);
    sink!.release();
    try {
      await waitUntil('all big messages at the sink', () => sink!.bodies.size >= CLIENTS + 1, 300_000);
    } finally {
      clearInterval(sender);
    }
    console.log(`big messages, sending on: peak anonymous RSS ${mb(out.anon - idle.anon)} MB over idle, ` +
      `spool pages mapped ${mb(out.file - idle.file)} MB over idle`);
    expect((out.anon - idle.anon) / 1024).toBeLessThan(150);
    results.forEach((r, k) => expect(sink!.bodies.get(`big ${k}`)).toEqual({ hash: r.hash, size: r.size }));
    // S= is header bytes + 1 + body bytes (LF line ends), as before streaming.
    const logged = (await inst.waitForLog(/<= big@example\.org .* S=\d+/, CLIENTS)).map((l) => Number(/ S=(\d+)/.exec(l)![1]));
    const expected = results.map((_r, k) => sink!.headerSizes.get(`big ${k}`)! + 1 + BLOCKS * LINES * 65);
    expect(logged.sort()).toEqual(expected.sort());
  }, 600_000);

  it(`${CLIENTS} concurrent 20 MB messages sent on as they arrive: RSS within 150 MB of idle until the last is settled`, async () => {
    const inst = await setUp('25M');
    const pid = inst.daemon!.pid!;
    expect((await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: small\n\nhello\n')).startsWith('250')).toBe(true);
    await inst.waitForLog(/ Completed/);
    const idle = rss(pid);

    // The hub takes each message as soon as it is committed: receiving and sending on
    // overlap, and every body page read to send it on would count if it stayed mapped.
    let peak = idle;
    const sample = () => {
      const now = rss(pid);
      if (now.total > peak.total) peak = now;
    };
    let sampler: NodeJS.Timeout | undefined;
    const startSampling = () => {
      sampler ??= setInterval(sample, 50);
    };
    const started = Date.now();
    let results: Awaited<ReturnType<typeof sendBig>>[];
    try {
      results = await Promise.all(Array.from({ length: CLIENTS }, (_, k) => sendBig(inst.port, k, startSampling)));
      for (const r of results) expect(r.reply).toMatch(/^250 2\.0\.0 OK id=/);
      // Until the last one is delivered and settled (removed from the spool).
      await inst.waitForLog(/ Completed/, CLIENTS + 1, 300_000);
      sample();
    } finally {
      clearInterval(sampler);
    }
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    console.log(`big messages, received and sent on at once: idle RSS ${mb(idle.total)} MB, peak ${mb(peak.total)} MB, ` +
      `peak - idle ${mb(peak.total - idle.total)} MB (anonymous ${mb(peak.anon - idle.anon)}, file pages mapped ` +
      `${mb(peak.file - idle.file)}), ${CLIENTS} x ${(results[0]!.size / MB).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect((peak.total - idle.total) / 1024).toBeLessThan(150);
    results.forEach((r, k) => expect(sink!.bodies.get(`big ${k}`)).toEqual({ hash: r.hash, size: r.size }));
    expect(bodyFiles(join(inst.dir, 'spool'))).toEqual([]);
  }, 600_000);

  it('a client dropping mid-DATA and an oversized message leave no chunks or files; the daemon keeps serving', async () => {
    const inst = await setUp('2M');
    const dir = join(inst.dir, 'spool');
    spool = LmdbSpool.open(dir);

    // Dropped mid-DATA, after its body has gone past 1 MB into a file.
    const { client } = await RawSmtp.open(inst.port);
    const sock = (client as unknown as { sock: import('node:net').Socket }).sock;
    await client.cmd('EHLO drop.test');
    await client.cmd('MAIL FROM:<drop@example.org>');
    await client.cmd('RCPT TO:<ops@example.org>');
    expect(await client.cmd('DATA')).toMatch(/^354/);
    await write(sock, 'Subject: dropped\r\n\r\n');
    for (let i = 0; i < 20; i++) await write(sock, block(99, i));
    await waitUntil('the body file of the message being received', () => spool!.incomingCount() === 1 && bodyFiles(dir).length === 1);
    sock.destroy();
    await waitUntil('nothing left after the drop', () => spool!.incomingCount() === 0 && spool!.strayChunks() === 0 && bodyFiles(dir).length === 0);

    // Over max_message_size: 552 5.3.4 once the data ends, and nothing left.
    const big = await RawSmtp.open(inst.port);
    const bigSock = (big.client as unknown as { sock: import('node:net').Socket }).sock;
    await big.client.cmd('EHLO big.test');
    await big.client.cmd('MAIL FROM:<big@example.org>');
    await big.client.cmd('RCPT TO:<ops@example.org>');
    expect(await big.client.cmd('DATA')).toMatch(/^354/);
    await write(bigSock, 'Subject: too big\r\n\r\n');
    for (let i = 0; i < 40; i++) await write(bigSock, block(98, i)); // 2.6 MB
    await write(bigSock, '.\r\n');
    expect(await big.client.reply()).toMatch(/^552 5\.3\.4 /);
    // The session goes on: a small message in the same connection is taken.
    await big.client.cmd('MAIL FROM:<big@example.org>');
    await big.client.cmd('RCPT TO:<ops@example.org>');
    expect(await big.client.data('Subject: after\n\nfine\n')).toMatch(/^250 /);
    big.client.close();
    await waitUntil('nothing left after the oversized message', () => spool!.incomingCount() === 0 && spool!.strayChunks() === 0 && bodyFiles(dir).length === 0);

    expect((await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: still\n\nok\n')).startsWith('250')).toBe(true);
    await waitUntil('the later messages at the sink', () => sink!.bodies.has('still') && sink!.bodies.has('after'));
    expect(sink!.bodies.has('dropped')).toBe(false);
    expect(sink!.bodies.has('too big')).toBe(false);
  }, 120_000);

  it('a header block over 1 MB gets 552 5.3.4 and leaves nothing', async () => {
    const inst = await setUp('25M');
    spool = LmdbSpool.open(join(inst.dir, 'spool'));
    const { client } = await RawSmtp.open(inst.port);
    const sock = (client as unknown as { sock: import('node:net').Socket }).sock;
    await client.cmd('EHLO hdr.test');
    await client.cmd('MAIL FROM:<hdr@example.org>');
    await client.cmd('RCPT TO:<ops@example.org>');
    expect(await client.cmd('DATA')).toMatch(/^354/);
    const header = Buffer.from(`X-Filler: ${'h'.repeat(1000)}\r\n`);
    for (let i = 0; i < 1100; i++) await write(sock, header);
    await write(sock, '\r\nbody\r\n.\r\n');
    expect(await client.reply()).toBe('552 5.3.4 Message header too long');
    client.close();
    await inst.waitForLog(/rejected .*Message header too long|Message header too long/);
    expect(spool.incomingCount()).toBe(0);
    expect(spool.strayChunks()).toBe(0);
    expect(bodyFiles(join(inst.dir, 'spool'))).toEqual([]);
  }, 120_000);

  it('a daemon killed mid-DATA: the next start removes the partial message', async () => {
    const inst = await setUp('25M');
    spool = LmdbSpool.open(join(inst.dir, 'spool'));
    const { client } = await RawSmtp.open(inst.port);
    const sock = (client as unknown as { sock: import('node:net').Socket }).sock;
    sock.on('error', () => {});
    await client.cmd('EHLO crash.test');
    await client.cmd('MAIL FROM:<crash@example.org>');
    await client.cmd('RCPT TO:<ops@example.org>');
    expect(await client.cmd('DATA')).toMatch(/^354/);
    await write(sock, 'Subject: crashed\r\n\r\n');
    for (let i = 0; i < 20; i++) await write(sock, block(97, i));
    const dir = join(inst.dir, 'spool');
    await waitUntil('the body file of the message being received', () => spool!.incomingCount() === 1 && bodyFiles(dir).length === 1);
    await inst.stop('SIGKILL');
    sock.destroy();
    expect(spool.incomingCount()).toBe(1);
    await inst.start();
    await waitUntil('the partial message swept', () => spool!.incomingCount() === 0 && spool!.strayChunks() === 0 && bodyFiles(dir).length === 0);
    expect((await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: after crash\n\nok\n')).startsWith('250')).toBe(true);
    await waitUntil('the message at the sink', () => sink!.bodies.has('after crash'));
    expect(sink!.bodies.has('crashed')).toBe(false);
  }, 120_000);
});

const root = process.getuid?.() === 0;

describe.skipIf(!root)('big messages on a disk that fills up', () => {
  let mnt: string | undefined;
  afterEach(() => {
    if (!mnt) return;
    try { execFileSync('umount', ['-l', mnt]); } catch { /* not mounted */ }
    rmSync(mnt, { recursive: true, force: true });
    mnt = undefined;
  });

  it('a message that fills the disk mid-DATA gets 452 4.3.1 and leaves no chunks or file; the daemon goes on', async () => {
    mnt = mkdtempSync(join(tmpdir(), 'postern-big-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
    sink = new HashSink();
    await sink.listen();
    const inst = new Instance([sink.port]);
    p = inst;
    mkdirSync(join(mnt, 'spool'));
    writeFileSync(inst.config, readFileSync(inst.config, 'utf8').replace('max_message_size = "1M"', 'max_message_size = "25M"')
      .replace('directory = "spool"', `directory = "${join(mnt, 'spool')}"`));
    await inst.start();
    spool = LmdbSpool.open(join(mnt, 'spool'));
    const r = await sendBig(inst.port, 0, () => {});
    expect(r.reply).toMatch(/^452 4\.3\.1 /);
    expect(inst.daemon?.exitCode).toBeNull();
    await waitUntil('nothing left after the full disk', () => spool!.incomingCount() === 0 && spool!.strayChunks() === 0
      && bodyFiles(join(mnt!, 'spool')).length === 0, 60_000);
    await inst.waitForLog(/cannot write the spool/);
    // The spool file keeps its size (LMDB reuses freed pages, never gives them back), so
    // the room comes back as an administrator would make it: here, a larger tmpfs.
    execFileSync('mount', ['-o', 'remount,size=32m', mnt]);
    let reply = '';
    for (const deadline = Date.now() + 30_000; !/^250 /.test(reply) && Date.now() < deadline;) {
      reply = await sendOne(inst.port, 'a@example.org', ['ops@example.org'], 'Subject: after full\n\nok\n');
    }
    expect(reply).toMatch(/^250 /);
    await waitUntil('the message at the sink', () => sink!.bodies.has('after full'));
  }, 120_000);
});
