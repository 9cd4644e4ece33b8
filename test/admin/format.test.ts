// Unit tests for src/admin/format.ts: Exim's -bp age and size columns, one queue entry,
// and the --json object.
import { describe, expect, it } from 'vitest';
import { formatAge, formatEntry, formatSize, jsonEntry } from '../../src/admin/format.js';
import type { MessageRecord } from '../../src/core/types.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('formatAge', () => {
  it.each([
    [0, ' 0m'],
    [59_999, ' 0m'],
    [MIN, ' 1m'],
    [25 * MIN, '25m'],
    [90 * MIN, '90m'],
    [90 * MIN + 59_999, '90m'],
    [91 * MIN, ' 2h'],
    [149 * MIN, ' 2h'],
    [150 * MIN, ' 3h'], // (m+30)/60 rounds
    [4 * HOUR, ' 4h'],
    [72 * HOUR, '72h'],
    [72 * HOUR + 29 * MIN, '72h'],
    [73 * HOUR, ' 3d'],
    [83 * HOUR, ' 3d'],
    [84 * HOUR, ' 4d'], // (h+12)/24 rounds
    [48 * 24 * HOUR, '48d'],
    [-5 * MIN, ' 0m'], // clock skew: never negative
  ])('formatAge(%i) = %j', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });
});

describe('formatSize (Exim string_format_size)', () => {
  it.each([
    [0, '     '],
    [1, '    1'],
    [313, '  313'],
    [512, '  512'],
    [1023, ' 1023'],
    [1024, ' 1.0K'],
    [2970, ' 2.9K'],
    [4403, ' 4.3K'],
    [10188, ' 9.9K'],
    [10239, '10.0K'],
    [10240, '  10K'],
    [10751, '  10K'],
    [10752, '  11K'], // (size+512)/1024
    [524288, ' 512K'],
    [1048575, '1024K'],
    [1048576, ' 1.0M'],
    [1258291, ' 1.2M'],
    [10485759, '10.0M'],
    [10485760, '  10M'],
    [11010048, '  11M'], // 10.5M rounds up
    [52428800, '  50M'],
  ])('formatSize(%i) = %j', (n, text) => {
    expect(formatSize(n)).toBe(text);
    expect(formatSize(n)).toHaveLength(5);
  });

  // C's printf("%4.1f") rounds exact binary ties to even (glibc): 1280/1024 = 1.25 prints
  // "1.2", 2304/1024 = 2.25 prints "2.2". JavaScript's toFixed rounds ties away from zero.
  it.each([
    [1280, ' 1.2K'],
    [2304, ' 2.2K'],
    [3840, ' 3.8K'],
    [1310720, ' 1.2M'],
  ])('formatSize(%i) = %j, rounding a tie as printf does', (n, text) => {
    expect(formatSize(n)).toBe(text);
  });
});

function record(over: Partial<MessageRecord> = {}): MessageRecord {
  return {
    v: 1,
    id: '1xVME4-0001HS-0Y',
    sender: 'www-data@web1.example.org',
    arrival: Date.UTC(2026, 10, 23, 5, 4, 24),
    size: 2970,
    protocol: 'local',
    frozen: false,
    recipients: [
      { address: 'ops@example.org', state: 'pending', tries: 0 },
      { address: 'dev@example.org', state: 'delivered', tries: 1 },
    ],
    nextAttempt: Date.UTC(2026, 10, 23, 5, 19, 24),
    attempts: 1,
    warningsSent: 0,
    bodySize: 2500,
    chunks: 1,
    ...over,
  };
}

describe('formatEntry', () => {
  const arrival = Date.UTC(2026, 10, 23, 5, 4, 24);

  it('matches the SPEC.md -bp example, first message', () => {
    expect(formatEntry(record(), arrival + 25 * MIN)).toBe(
      '25m  2.9K 1xVME4-0001HS-0Y <www-data@web1.example.org>\n' +
      '          ops@example.org\n' +
      '        D dev@example.org\n' +
      '\n',
    );
  });

  it('matches the SPEC.md -bp example, frozen bounce', () => {
    const r = record({
      id: '1xVKdX-0001Ab-0d', sender: '', size: 512, frozen: true, nextAttempt: null,
      recipients: [{ address: 'cron@web1.example.org', state: 'pending', tries: 3 }],
    });
    expect(formatEntry(r, arrival + 4 * HOUR)).toBe(
      ' 4h   512 1xVKdX-0001Ab-0d <> *** frozen ***\n' +
      '          cron@web1.example.org\n' +
      '\n',
    );
  });

  it('marks failed recipients D too, as Exim does', () => {
    const r = record({
      recipients: [
        { address: 'bad@example.org', state: 'failed', tries: 1, lastError: '550 5.1.1 unknown user' },
        { address: 'ops@example.org', state: 'pending', tries: 1 },
      ],
    });
    const lines = formatEntry(r, arrival).split('\n');
    expect(lines[1]).toBe('        D bad@example.org');
    expect(lines[1]!.indexOf('D')).toBe(8); // column 9
    expect(lines[2]).toBe('          ops@example.org');
    expect(lines[2]!.indexOf('o')).toBe(10); // addresses start in column 11
  });

  it('-bpu: undelivered recipients only', () => {
    expect(formatEntry(record(), arrival + 25 * MIN, true)).toBe(
      '25m  2.9K 1xVME4-0001HS-0Y <www-data@web1.example.org>\n' +
      '          ops@example.org\n' +
      '\n',
    );
  });

  it('an empty size column and a 23-character ID', () => {
    const r = record({ id: '16VDhn-000000001bo-D342', size: 0, recipients: [{ address: 'a@b.example', state: 'pending', tries: 0 }] });
    expect(formatEntry(r, arrival + 3 * 24 * HOUR + 12 * HOUR)).toBe(
      ' 4d       16VDhn-000000001bo-D342 <www-data@web1.example.org>\n' +
      '          a@b.example\n' +
      '\n',
    );
  });
});

describe('jsonEntry', () => {
  it('has one line with the documented fields', () => {
    const text = jsonEntry(record({
      lastError: 'Connection refused',
      recipients: [
        { address: 'ops@example.org', state: 'pending', tries: 1, lastError: 'Connection refused' },
        { address: 'dev@example.org', state: 'delivered', tries: 1 },
        { address: 'bad@example.org', state: 'failed', tries: 1, lastError: '550 5.1.1 unknown user' },
      ],
    }));
    expect(text.endsWith('\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    expect(JSON.parse(text)).toEqual({
      id: '1xVME4-0001HS-0Y',
      arrival: '2026-11-23T05:04:24.000Z',
      size: 2970,
      sender: 'www-data@web1.example.org',
      recipients: [
        { address: 'ops@example.org', state: 'pending', last_error: 'Connection refused' },
        { address: 'dev@example.org', state: 'delivered' },
        { address: 'bad@example.org', state: 'failed', last_error: '550 5.1.1 unknown user' },
      ],
      frozen: false,
      attempts: 1,
      last_error: 'Connection refused',
      next_attempt: '2026-11-23T05:19:24.000Z',
    });
  });

  it('uses null for no error and no next attempt, "" for the null sender', () => {
    const o = JSON.parse(jsonEntry(record({ sender: '', frozen: true, nextAttempt: null })));
    expect(o.sender).toBe('');
    expect(o.frozen).toBe(true);
    expect(o.last_error).toBeNull();
    expect(o.next_attempt).toBeNull();
  });
});
