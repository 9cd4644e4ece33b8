// Power loss, not just SIGKILL: rounds of a mixed load on a LazyFS mount, cut at random
// moments and at each durability step, then checked after the restart (harness.ts).
// Not in the default run (vitest.config.ts leaves test/powerloss/ out): `npm run
// test:powerloss` with LAZYFS set to a LazyFS binary; without it the file says why it skips.
// Knobs: POWERLOSS_RANDOM (random rounds, 50), POWERLOSS_TARGETED=0 (none), POWERLOSS_SEED,
// POWERLOSS_ONLY (a substring of the targeted rounds' names to run), POWERLOSS_REPEAT (each targeted round N times), POWERLOSS_TORN=1 (the torn
// writes of the spool file too: see targets.ts), POWERLOSS_KEEP=1 (keep each round's folder).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeGroup, makeUser, removeUsersAndGroups, type TestUser } from '../helpers/postdrop.js';
import { lazyfsUnavailable } from './lazyfs.js';
import { runRound, type RoundResult, type Target } from './harness.js';
import { TARGETS, TORN_TARGETS } from './targets.js';

const why = lazyfsUnavailable();
if (why) console.log(`power-loss harness skipped: ${why}`);

const RANDOM = Number(process.env.POWERLOSS_RANDOM ?? 50);
const SEED = Number(process.env.POWERLOSS_SEED ?? Date.now() % 1_000_000);
const only = process.env.POWERLOSS_ONLY;
/** Each targeted round this many times (a fault that needs a rare interleaving). */
const REPEAT = Math.max(1, Number(process.env.POWERLOSS_REPEAT ?? 1));
const targets: Target[] = (process.env.POWERLOSS_TARGETED === '0' ? [] : [...TARGETS, ...(process.env.POWERLOSS_TORN === '1' ? TORN_TARGETS : [])])
  .filter((t) => !only || t.name.includes(only));

describe.skipIf(why !== undefined)('power loss on LazyFS', () => {
  let user: TestUser | undefined;
  let dropGroup = 0;
  const results: RoundResult[] = [];
  // An ordinary user (not in the drop group: its sendmail goes through the setgid helper).
  beforeAll(() => { dropGroup = makeGroup().gid; user = makeUser(); });
  afterAll(() => {
    removeUsersAndGroups();
    const sum = (f: (r: RoundResult) => number) => results.reduce((n, r) => n + f(r), 0);
    // The closing note quotes these lines.
    console.log(`power-loss rounds: ${results.length} (${results.filter((r) => !r.name.startsWith('targeted')).length} random, ${results.filter((r) => r.name.startsWith('targeted')).length} targeted; ${results.filter((r) => r.cutBy === 'fault').length} cut by a LazyFS fault), seed ${SEED}`);
    console.log(`power-loss totals: offered ${sum((r) => r.offered)}, acknowledged ${sum((r) => r.acknowledged)} (SMTP ${sum((r) => r.ackBySmtp)}, sendmail root ${sum((r) => r.ackBySendmailRoot)}, sendmail user ${sum((r) => r.ackBySendmailUser)}, big ${sum((r) => r.big)}), operator actions ${sum((r) => r.operatorActions)}, removed ${sum((r) => r.removedAcked)}, expected ${sum((r) => r.expected)}, delivered ${sum((r) => r.delivered)}, lost ${sum((r) => r.lost.length)}, duplicated ${sum((r) => r.duplicated)}, resurrected ${sum((r) => r.resurrected.length)}, torn ${sum((r) => r.torn.length)}, faults ${sum((r) => r.faults.length)}`);
  });

  const check = (r: RoundResult) => {
    results.push(r);
    console.log(`round ${r.round} ${r.name}: cut by ${r.cutBy}, acked ${r.acknowledged} (smtp ${r.ackBySmtp}, sm-root ${r.ackBySendmailRoot}, sm-user ${r.ackBySendmailUser}, big ${r.big}), ops ${r.operatorActions}, expected ${r.expected}, delivered ${r.delivered}, lost ${r.lost.length}, dup ${r.duplicated}, ${r.ms} ms${r.note ? `\n  lazyfs: ${r.note}` : ''}${r.faults.length ? `\n  faults: ${r.faults.join('\n  faults: ')}` : ''}${r.lost.length ? `\n  lost: ${r.lost.join('\n  lost: ')}` : ''}${r.uncertain.length ? `\n  -Mrm killed by the cut (not counted): ${r.uncertain.join(' ')}` : ''}${r.vanished.length ? `\n  vanished (pre-cut <= line, nowhere now): ${r.vanished.join('\n  vanished: ')}` : ''}${r.torn.length ? `\n  torn: ${r.torn.join(' ')}` : ''}`);
    expect(r.lost).toEqual([]);
    expect(r.vanished).toEqual([]);
    expect(r.resurrected).toEqual([]);
    expect(r.torn).toEqual([]);
    expect(r.faults).toEqual([]);
  };

  for (const [n, t] of targets.entries()) {
    for (let k = 0; k < REPEAT; k++) {
      const round = 1000 + n + 100 * k;
      it(`targeted: ${t.name}${REPEAT > 1 ? ` (${k + 1}/${REPEAT})` : ''}`, async () => {
        check(await runRound({ round, seed: SEED + round, cutAfterMs: 8_000, target: t, user: user!, dropGroup }));
      }, 240_000);
    }
  }

  for (let n = 0; n < RANDOM; n++) {
    it(`random cut ${n + 1}/${RANDOM}`, async () => {
      // The cut anywhere in the first 4 s of load; a writeback (the kernel's flusher) before it in a third of the rounds.
      const seed = SEED + n;
      const cutAfterMs = 300 + ((seed * 7919) % 3700);
      const writebackAtMs = n % 3 === 2 ? Math.floor(cutAfterMs * 0.6) : undefined;
      check(await runRound({ round: n, seed, cutAfterMs, ...(writebackAtMs !== undefined ? { writebackAtMs } : {}), user: user!, dropGroup }));
    }, 240_000);
  }
});
