// The spool's sweep of partial messages (src/spool/lmdb-spool.ts sweepIncoming, with
// src/spool/writer.ts): a writer is its pid and process start time, so the body file of
// a writer whose pid is alive but belongs to another process now, or of a killed
// writer that is still a zombie, is swept; live writers' files are kept, in this
// process and in another one.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Database } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIG, LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { procStat, thisWriter, writerAlive, type Writer } from '../../src/spool/writer.js';
import { waitUntil } from '../helpers/postern.js';

const T0 = Date.UTC(2026, 11, 7, 8, 0, 0);
const gen = new MessageIdGenerator(4711);
let dir: string;
let spool: LmdbSpool;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-body-sweep-'));
  spool = LmdbSpool.open(dir);
});

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
  }
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
});

const bodies = () => readdirSync(join(dir, 'bodies')).sort();

/** A process that lives until the test ends. */
function sleeper(): number {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(c);
  return c.pid!;
}

/** A zombie: sh starts a short child, then becomes `sleep`, which never reaps it. Resolves with the zombie's pid. */
async function zombie(): Promise<number> {
  const c = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(c);
  const [line] = await once(c.stdout!, 'data') as [Buffer];
  const pid = Number(line.toString().trim());
  await waitUntil('the short child to be a zombie', () => procStat(pid)?.state === 'Z', 30_000);
  return pid;
}

/** An entry and a body file as a writer leaves them (what a crash mid-DATA leaves). */
async function leftBy(writer: Writer): Promise<string> {
  const id = gen.next(T0);
  await (spool as unknown as { store: { incomingDb: Database<Writer, string> } }).store.incomingDb.put(id, writer);
  writeFileSync(join(dir, 'bodies', id), Buffer.alloc(BIG + 1, 97));
  return id;
}

describe('who writes a partial message (spool/writer.ts)', () => {
  it('tells a live writer from a reused pid, a zombie and a dead one', async () => {
    const startedAt = Date.now() - process.uptime() * 1000;
    const live = sleeper();
    const st = procStat(live)!;
    const z = await zombie();
    const gone = spawn('true');
    await once(gone, 'exit');
    const rows: [string, Writer, boolean][] = [
      ['this process', thisWriter(), true],
      ['this pid, another start time (a previous process with our pid)', { ...thisWriter(), pstart: thisWriter().pstart! - 1 }, false],
      ['a live process, its own start time', { pid: live, start: T0, pstart: st.pstart }, true],
      ['a live pid with another start time (reused)', { pid: live, start: T0, pstart: st.pstart + 1 }, false],
      ['a zombie, its own start time', { pid: z, start: T0, pstart: procStat(z)!.pstart }, false],
      ['a zombie, an older entry without the start time', { pid: z, start: T0 }, false],
      ['a process that exited', { pid: gone.pid!, start: T0, pstart: 1 }, false],
      ['a live process, an older entry without the start time', { pid: live, start: T0 }, true],
    ];
    for (const [what, w, alive] of rows) expect([what, writerAlive(w, startedAt)]).toEqual([what, alive]);
  });
});

describe('the sweep of partial messages', () => {
  it('sweeps the body file of a live pid with another start time and of a zombie; keeps live writers\' files', async () => {
    const live = sleeper();
    const reused = await leftBy({ pid: live, start: T0, pstart: procStat(live)!.pstart + 1 });
    const z = await zombie();
    const zombies = await leftBy({ pid: z, start: T0, pstart: procStat(z)!.pstart });
    const orphan = gen.next(T0);
    writeFileSync(join(dir, 'bodies', orphan), 'no entry, no message');

    // A live writer here, and one in another process that waits until it is killed.
    const mineId = gen.next(T0);
    const mine = spool.incoming(mineId);
    await mine.write(Buffer.alloc(BIG + 64 * 1024, 98));
    const otherId = gen.next(T0);
    const module = pathToFileURL(join(import.meta.dirname, '../../dist/spool/lmdb-spool.js')).href;
    const other = spawn(process.execPath, ['--input-type=module', '-e', `const { LmdbSpool } = await import(${JSON.stringify(module)});
      const s = LmdbSpool.open(${JSON.stringify(dir)});
      await s.incoming(${JSON.stringify(otherId)}).write(Buffer.alloc(${BIG + 64 * 1024}, 99));
      process.stdout.write('written\\n');
      setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(other);
    await once(other.stdout!, 'data');

    expect(bodies()).toEqual([reused, zombies, orphan, mineId, otherId].sort());
    expect(await spool.sweepIncoming()).toBe(2);
    expect(bodies()).toEqual([mineId, otherId].sort());
    expect(spool.incomingCount()).toBe(2);

    // The other writer killed mid-message: the next sweep takes its file.
    other.kill('SIGKILL');
    await once(other, 'exit');
    expect(await spool.sweepIncoming()).toBe(1);
    expect(bodies()).toEqual([mineId]);
    await mine.commit({ sender: 'a@example.org', recipients: ['b@example.org'], arrival: T0, protocol: 'local', headers: 'Subject: x\n' });
    expect(spool.incomingCount()).toBe(0);
    expect(bodies()).toEqual([mineId]);
  });
});
