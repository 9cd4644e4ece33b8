// A spool written before the per-message journal (by postern at 0cc35cf, with that
// version's own LmdbSpool: test/fixtures/make-spool-0cc35cf.mjs) still opens: its
// records decode, its -Mvl text and attempt records come back as legacy journal
// entries (read both, no migration), new entries follow them, and a completed message
// takes its old history with it. Through the real CLI too: -Mvl, -bp --json, delivery.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { journalJson, journalText } from '../../src/log/journal-text.js';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { decodeRecord, RecordVersionError } from '../../src/spool/record.js';
import { closeBoth, sinkAndInstance, type Instance } from '../helpers/postern.js';
import type { Sink } from '../helpers/sink.js';
import { freeze, settle } from '../helpers/spool.js';

const FIXTURE = join(import.meta.dirname, '../fixtures/spool-0cc35cf/spool.mdb');
const A = '1xVaAA-000001-AA';
const B = '1xVaAB-000002-AA';
const T0 = Date.UTC(2026, 10, 23, 5, 0, 0);
const pad = (n: number) => String(n).padStart(2, '0');
/** The old -Mvl text, in this machine's local time as postern writes it. */
function local(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
const REASON = 'SMTP error from remote mail server after RCPT TO:<tmp@example.org>: 451 4.7.1 greylisted';
const OLD_TEXT = `${local(T0 + 2000)} => ok@example.org R=smarthost T=remote_smtp H=127.0.0.1 [127.0.0.1]:2525 C="250 2.0.0 OK"\n` +
  `${local(T0 + 2000)} == tmp@example.org R=smarthost T=remote_smtp defer (-44) H=127.0.0.1 [127.0.0.1]:2525: ${REASON}\n` +
  `${local(T0 + 3000)} frozen by root\n` +
  `${local(T0 + 4000)} unfrozen by root\n`;

function copyFixture(dir: string): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(FIXTURE, join(dir, 'spool.mdb'));
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('a spool written before the journal', () => {
  it('opens, and its history reads back as legacy entries, then new ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-legacy-'));
    dirs.push(dir);
    copyFixture(dir);
    const spool = LmdbSpool.open(dir);
    try {
      expect(spool.count()).toBe(2);
      expect(spool.load(A)).toMatchObject({ v: 1, sender: 'app@example.org', attempts: 1, lastError: REASON,
        recipients: [{ address: 'ok@example.org', state: 'delivered' }, { address: 'tmp@example.org', state: 'pending', lastError: REASON }] });
      const journal = spool.journal(A);
      expect(journal.map((e) => e.type)).toEqual(['legacy-log', 'legacy-attempt']);
      expect(journalText(journal)).toBe(OLD_TEXT);
      expect(journalJson(journal, 'app@example.org')).toEqual([{ type: 'attempt', at: new Date(T0 + 2000).toISOString(),
        host: '127.0.0.1 [127.0.0.1]:2525', results: [
          { rcpt: 'ok@example.org', kind: 'delivered', reason: '250 2.0.0 OK' },
          { rcpt: 'tmp@example.org', kind: 'deferred', reason: REASON, errno: -44 },
        ] }]);
      expect(spool.journal(B)).toEqual([]);

      // A new entry goes after the old text.
      expect(await freeze(spool, A, 'ops', T0 + 5000)).toBe('changed');
      expect(journalText(spool.journal(A))).toBe(`${OLD_TEXT}${local(T0 + 5000)} frozen by ops\n`);

      // Completing the message removes the old history with it.
      const done = await settle(spool, A, { recipients: [{ address: 'tmp@example.org', state: 'delivered', tries: 2 }], nextAttempt: null, journal: [] });
      expect(done.kind).toBe('completed');
      expect(spool.journal(A)).toEqual([]);
    } finally {
      await spool.close();
    }
  });

  it('the record decoder takes v1 records and names a newer version', () => {
    expect(decodeRecord({ v: 1, id: 'x', recipients: [] })).toMatchObject({ v: 1, warningsSent: 0, attempts: 0, frozen: false });
    expect(() => decodeRecord({ v: 2, id: '1xVaAA-000001-AA' })).toThrow(RecordVersionError);
    expect(() => decodeRecord({ v: 2, id: '1xVaAA-000001-AA' })).toThrow('message 1xVaAA-000001-AA has record version 2, which this postern cannot read');
  });
});

describe('the CLI and the daemon on a spool written before the journal', () => {
  let sink: Sink;
  let p: Instance;
  afterEach(() => closeBoth(sink, p));

  it('-Mvl shows the old text, -bp --json its history, and delivery goes on from it', async () => {
    [sink, p] = await sinkAndInstance();
    copyFixture(join(p.dir, 'spool'));
    const mvl = await p.run('postern', ['-Mvl', A]);
    expect(mvl.code).toBe(0);
    expect(mvl.stdout).toBe(OLD_TEXT);
    const json = (await p.run('postern', ['-bp', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(json.map((m) => m.id)).toEqual([A, B]);
    expect(json[0].history[0].results[1]).toEqual({ rcpt: 'tmp@example.org', kind: 'deferred', reason: REASON, errno: -44 });
    expect(json[1].history).toEqual([]);
    // The hub defers tmp@ again: the new attempt follows the old text, as data in --json.
    sink.behaviour.rcpt = (a) => (a.startsWith('tmp') ? 451 : undefined);
    expect((await p.run('postern', ['-qf'])).code).toBe(0);
    const after = (await p.run('postern', ['-Mvl', A])).stdout;
    expect(after.startsWith(OLD_TEXT)).toBe(true);
    expect(after.slice(OLD_TEXT.length)).toMatch(/^\S+ \S+ == tmp@example\.org R=smarthost T=remote_smtp defer \(-44\) H=127\.0\.0\.1 \[127\.0\.0\.1\]:\d+: SMTP error from remote mail server after RCPT TO:<tmp@example\.org>: 451 /);
    const again = JSON.parse((await p.run('postern', ['-bp', '--json', A])).stdout);
    expect(again.history).toHaveLength(2);
    expect(again.history[1]).toMatchObject({ type: 'attempt', results: [{ rcpt: 'tmp@example.org', kind: 'deferred', cause: 'reply', phase: 'rcpt',
      reply: { code: 451 }, errno: -44 }] });
  });
});
