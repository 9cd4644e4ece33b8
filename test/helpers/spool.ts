// test/helpers/spool.ts: the spool's door for changes (apply) spelled short for tests:
// one Change at a time, its result. The spool itself has no such shortcuts: callers
// build Change values (core/change.ts).
import type { Change, ChangeResult, Settlement } from '../../src/core/change.js';
import type { Spool } from '../../src/spool/spool.js';

/** One change through spool.apply(); its result. */
async function change(spool: Spool, c: Change): Promise<ChangeResult> {
  const [r] = await spool.apply([c]);
  if (!r) throw new Error('apply() gave no result');
  return r;
}

/** An attempt's settlement. */
export const settle = (spool: Spool, id: string, settlement: Settlement): Promise<ChangeResult> => change(spool, { kind: 'settle', id, settlement });

/** -Mf by `user` at `at`: the result's kind. */
export const freeze = async (spool: Spool, id: string, user: string, at: number): Promise<ChangeResult['kind']> =>
  (await change(spool, { kind: 'freeze', id, by: { at, user } })).kind;

/** -Mt by `user`, due again at `at`: the result's kind. */
export const thaw = async (spool: Spool, id: string, user: string, at: number): Promise<ChangeResult['kind']> =>
  (await change(spool, { kind: 'thaw', id, by: { at, user } })).kind;

/** -Mrm: the result's kind ('completed': removed; 'gone': not there). */
export const remove = async (spool: Spool, id: string, at = Date.now()): Promise<ChangeResult['kind']> =>
  (await change(spool, { kind: 'remove', id, by: { at, user: 'root' } })).kind;

/** -M, -q: each of `ids` due at `at`; a frozen one only with `thaw`. */
export async function makeDue(spool: Spool, ids: string[], at: number, thaw: boolean): Promise<void> {
  await spool.apply(ids.map((id) => ({ kind: 'make-due', id, at, thaw })));
}
