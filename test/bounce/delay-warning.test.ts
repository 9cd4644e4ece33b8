// Delay-warning timing and conditions (Exim's delay_warning and delay_warning_condition).
import { describe, expect, it } from 'vitest';
import { delayText, wantsWarnings, warningAge, warningsPassed } from '../../src/bounce/delay-warning.js';

const H = 3_600_000;

describe('warningAge', () => {
  it.each([
    [[24 * H], 0, 24 * H],
    [[24 * H], 1, 48 * H],
    [[24 * H], 2, 72 * H],
    [[4 * H, 8 * H, 24 * H], 0, 4 * H],
    [[4 * H, 8 * H, 24 * H], 2, 24 * H],
    [[4 * H, 8 * H, 24 * H], 3, 40 * H], // then every 16 h, the last interval
    [[4 * H, 8 * H, 24 * H], 4, 56 * H],
  ])('%j, warning %i at %i ms', (list, k, age) => {
    expect(warningAge(list, k)).toBe(age);
  });
  it('is off for an empty list or zero', () => {
    expect(warningAge([], 0)).toBeUndefined();
    expect(warningAge([0], 0)).toBeUndefined();
  });
});

describe('warningsPassed', () => {
  it.each([
    [[24 * H], 23 * H, 0],
    [[24 * H], 24 * H, 1],
    [[24 * H], 73 * H, 3], // a message first tried at 73 h gets one warning, counted as three
    [[4 * H, 8 * H, 24 * H], 41 * H, 4],
    [[], 100 * H, 0],
  ])('%j at age %i: %i', (list, age, n) => {
    expect(warningsPassed(list, age)).toBe(n);
  });
});

describe('wantsWarnings', () => {
  it.each([
    ['Subject: x\n', true],
    ['Precedence: bulk\n', false],
    ['precedence: List\n', false],
    ['List-Id: <a.example.org>\n', false],
    ['Auto-Submitted: auto-replied\n', false],
    ['Auto-Submitted: no\n', true],
  ])('%j -> %s', (headers, want) => {
    expect(wantsWarnings(headers)).toBe(want);
  });
});

describe('delayText', () => {
  it.each([[60_000, '1 minutes'], [24 * H, '24 hours'], [90 * 60_000, '90 minutes'], [150 * 60_000, '2 hours'], [H, '60 minutes']])('%i -> %s', (ms, text) => {
    expect(delayText(ms)).toBe(text);
  });
});
