// test/admin/result-line.test.ts: admin/actions.ts's one renderer of operator results,
// row by row: what -Mrm, -Mf, -Mt, -Mmad, -Mg and postern-qgrep's bulk actions print
// for each result (Exim's lines), and the words --json carries.
import { describe, expect, it } from 'vitest';
import { resultLine, resultWords, type Asked, type Shown } from '../../src/admin/actions.js';

const ID = '1abcde-000000-00';
const ROWS: [Asked, Shown, string][] = [
  ['remove', 'done', `Message ${ID} has been removed\n`],
  ['remove', 'gone', `Spool data file for ${ID} does not exist\n`],
  ['remove', 'locked', `Message ${ID} is locked\n`],
  ['freeze', 'done', `Message ${ID} is now frozen\n`],
  ['freeze', 'unchanged', `Message ${ID} is already frozen\n`],
  ['thaw', 'done', `Message ${ID} is no longer frozen\n`],
  ['thaw', 'unchanged', `Message ${ID} is not frozen\n`],
  ['deliver', 'done', ''],
  ['giveup', 'done', ''],
  ['giveup', 'locked', `Message ${ID} is locked\n`],
  ['giveup', 'gone', `Spool data file for ${ID} does not exist\n`],
  ['remove', 'dry-run', `Message ${ID} would be removed\n`],
  ['freeze', 'dry-run', `Message ${ID} would be frozen\n`],
  ['thaw', 'dry-run', `Message ${ID} would be thawed\n`],
  ['deliver', 'dry-run', `Message ${ID} would be delivered\n`],
  ['giveup', 'dry-run', `Message ${ID} would be given up\n`],
  [{ edit: { op: 'mark-all-delivered' } }, 'done', `Message ${ID} has been modified\n\n`],
  [{ edit: { op: 'mark-all-delivered' } }, 'locked', `Message ${ID} is locked\n`],
  [{ edit: { op: 'add-recipients', addresses: ['a@example.org'] } }, 'done', `Message ${ID} has been modified\n`],
  [{ edit: { op: 'mark-delivered', addresses: ['b@example.org'] } }, { notRecipient: 'b@example.org' },
    `Message ${ID} - error while marking as delivered:\n  b@example.org is not a recipient: message not updated\n`],
];

describe('resultLine: one line per action and result, as Exim prints it', () => {
  for (const [action, result, line] of ROWS) {
    it(`${JSON.stringify(action)} ${JSON.stringify(result)} -> ${JSON.stringify(line)}`, () => {
      expect(resultLine(action, ID, result)).toBe(line);
    });
  }

  it('--json carries the words of the line', () => {
    expect(resultWords('remove', 'done')).toBe('has been removed');
    expect(resultWords('giveup', 'done')).toBe('given up');
    expect(resultWords('freeze', 'locked')).toBe('is locked');
    expect(resultWords('remove', 'gone')).toBe('does not exist');
  });
});
