// The listing entries (spool/listing.ts) that -bp and postern-qgrep read: written and
// removed with the record in its transaction through every change, so that what
// listed() gives is what list() gives; a spool with messages stored before the listing
// (the legacy fixture, and one as current main wrote it, without the database) lists
// the same, through the API and the real CLI.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageRecord, NewMessage } from '../../src/core/types.js';
import { listingOf, parseListing, type Listed } from '../../src/spool/listing.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { freeze, remove, settle } from '../helpers/spool.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const gen = new MessageIdGenerator(5123);
const FIXTURE = join(import.meta.dirname, '../fixtures/spool-0cc35cf/spool.mdb');
const POSTERN = join(import.meta.dirname, '../../bin/postern');

const dirs: string[] = [];
const spools: LmdbSpool[] = [];
afterEach(async () => {
  for (const s of spools.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-listing-'));
  dirs.push(dir);
  return dir;
}

function openSpool(dir: string): LmdbSpool {
  const s = LmdbSpool.open(dir);
  spools.push(s);
  return s;
}

async function closeSpool(s: LmdbSpool): Promise<void> {
  spools.splice(spools.indexOf(s), 1);
  await s.close();
}

function message(arrival: number, sender = 'a@example.org', recipients = ['ops@example.org', 'dev@example.org']): NewMessage {
  return { id: gen.next(arrival), sender, recipients, arrival, protocol: 'local', headers: 'Subject: t\n', body: [Buffer.from('x\n')] };
}

/** What a listing shows of a message. */
const shown = (m: Listed) => ({ id: m.id, arrival: m.arrival, size: m.size, sender: m.sender, frozen: m.frozen,
  recipients: m.recipients.map((r) => ({ address: r.address, state: r.state })) });

/** The `listing` database as it is on disk, read by a second environment. */
async function onDisk(dir: string, f: (meta: Map<string, MessageRecord>, listing: Map<string, string>) => void): Promise<void> {
  const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false, readOnly: true });
  try {
    const meta = new Map([...env.openDB<MessageRecord, string>({ name: 'meta', encoding: 'msgpack' }).getRange({})].map((e) => [e.key, e.value]));
    const listing = new Map([...env.openDB<string, string>({ name: 'listing', encoding: 'string' }).getRange({})].map((e) => [e.key, e.value]));
    f(meta, listing);
  } finally {
    await env.close();
  }
}

/** Removes every listing entry: the spool as a postern before the listing (current main) left it. */
async function dropListing(dir: string): Promise<void> {
  const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
  await env.openDB({ name: 'listing', encoding: 'string' }).drop();
  await env.close();
}

/** `postern -bp` (with `flags`) on a spool folder, through the real CLI. */
function bp(dir: string, ...flags: string[]): string {
  const conf = join(dir, 'postern.toml');
  writeFileSync(conf, `hostname = "t.example.org"\nqualify_domain = "example.org"\n[listen]\nsmtp = ["127.0.0.1:0"]\n[spool]\ndirectory = "${dir}"\n` +
    `[smarthost]\nhosts = ["127.0.0.1:9"]\ntls = "none"\n[log]\nfile = "${dir}-mainlog"\n`);
  dirs.push(`${dir}-maildrop`, `${dir}-mainlog`);
  const r = spawnSync(process.execPath, [POSTERN, '-C', conf, ...flags], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('listing entries', () => {
  it('round-trip, and an entry of another version or shape is not read', () => {
    const r = { id: 'x', arrival: T0, size: 1234, sender: '', frozen: true,
      recipients: [{ address: 'a"\\b@example.org', state: 'delivered' }, { address: 'c@example.org', state: 'pending' }] } as MessageRecord;
    expect(parseListing('x', listingOf(r))).toEqual(shown(r));
    for (const bad of ['[2,1,2,0,"a"]', '[1,1,2,0,"a","b"]', '{}', 'not json', '']) expect(parseListing('x', bad)).toBeUndefined();
  });

  it('follow every change of their record, in its transaction, and go with the message', async () => {
    const dir = tempDir();
    let spool = openSpool(dir);
    const [a, b, c] = [await spool.admit(message(T0)), await spool.admit(message(T0 + 1000, '')), await spool.admit(message(T0 + 2000))];
    await freeze(spool, a.id, 'root', T0);
    await settle(spool, b.id, { recipients: [{ address: 'ops@example.org', state: 'delivered', tries: 1 }], nextAttempt: T0 + 60_000, journal: [] });
    await spool.apply([{ kind: 'edit', id: c.id, edit: { op: 'add-recipients', addresses: ['new@example.org'] }, by: { at: T0, user: 'root' } }]);
    await remove(spool, c.id);
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    expect([...spool.listed()].map((m) => [m.id, m.frozen, m.recipients.map((r) => r.state)])).toEqual([
      [a.id, true, ['pending', 'pending']], [b.id, false, ['delivered', 'pending']]]);
    await closeSpool(spool);
    await onDisk(dir, (meta, listing) => {
      expect([...listing.keys()]).toEqual([...meta.keys()]);
      for (const [id, r] of meta) expect(listing.get(id)).toBe(listingOf(r));
    });
    // Seeks by ID, as qgrep -y/-o do.
    spool = openSpool(dir);
    expect([...spool.listed({ start: b.id })].map((m) => m.id)).toEqual([b.id]);
    expect([...spool.listed({ end: b.id })].map((m) => m.id)).toEqual([a.id]);
  });

  it('a spool as current main wrote it (no listing) and one part so: listed from the records, the same', async () => {
    const dir = tempDir();
    let spool = openSpool(dir);
    const old = [await spool.admit(message(T0)), await spool.admit(message(T0 + 1000))];
    await freeze(spool, old[1]!.id, 'root', T0);
    await closeSpool(spool);
    await dropListing(dir);
    spool = openSpool(dir);
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    // New mail beside it: entries for the new messages only, read in step with the records.
    const fresh = [await spool.admit(message(T0 + 500)), await spool.admit(message(T0 + 3000))];
    await settle(spool, old[0]!.id, { recipients: [{ address: 'dev@example.org', state: 'delivered', tries: 1 }], nextAttempt: T0 + 60_000, journal: [] });
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    expect([...spool.listed()].map((m) => m.id)).toHaveLength(4);
    await closeSpool(spool);
    await onDisk(dir, (_meta, listing) => expect([...listing.keys()].sort()).toEqual([old[0]!.id, ...fresh.map((m) => m.id)].sort()));
    // The real -bp and -bpu give what the records give (drop the listing again: the same text).
    const [withEntries, undelivered] = [bp(dir, '-bp'), bp(dir, '-bpu')];
    expect(withEntries).toContain(`<a@example.org> *** frozen ***\n          ops@example.org\n          dev@example.org\n`);
    expect(undelivered).not.toContain('D dev@example.org');
    await dropListing(dir);
    expect(bp(dir, '-bp').replace(/^.{3}/gm, '')).toBe(withEntries.replace(/^.{3}/gm, ''));
    expect(bp(dir, '-bpu').replace(/^.{3}/gm, '')).toBe(undelivered.replace(/^.{3}/gm, ''));
  });

  it('an entry without its message (left by an older postern) is passed over', async () => {
    const dir = tempDir();
    let spool = openSpool(dir);
    const [a, b] = [await spool.admit(message(T0)), await spool.admit(message(T0 + 1000))];
    await closeSpool(spool);
    const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
    await env.openDB({ name: 'meta', encoding: 'msgpack' }).remove(b.id);
    await env.close();
    spool = openSpool(dir);
    expect([...spool.listed()].map((m) => m.id)).toEqual([a.id]);
  });

  it('the legacy fixture lists from its records, then beside new entries', async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    copyFileSync(FIXTURE, join(dir, 'spool.mdb'));
    const spool = openSpool(dir);
    const before = [...spool.list()].map(shown);
    expect(before).toHaveLength(2);
    expect([...spool.listed()].map(shown)).toEqual(before);
    await spool.admit(message(T0 + 10 * 86_400_000));
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    expect([...spool.listed()].slice(0, 2).map(shown)).toEqual(before);
  });

  it('after an older postern wrote the spool (a message removed, one stored, one delivered to and frozen), mending makes the listing the records again', async () => {
    const dir = tempDir();
    let spool = openSpool(dir);
    const [a, b] = [await spool.admit(message(T0)), await spool.admit(message(T0 + 1000))];
    await closeSpool(spool);
    // What a postern before the listing does: records only (its save/deleteAll write no entry or index).
    const c = { ...a, id: gen.next(T0 + 2000) };
    const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
    const meta = env.openDB<MessageRecord, string>({ name: 'meta', encoding: 'msgpack' });
    await meta.remove(b.id);
    await meta.put(c.id, c);
    const r = meta.get(a.id)!;
    await meta.put(a.id, { ...r, frozen: true, nextAttempt: null, recipients: r.recipients.map((x, i) => (i === 0 ? { ...x, state: 'delivered' as const } : x)) });
    await env.close();
    spool = openSpool(dir);
    // As many entries as records, two of them stale: the case mending is for.
    expect([...spool.listed()].map(shown)).not.toEqual([...spool.list()].map(shown));
    expect(spool.mendIndexes()).toBe(4); // a's entry and its frozen mark, c's entry, b's orphan
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    expect([...spool.listed()].map((m) => [m.id, m.frozen, m.recipients.map((x) => x.state).join()])).toEqual([[a.id, true, 'delivered,pending'], [c.id, false, 'pending,pending']]);
    expect(spool.mendIndexes()).toBe(0); // a spool kept by this version alone: nothing to write
    await closeSpool(spool);
    await onDisk(dir, (m, listing) => expect([...listing.keys()]).toEqual([...m.keys()]));
  });

  it('a start after a clean stop reads no record; a write by anyone since (an older postern) makes it mend', async () => {
    const dir = tempDir();
    let spool = openSpool(dir);
    const [a] = [await spool.admit(message(T0)), await spool.admit(message(T0 + 1000))];
    expect(spool.mendIndexesIfNeeded()).toBe(0); // never stamped: mends (nothing to mend)
    spool.stampIndexes();
    await closeSpool(spool);
    spool = openSpool(dir);
    expect(spool.mendIndexesIfNeeded()).toBeUndefined();
    await closeSpool(spool);
    const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
    const meta = env.openDB<MessageRecord, string>({ name: 'meta', encoding: 'msgpack' });
    await meta.put(a.id, { ...meta.get(a.id)!, frozen: true, nextAttempt: null });
    await env.close();
    spool = openSpool(dir);
    expect(spool.mendIndexesIfNeeded()).toBe(2); // a's entry and its frozen mark
    expect([...spool.listed()].map(shown)).toEqual([...spool.list()].map(shown));
    // This version's own writes after the stamp also make the next start look (and find nothing).
    spool.stampIndexes();
    await spool.admit(message(T0 + 2000));
    expect(spool.mendIndexesIfNeeded()).toBe(0);
  });
});
