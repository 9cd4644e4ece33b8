// Unit tests for src/spool/message-id.ts: base 62, the Exim 4.96 ID layout, ordering,
// uniqueness under bursts, ID recognition and the time decoded from an ID.
import { describe, expect, it } from 'vitest';
import {
  base62, decodeBase62, idTime, isMessageId, MessageIdGenerator,
} from '../../src/spool/message-id.js';

describe('base62', () => {
  it.each([
    [0, 1, '0'],
    [9, 1, '9'],
    [10, 1, 'A'],
    [35, 1, 'Z'],
    [36, 1, 'a'],
    [61, 1, 'z'],
    [62, 2, '10'],
    // The reference note says "pid 4501 (0001HS)"; 0001HS is really 4926 and 4501 is 0001Ab.
    [4926, 6, '0001HS'],
    [4501, 6, '0001Ab'],
    [1795410264, 6, '1xVME4'],
    [34, 2, '0Y'],
    [1999, 2, 'WF'],
    [62 ** 6 - 1, 6, 'zzzzzz'],
  ])('base62(%i, %i) = %s', (n, width, text) => {
    expect(base62(n, width)).toBe(text);
    expect(decodeBase62(text)).toBe(n);
  });

  it.each([0, 1, 61, 62, 3843, 3844, 4501, 123456789, 1795410264, 62 ** 6 - 1])('round trips %i at width 6', (n) => {
    const s = base62(n, 6);
    expect(s).toHaveLength(6);
    expect(decodeBase62(s)).toBe(n);
  });

  it('sorts as plain strings in numeric order (alphabet in ASCII order)', () => {
    const nums = [0, 9, 10, 35, 36, 61, 62, 100, 3843, 3844, 1795410264, 1795410265];
    const strs = nums.map((n) => base62(n, 6));
    expect([...strs].sort()).toEqual(strs);
  });
});

describe('MessageIdGenerator', () => {
  it('makes the Exim reference ID shape: 1795410264 s, pid in the middle, fraction in 1/2000 s', () => {
    // exim-reference.md section 2 calls 0001HS "pid 4501", but base 62 0001HS is 4926
    // (1*3844 + 17*62 + 28); pid 4501 encodes as 0001Ab (the SPEC's other example ID).
    const id = new MessageIdGenerator(4926).next(1795410264170);
    expect(id.startsWith('1xVME4-0001HS-')).toBe(true);
    // 170 ms = 340 units of 1/2000 s = "5U" in base 62.
    expect(id).toBe('1xVME4-0001HS-5U');
    expect(id).toHaveLength(16);
    expect(new MessageIdGenerator(4501).next(1795410264170)).toBe('1xVME4-0001Ab-5U');
  });

  it.each([
    [1795410264000, '1xVME4-0001HS-00'],
    [1795410264017, '1xVME4-0001HS-0Y'], // the reference document's example, 17 ms = 34 units
    [1795410264999, '1xVME4-0001HS-WE'], // 1998 units
  ])('next(%i) = %s', (ms, expected) => {
    expect(new MessageIdGenerator(4926).next(ms)).toBe(expected);
  });

  it('IDs from one generator strictly increase and never repeat within one millisecond', () => {
    const gen = new MessageIdGenerator(4926);
    const ms = 1795410264170;
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push(gen.next(ms));
    expect(new Set(ids).size).toBe(5000);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    for (const id of ids) expect(isMessageId(id)).toBe(true);
    // 5000 slots of 1/2000 s from 340 spill into the next two seconds.
    expect(idTime(ids[0]!)).toBe(1795410264);
    expect(idTime(ids[4999]!)).toBe(1795410266);
    // Every fraction stays below 2000 (first digit never past "W").
    for (const id of ids) expect(decodeBase62(id.slice(14))).toBeLessThan(2000);
  });

  it('stays increasing when the clock steps backwards', () => {
    const gen = new MessageIdGenerator(7);
    const a = gen.next(1795410264500);
    const b = gen.next(1795410200000);
    const c = gen.next(1795410264500);
    expect(b > a).toBe(true);
    expect(c > b).toBe(true);
  });

  it('follows the clock once it moves past the last slot', () => {
    const gen = new MessageIdGenerator(7);
    gen.next(1795410264000);
    expect(gen.next(1795410265000)).toBe(`${base62(1795410265, 6)}-000007-00`);
  });

  it('uses process.pid by default', () => {
    const id = new MessageIdGenerator().next(1795410264000);
    expect(id.slice(7, 13)).toBe(base62(process.pid, 6));
  });
});

describe('isMessageId', () => {
  it.each([
    ['1xVME4-0001HS-0Y', true],
    ['1xVKdX-0001Ab-0d', true],
    ['16VDhn-000000001bo-D342', true], // 4.97 long shape
    ['1xVME4-0001HS-0', false],
    ['1xVME4-0001HS-0YY', false],
    ['1xVME4_0001HS_0Y', false],
    ['1xVME4-0001H$-0Y', false],
    [' 1xVME4-0001HS-0Y', false],
    ['1xVME4-0001HS-0Y\n', false],
    ['16VDhn-00000001bo-D342', false],
    ['16VDhn-000000001bo-D34', false],
    ['', false],
    ['bogus', false],
  ])('isMessageId(%j) = %s', (s, ok) => {
    expect(isMessageId(s)).toBe(ok);
  });
});

describe('idTime', () => {
  it.each([
    ['1xVME4-0001HS-0Y', 1795410264],
    ['1xVKdX-0001Ab-0d', decodeBase62('1xVKdX')],
    ['16VDhn-000000001bo-D342', decodeBase62('16VDhn')],
    ['1hXYZa-000000-00', 1559513006], // 2019-06-02 22:03:26 UTC
  ])('idTime(%s) = %i', (id, seconds) => {
    expect(idTime(id)).toBe(seconds);
  });

  it('decodes 1xVME4 to 2026-11-23 05:04:24 UTC', () => {
    expect(new Date(idTime('1xVME4-0001HS-0Y') * 1000).toISOString()).toBe('2026-11-23T05:04:24.000Z');
  });
});
