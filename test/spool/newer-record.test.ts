// A record written by a newer postern (format version 2) is refused on every path that
// reads it: apply() with every kind of change (an attempt's settlement, freeze, thaw,
// remove, make-due, each envelope edit), the reads and the listing fail with an error
// naming the version, and the record is left
// exactly as it was, never rewritten as this version's. The apply() door's changes
// are journaled in the same transaction: one entry per envelope edit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../src/core/change.js';
import type { NewMessage } from '../../src/core/types.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';

const T0 = Date.UTC(2026, 10, 23, 5, 4, 24);
const gen = new MessageIdGenerator(4932);
const by = { at: T0 + 1000, user: 'root' };
let dir: string;

function message(arrival: number): NewMessage {
  return { id: gen.next(arrival), sender: 'a@example.org', recipients: ['ops@example.org', 'dev@example.org'], arrival, protocol: 'local',
    headers: 'Subject: t\n', body: [Buffer.from('x\n')] };
}

/** The raw stored record, as another process would read it. */
function raw(id: string): unknown {
  const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
  try {
    return structuredClone(env.openDB({ name: 'meta', encoding: 'msgpack' }).get(id));
  } finally {
    void env.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-newer-test-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a record of a newer version', () => {
  it('is refused by every write path and by the listing, and left as it was', async () => {
    let spool = LmdbSpool.open(dir);
    const m = await spool.admit(message(T0));
    await spool.close();
    // A newer postern's record: version 2, with a field this one does not know.
    const env = open({ path: join(dir, 'spool.mdb'), maxDbs: 12, compression: false });
    const meta = env.openDB<Record<string, unknown>, string>({ name: 'meta', encoding: 'msgpack' });
    await meta.put(m.id, { ...(meta.get(m.id) as Record<string, unknown>), v: 2, future: { x: 1 } });
    await env.close();
    const stored = raw(m.id);
    spool = LmdbSpool.open(dir);
    try {
      const version = /record version 2/;
      const changes: Change[] = [
        { kind: 'freeze', id: m.id, by }, { kind: 'thaw', id: m.id, by }, { kind: 'remove', id: m.id, by },
        { kind: 'make-due', id: m.id, at: T0, thaw: true },
        { kind: 'edit', id: m.id, edit: { op: 'add-recipients', addresses: ['z@example.org'] }, by },
        { kind: 'edit', id: m.id, edit: { op: 'set-sender', address: 'b@example.org' }, by },
        { kind: 'edit', id: m.id, edit: { op: 'mark-delivered', addresses: ['ops@example.org'] }, by },
        { kind: 'edit', id: m.id, edit: { op: 'mark-all-delivered' }, by },
        { kind: 'settle', id: m.id, settlement: { recipients: [], nextAttempt: null, journal: [] } },
      ];
      for (const c of changes) await expect(spool.apply([c]), c.kind).rejects.toThrow(version);
      expect(() => [...spool.list()]).toThrow(version);
      expect(() => spool.load(m.id)).toThrow(version);
      expect(() => spool.bodyPrefix(m.id, 10)).toThrow(version);
      expect(spool.journal(m.id)).toEqual([]);
    } finally {
      await spool.close();
    }
    expect(raw(m.id)).toEqual(stored);
  });

  it('(this version\'s records) an edit is journaled with the change, one entry per address', async () => {
    const spool = LmdbSpool.open(dir);
    try {
      const m = await spool.admit(message(T0));
      const [added, missing, marked] = await spool.apply([
        { kind: 'edit', id: m.id, edit: { op: 'add-recipients', addresses: ['z@example.org'] }, by },
        { kind: 'edit', id: m.id, edit: { op: 'mark-delivered', addresses: ['ops@example.org', 'nobody@example.org'] }, by },
        { kind: 'edit', id: m.id, edit: { op: 'mark-delivered', addresses: ['ops@example.org'] }, by },
      ]);
      expect(added?.kind).toBe('changed');
      expect(missing).toEqual({ kind: 'not-recipient', address: 'nobody@example.org' });
      expect(marked?.kind).toBe('changed');
      expect(spool.journal(m.id)).toEqual([
        { v: 1, type: 'edit', at: by.at, edit: 'recipient-added', address: 'z@example.org', user: 'root' },
        { v: 1, type: 'edit', at: by.at, edit: 'marked-delivered', address: 'ops@example.org', user: 'root' },
      ]);
      const [done] = await spool.apply([{ kind: 'edit', id: m.id, edit: { op: 'mark-all-delivered' }, by }]);
      expect(done).toMatchObject({ kind: 'completed', entries: [
        { v: 1, type: 'edit', at: by.at, edit: 'marked-delivered', address: 'dev@example.org', user: 'root' },
        { v: 1, type: 'edit', at: by.at, edit: 'marked-delivered', address: 'z@example.org', user: 'root' }] });
      expect(spool.load(m.id)).toBeUndefined();
    } finally {
      await spool.close();
    }
  });
});
