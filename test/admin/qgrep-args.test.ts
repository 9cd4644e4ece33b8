// postern-qgrep's command line (src/admin/qgrep.ts, parseQgrepArgs, by node:util's
// parseArgs): exiqgrep's options, values attached or apart, flags grouped, and a usage
// error (exit 64) in one sentence for anything else.
import { describe, expect, it } from 'vitest';
import { parseQgrepArgs } from '../../src/admin/qgrep.js';

const refused = (argv: string[]) => {
  try {
    parseQgrepArgs(argv);
  } catch (e) {
    return { message: (e as Error).message, code: (e as { exitCode?: number }).exitCode };
  }
  return undefined;
};

describe('postern-qgrep arguments', () => {
  it('takes values attached or apart, grouped flags, numbers of seconds and the long options', () => {
    expect(parseQgrepArgs(['-fspam', '-r', '@d7\\.example$', '-ic'])).toMatchObject({ f: 'spam', r: '@d7\\.example$', i: true, c: true });
    expect(parseQgrepArgs(['-y', '86400', '-o0'])).toMatchObject({ y: 86400, o: 0 });
    expect(parseQgrepArgs(['--remove', '--dry-run', '--json'])).toMatchObject({ remove: true, 'dry-run': true, json: true });
    expect(parseQgrepArgs([])).toEqual({});
  });

  it('refuses the rest with a usage error', () => {
    expect(refused(['-q'])).toEqual({ message: 'unknown option -q', code: 64 });
    expect(refused(['--bogus'])).toEqual({ message: 'unknown option --bogus', code: 64 });
    expect(refused(['-f'])).toEqual({ message: 'option -f needs a value', code: 64 });
    expect(refused(['-y', 'abc'])).toEqual({ message: '-y needs a number of seconds', code: 64 });
    expect(refused(['-y', ''])).toEqual({ message: '-y needs a number of seconds', code: 64 });
    expect(refused(['stray'])).toEqual({ message: 'unexpected argument stray', code: 64 });
    expect(refused(['--summary', '--shape'])).toEqual({ message: '--summary and --shape cannot be given together', code: 64 });
  });
});
