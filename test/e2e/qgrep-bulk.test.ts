// postern-qgrep's bulk actions (--remove, --freeze, --thaw, --deliver, --giveup, --dry-run),
// --summary and --shape, each against the xargs pipeline that does the same, with the
// real commands on a real spool; and a bulk action on a message being delivered.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbSpool } from '../../src/spool/lmdb-spool.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import { BIN, closeBoth, Instance, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

const DAY = 86_400_000;

/** A shell pipeline with the real commands (`qgrep` and `postern` name them with -C). */
function pipeline(p: Instance, script: string): Promise<{ code: number; stdout: string }> {
  const qgrep = `${process.execPath} ${BIN('postern-qgrep')} -C ${p.config}`;
  const postern = `${process.execPath} ${BIN('postern')} -C ${p.config}`;
  return new Promise((resolve) => {
    execFile('sh', ['-c', script.replaceAll('QGREP', qgrep).replaceAll('POSTERN', postern)], { timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout });
    });
  });
}

/** Messages written through the spool API with chosen arrival times (IDs carry them). */
async function fill(p: Instance, list: { sender: string; to: string[]; ageMs: number }[]): Promise<string[]> {
  const spool = LmdbSpool.open(join(p.dir, 'spool'));
  const gen = new MessageIdGenerator(4242);
  const ids: string[] = [];
  try {
    for (const m of [...list].sort((a, b) => b.ageMs - a.ageMs)) {
      const arrival = Date.now() - m.ageMs;
      const id = gen.next(arrival);
      await spool.admit({ id, sender: m.sender, recipients: m.to, arrival, protocol: 'local', headers: 'Subject: t\n', body: [Buffer.from('body\n')], queueOnly: true });
      ids.push(id);
    }
  } finally {
    await spool.close();
  }
  return ids;
}

const lines = (s: string) => s.split('\n').filter(Boolean);

describe('postern-qgrep bulk actions', () => {
  let p: Instance;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    sink = undefined;
  });

  it('purges by sender: --dry-run changes nothing, --remove in one go, the xargs pipeline the same', async () => {
    p = new Instance([2599]);
    const ids = await fill(p, [
      { sender: 'spam@bad.example', to: ['a@example.org'], ageMs: 3000 },
      { sender: 'spam@bad.example', to: ['b@example.org'], ageMs: 2000 },
      { sender: 'www-data@web1.example.org', to: ['ops@example.org'], ageMs: 1000 },
      { sender: 'spam@other.example', to: ['c@example.org'], ageMs: 500 },
    ]);
    const [s1, s2, keep, s3] = ids as [string, string, string, string];
    const dry = await p.run('postern-qgrep', ['-f', '<spam@bad', '--remove', '--dry-run']);
    expect(dry.stdout).toBe(`Message ${s1} would be removed\nMessage ${s2} would be removed\n`);
    expect(dry.code).toBe(0);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('4\n');
    const rm = await p.run('postern-qgrep', ['-f', '<spam@bad', '--remove']);
    expect(rm.stdout).toBe(`Message ${s1} has been removed\nMessage ${s2} has been removed\n`);
    expect(rm.code).toBe(0);
    const log = p.log();
    for (const id of [s1, s2]) expect(log).toMatch(new RegExp(`${id} removed by \\S+\\n.* ${id} Completed`));
    const piped = await pipeline(p, "QGREP -i -f '<spam@other' | xargs POSTERN -Mrm");
    expect(piped.stdout).toBe(`Message ${s3} has been removed\n`);
    expect((await p.run('postern-qgrep', ['-i'])).stdout).toBe(`${keep}\n`);
    const json = await p.run('postern-qgrep', ['--remove', '--json', '-f', 'www-data']);
    expect(lines(json.stdout).map((l) => JSON.parse(l))).toEqual([{ id: keep, action: 'remove', result: 'done' }]);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('freezes everything older than a day, as one command and as a pipeline; -o and -y seek by the ID', async () => {
    p = new Instance([2599]);
    const [old1, old2, young, old3] = await fill(p, [
      { sender: 'a@example.org', to: ['x@example.org'], ageMs: 3 * DAY },
      { sender: 'a@example.org', to: ['x@example.org'], ageMs: 2 * DAY },
      { sender: 'a@example.org', to: ['x@example.org'], ageMs: 60_000 },
      { sender: 'b@example.org', to: ['y@example.org'], ageMs: 1.5 * DAY },
    ]).then((ids) => [ids[0], ids[1], ids[3], ids[2]] as string[]);
    expect((await p.run('postern-qgrep', ['-o', '86400', '-i'])).stdout).toBe(`${old1}\n${old2}\n${old3}\n`);
    expect((await p.run('postern-qgrep', ['-y', '86400', '-i'])).stdout).toBe(`${young}\n`);
    const bulk = await p.run('postern-qgrep', ['-o', '86400', '-f', '<a@', '--freeze']);
    expect(bulk.stdout).toBe(`Message ${old1} is now frozen\nMessage ${old2} is now frozen\n`);
    const piped = await pipeline(p, 'QGREP -o 86400 -i | xargs POSTERN -Mf');
    expect(piped.stdout).toBe(`Message ${old1} is already frozen\nMessage ${old2} is already frozen\nMessage ${old3} is now frozen\n`);
    expect((await p.run('postern-qgrep', ['-z', '-i'])).stdout).toBe(`${old1}\n${old2}\n${old3}\n`);
    const again = await p.run('postern-qgrep', ['-o', '86400', '--freeze']);
    expect(again.code).toBe(1);
    expect(lines(again.stdout)).toEqual([old1, old2, old3].map((id) => `Message ${id} is already frozen`));
    const log = p.log();
    for (const id of [old1, old2, old3]) expect(log).toMatch(new RegExp(`${id} frozen by \\S+`));
    expect((await p.run('postern-qgrep', ['-z', '--thaw', '--dry-run'])).stdout)
      .toBe([old1, old2, old3].map((id) => `Message ${id} would be thawed\n`).join(''));
    const thaw = await p.run('postern-qgrep', ['-z', '-r', '^y@', '--thaw']);
    expect(thaw.stdout).toBe(`Message ${old3} is no longer frozen\n`);
    expect(p.log()).toMatch(new RegExp(`${old3} unfrozen by \\S+`));
  });

  it('thaws and delivers all frozen mail, as one command and as a pipeline', async () => {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    const ids = await fill(p, [1, 2, 3, 4].map((n) => ({ sender: 'a@example.org', to: [`r${n}@example.org`], ageMs: 10_000 - n })));
    expect((await p.run('postern-qgrep', ['--freeze'])).code).toBe(0);
    await p.start(['-q1h']);
    const [a, b, c, d] = ids as [string, string, string, string];
    // Two by the bulk command, two by the pipeline.
    const one = await p.run('postern-qgrep', ['-z', '-r', '^r[12]@', '--deliver']);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe('');
    await waitUntil('two delivered', () => sink!.messages.length >= 2 || undefined, 30_000);
    const piped = await pipeline(p, 'QGREP -z -i | xargs POSTERN -M');
    expect(piped.code).toBe(0);
    await waitUntil('all four delivered', () => sink!.messages.length >= 4 || undefined, 30_000);
    await waitUntil('queue empty', () => (p.log().match(/ Completed/g) ?? []).length >= 4 || undefined, 30_000);
    expect(sink.messages.map((m) => m.to[0]).sort()).toEqual(['r1@example.org', 'r2@example.org', 'r3@example.org', 'r4@example.org']);
    for (const id of [a, b, c, d]) expect(p.log()).toMatch(new RegExp(`${id} Completed`));
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('a message being delivered: --giveup, --remove, --freeze say it is locked; it is delivered once and leaves', async () => {
    sink = new Sink();
    await sink.listen();
    sink.behaviour.delayMs = 3000;
    p = new Instance([sink.port]);
    await p.start(['-q1h']);
    const r = await p.run('sendmail', ['-f', 'a@example.org', 'slow@example.org'], { input: 'Subject: s\n\nx\n' });
    expect(r.code).toBe(0);
    await waitUntil('the delivery has started', () => sink!.connections > 0 || undefined, 20_000);
    const id = (await p.run('postern-qgrep', ['-i'])).stdout.trim();
    const give = await p.run('postern-qgrep', ['--giveup', '-r', 'slow']);
    expect(give.stdout).toBe(`Message ${id} is locked\n`);
    expect(give.code).toBe(1);
    for (const action of ['--remove', '--freeze']) {
      const r2 = await p.run('postern-qgrep', [action, '-r', 'slow']);
      expect(r2.stdout).toBe(`Message ${id} is locked\n`);
      expect(r2.code).toBe(1);
    }
    await waitUntil('delivered', () => sink!.messages.length === 1 || undefined, 30_000);
    await p.waitForLog(new RegExp(`${id} Completed`));
    await p.stop();
    expect(sink.messages).toHaveLength(1);
    expect((await p.run('postern', ['-bpc'])).stdout).toBe('0\n');
    expect(p.log()).not.toMatch(/cancelled by|removed by|frozen by/);
  });

  it('with a daemon: --freeze and --remove through it, --giveup bounces each message as -Mg', async () => {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    const [first, second, extra] = await fill(p, [
      { sender: 'a@example.org', to: ['x@example.org'], ageMs: 3000 },
      { sender: '', to: ['y@example.org'], ageMs: 2000 },
      { sender: 'c@example.org', to: ['z@example.org'], ageMs: 1000 },
    ]) as [string, string, string];
    const ids = [first, second];
    expect((await p.run('postern-qgrep', ['--freeze'])).code).toBe(0);
    await p.start(['-q1h']);
    // --freeze and --remove go through the daemon now, with the same lines and log lines.
    const again = await p.run('postern-qgrep', ['--freeze', '-r', '^z@']);
    expect(again.stdout).toBe(`Message ${extra} is already frozen\n`);
    expect(again.code).toBe(1);
    expect((await p.run('postern-qgrep', ['--remove', '-r', '^z@'])).stdout).toBe(`Message ${extra} has been removed\n`);
    await p.waitForLog(new RegExp(`${extra} removed by \\S+`));
    await p.waitForLog(new RegExp(`${extra} Completed`));
    const give = await p.run('postern-qgrep', ['--giveup', '--json']);
    expect(lines(give.stdout).map((l) => JSON.parse(l))).toEqual(ids.map((id) => ({ id, action: 'giveup', result: 'done' })));
    await p.waitForLog(new RegExp(`${ids[0]} cancelled by \\S+`));
    await p.waitForLog(new RegExp(`<= <> R=${ids[0]}`));
    // One bounce, for the message with a sender; it goes out.
    await waitUntil('the bounce is sent', () => sink!.messages.length === 1 || undefined, 30_000);
    expect(sink.messages[0]!.to).toEqual(['a@example.org']);
  });
});

describe('postern-qgrep --summary and --shape', () => {
  let p: Instance;
  afterEach(() => p.cleanup());

  it('prints exiqsumm\'s table and qshape\'s, and both as JSON', async () => {
    p = new Instance([2599]);
    await fill(p, [
      { sender: 'a@example.org', to: ['x@example.org', 'y@example.org'], ageMs: 30 * 60_000 },
      { sender: 'a@example.org', to: ['z@other.example'], ageMs: 2 * 60_000 },
      { sender: 'a@example.org', to: ['w@example.org'], ageMs: 4 * DAY },
    ]);
    const sum = await p.run('postern-qgrep', ['--summary']);
    const size = Number(JSON.parse(lines((await p.run('postern-qgrep', ['--json'])).stdout)[0]!).size);
    const v = (n: number) => String(n * size).padStart(6);
    expect(sum.stdout).toBe('\nCount  Volume  Oldest  Newest  Domain\n-----  ------  ------  ------  ------\n\n' +
      `    3  ${v(3)}      4d     30m  example.org\n` +
      `    1  ${v(1)}      2m      2m  other.example\n` +
      '---------------------------------------------------------------\n' +
      `    4  ${v(4)}      4d      2m  TOTAL\n\n`);
    const sj = lines((await p.run('postern-qgrep', ['--summary', '--json'])).stdout).map((l) => JSON.parse(l));
    expect(sj.map((o) => [o.domain, o.count, o.volume])).toEqual([['example.org', 3, 3 * size], ['other.example', 1, size], [null, 4, 4 * size]]);
    expect(Object.keys(sj[0])).toEqual(['domain', 'count', 'volume', 'oldest', 'newest']);
    expect(sj[2].total).toBe(true);
    const shape = await p.run('postern-qgrep', ['--shape']);
    expect(shape.stdout).toBe(
      '              T 5 10 20 40 80 160 320 640 1280 1280+\n' +
      '        TOTAL 4 1  0  0  2  0   0   0   0    0     1\n' +
      '  example.org 3 0  0  0  2  0   0   0   0    0     1\n' +
      'other.example 1 1  0  0  0  0   0   0   0    0     0\n');
    const hj = lines((await p.run('postern-qgrep', ['--shape', '--json', '-r', 'other'])).stdout).map((l) => JSON.parse(l));
    expect(hj[0]).toEqual({ domain: null, total: 1, buckets: { 5: 1, 10: 0, 20: 0, 40: 0, 80: 0, 160: 0, 320: 0, 640: 0, 1280: 0, '1280+': 0 } });
    expect(hj[1].domain).toBe('other.example');
    expect((await p.run('postern-qgrep', ['--summary', '--remove'])).code).toBe(64);
    // exiqsumm's table of an empty selection.
    expect((await p.run('postern-qgrep', ['--summary', '-f', 'nobody'])).stdout).toBe('\nCount  Volume  Oldest  Newest  Domain\n-----  ------  ------  ------  ------\n\n' +
      '---------------------------------------------------------------\n    0       0      0m   0000d  TOTAL\n\n');
  });
});
