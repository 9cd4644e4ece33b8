// The maildrop pickup on a real LMDB spool in a temp folder: files written by the
// sendmail side (writeDropFile) become spool messages made by the pickup (its IDs, the
// owner as U=), in bounded rounds; -odq mail is not kicked; anything that is not a
// complete drop file (FIFO, folder, junk, too big) is removed with a log line and
// never blocks or crashes the pickup.
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import { writeDropFile } from '../../src/receive/maildrop.js';
import { EMPTY_STALL, Pickup, RECHECK, STALL } from '../../src/receive/pickup.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { waitUntil } from '../helpers/postern.js';

describe('maildrop pickup', () => {
  let dir: string;
  let drop: string;
  let spool: LmdbSpool;
  let events: MtaEvent[];
  let kicked: string[];
  let pickup: Pickup;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'postern-pickup-'));
    drop = join(dir, 'maildrop');
    mkdirSync(drop);
    spool = LmdbSpool.open(join(dir, 'spool'));
    events = [];
    kicked = [];
    const bus = new EventBus();
    bus.on((e) => events.push(e));
    pickup = new Pickup({ dir: drop, spool, events: bus, clock: systemClock, ids: new MessageIdGenerator(), hostname: 'web1.example.org',
      qualifyDomain: 'example.org', maxMessageSize: 4096, maxRecipients: 5, kick: (id) => kicked.push(id) });
  });
  afterEach(async () => {
    await spool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const envelope = (extra: object = {}) => ({ v: 1, recipients: ['ops@example.org'], extract: false, protocol: 'local' as const, ...extra });

  it('makes each file a spool message with its own ID and the owner as U=, in bounded turns', async () => {
    for (let i = 0; i < 250; i++) writeDropFile(drop, envelope(), Buffer.from(`Subject: n${i}\n\nbody\n`));
    writeDropFile(drop, envelope({ queueOnly: true, sender: 'app' }), Buffer.from('Subject: later\n\nx\n'));
    await pickup.run();
    expect(readdirSync(drop)).toEqual([]);
    expect(spool.count()).toBe(251);
    const me = userInfo().username;
    const received = events.filter((e) => e.type === 'received');
    expect(received).toHaveLength(251);
    for (const e of received) expect(e).toMatchObject({ user: me, protocol: 'local' });
    // -odq mail waits for a queue run: committed, not kicked; -f is kept and qualified.
    const later = [...spool.list()].find((r) => r.queueOnly)!;
    expect(later.sender).toBe('app@example.org');
    expect(kicked).toHaveLength(250);
    expect(kicked).not.toContain(later.id);
    expect(spool.headers(later.id)).toMatch(new RegExp(`^Received: from ${me} by web1\\.example\\.org with local`));
    expect(spool.pickupMarks()).toEqual([]);
  });

  it('takes a new file at once from the folder\'s events, and every 2 s when it cannot watch the folder (sendmail does not call)', async () => {
    pickup.start();
    try {
      writeDropFile(drop, envelope(), Buffer.from('Subject: watched\n\nx\n'));
      await waitUntil('the watched file', () => spool.count() === 1, 20_000);
    } finally {
      await pickup.stop();
    }
    // A folder that is not there at the start cannot be watched: the scans find its files.
    const later = join(dir, 'later-drop');
    const unwatched = new Pickup({ dir: later, spool, events: new EventBus(), clock: systemClock, ids: new MessageIdGenerator(), hostname: 'web1.example.org',
      qualifyDomain: 'example.org', maxMessageSize: 4096, maxRecipients: 5, kick: () => {} });
    unwatched.start();
    try {
      mkdirSync(later);
      writeDropFile(later, envelope(), Buffer.from('Subject: scanned\n\nx\n'));
      await waitUntil('the scanned file (not the minute scan)', () => spool.count() === 2, 20_000);
    } finally {
      await unwatched.stop();
    }
  });

  it('removes what is not a complete drop file, with one log line naming the owner, and goes on', async () => {
    execFileSync('mkfifo', [join(drop, 'fifo')]);
    mkdirSync(join(drop, 'folder'));
    writeFileSync(join(drop, 'junk'), 'no envelope here', { mode: 0o644 });
    writeFileSync(join(drop, 'big'), `${JSON.stringify(envelope())}\n${'x'.repeat(2 * 1024 * 1024)}`, { mode: 0o644 });
    writeFileSync(join(drop, 'norcpt'), `${JSON.stringify(envelope({ recipients: [] }))}\nSubject: x\n\nx\n`, { mode: 0o644 });
    writeFileSync(join(drop, 'many'), `${JSON.stringify(envelope({ recipients: ['a@x.org', 'b@x.org', 'c@x.org', 'd@x.org', 'e@x.org', 'f@x.org'] }))}\nx\n`, { mode: 0o644 });
    writeFileSync(join(drop, 'unfinished'), `${JSON.stringify(envelope())}\nSubject: x\n\nx\n`, { mode: 0o600 });
    writeDropFile(drop, envelope(), Buffer.from('Subject: good\n\nx\n'));
    await pickup.run();
    await pickup.stop(); // says now what it would say once the user's removals have been quiet for 10 s
    expect(readdirSync(drop)).toEqual(['unfinished']);
    expect(spool.count()).toBe(1);
    const notices = events.filter((e) => e.type === 'notice').map((e) => (e as { text: string }).text);
    const me = userInfo().username;
    // One line for the user, naming each file and why.
    expect(notices).toHaveLength(1);
    const [line] = notices as [string];
    expect(line).toMatch(new RegExp(`^maildrop: removed 6 files from ${me} \\(uid \\d+\\): `));
    for (const part of [/big \(too big \(\d+ bytes\)\)/, /fifo \(not a regular file\)/, /folder \(a folder\)/, /junk \(no envelope line\)/,
      /many \(more than 5 recipients\)/, /norcpt \(no recipients\)/]) expect(line).toMatch(part);
  });
  const notices = () => events.filter((e) => e.type === 'notice').map((e) => (e as { text: string }).text);

  it('judges unfinished files by their growth on its own clock (not by times their owner may set), removes them, one line per user', async () => {
    const clock = new ManualClock(Date.now());
    const bus = new EventBus();
    bus.on((e) => events.push(e));
    const p = new Pickup({ dir: drop, spool, events: bus, clock, ids: new MessageIdGenerator(), hostname: 'web1.example.org',
      qualifyDomain: 'example.org', maxMessageSize: 4096, maxRecipients: 5, kick: () => {} });
    const root = process.getuid?.() === 0;
    const nobody = root ? Number(execFileSync('id', ['-u', 'nobody']).toString()) : undefined;
    const future = new Date(Date.now() + 365 * 86_400_000);
    // 300 empty unfinished files with mtimes a year ahead (half of them nobody's, as root),
    // one unfinished file with bytes in it, and a good one.
    for (let i = 0; i < 300; i++) {
      const f = join(drop, `e${String(i).padStart(31, '0')}`);
      writeFileSync(f, '', { mode: 0o600 });
      if (nobody !== undefined && i % 2) chownSync(f, nobody, nobody);
      utimesSync(f, future, future);
    }
    const slow = join(drop, 's'.repeat(32));
    writeFileSync(slow, `${JSON.stringify(envelope())}\nSubject: slow\n`, { mode: 0o600 });
    utimesSync(slow, future, future);
    writeDropFile(drop, envelope(), Buffer.from('Subject: good\n\nx\n'));
    await p.run();
    expect(spool.count()).toBe(1);
    expect(readdirSync(drop)).toHaveLength(301);
    expect(notices()).toEqual([]);

    // A minute later the empty ones are junk: removed, one line per owner.
    clock.advance(EMPTY_STALL);
    await p.run();
    expect(readdirSync(drop)).toEqual(['s'.repeat(32)]);
    expect(notices()).toEqual([]); // said once the user's removals have been quiet for 10 s
    clock.advance(10_000);
    await p.run();
    const lines = notices();
    expect(lines).toHaveLength(root ? 2 : 1);
    for (const line of lines) expect(line).toMatch(new RegExp(`^maildrop: removed ${root ? 150 : 300} files from \\S+ \\(uid \\d+\\): ${root ? 150 : 300} left empty and unfinished \\(the first e0+\\d+\\)$`));

    // The one with bytes stays while it grows, and goes once it has not grown for STALL.
    clock.advance(STALL / 2);
    appendFileSync(slow, 'more: header\n');
    await p.run();
    clock.advance(STALL - RECHECK);
    await p.run();
    expect(readdirSync(drop)).toEqual(['s'.repeat(32)]);
    clock.advance(RECHECK); // a known unfinished name is looked at again after RECHECK
    await p.run();
    expect(readdirSync(drop)).toEqual([]);
    await p.stop();
    expect(notices().at(-1)).toMatch(/^maildrop: removed s{32} from \S+ \(uid \d+\): left unfinished \(not grown for 10 minutes\)$/);
  });

  it('serves the event loop while it walks thousands of names it skips (each name counts toward a turn)', async () => {
    for (let i = 0; i < 3000; i++) writeFileSync(join(drop, `u${String(i).padStart(31, '0')}`), '', { mode: 0o600 });
    let ticks = 0;
    let done = false;
    const spin = () => {
      ticks++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    await pickup.run();
    done = true;
    expect(readdirSync(drop)).toHaveLength(3000); // unfinished, not yet stale: left
    expect(ticks).toBeGreaterThanOrEqual(10); // at least once per turn of 256 names
  });

  it('streams a big file into the spool as SMTP bodies are (a body file), never whole in memory', async () => {
    const big = new Pickup({ dir: drop, spool, events: new EventBus(), clock: systemClock, ids: new MessageIdGenerator(), hostname: 'web1.example.org',
      qualifyDomain: 'example.org', maxMessageSize: 8 * 1024 * 1024, maxRecipients: 5, kick: () => {} });
    const body = Buffer.from('0123456789abcdef\n'.repeat(200_000)); // 3.4 MB
    writeDropFile(drop, envelope(), [Buffer.from('Subject: big\n\n'), body]);
    await big.run();
    const [r] = [...spool.list()];
    expect(r?.bodyFile).toBe(true);
    expect(r?.size).toBeGreaterThan(body.length);
    const chunks: Buffer[] = [];
    for await (const c of spool.body(r!.id)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    expect(readdirSync(drop)).toEqual([]);
  });
});
