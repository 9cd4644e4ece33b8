// test/packaging/debian13.test.ts: packaging/test-debian.sh, the package installed with
// apt on a debootstrapped Debian 13 with Debian's own nodejs, the smoke list run as root,
// www-data and postern, chrooted and then booted with systemd-nspawn (the daemon started
// by its unit). Needs root, debootstrap and systemd-nspawn (skipped with the reason
// otherwise); a cold cache takes a few minutes, a warm one well under one. When the
// Debian archive cannot be reached the script says so (exit 75) and the test is skipped
// with that reason: the network is no failure of the package. Any failed smoke check
// fails the test, with the script's lines for it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootScriptsUnavailable, runRootScript } from '../helpers/droot.js';
import { ROOT } from '../helpers/postern.js';

const SCRIPT = join(ROOT, 'packaging/test-debian.sh');
const TIMEOUT = 12 * 60_000;

const why = rootScriptsUnavailable();

describe('the package on Debian 13 (packaging/test-debian.sh)', () => {
  it.skipIf(why !== undefined)(`installs with apt and passes the smoke list as root, www-data and postern, chrooted and under systemd${why ? ` (skipped: ${why})` : ''}`, async (ctx) => {
    const { status, out } = await runRootScript(SCRIPT, /^test-debian: SKIP: /m, 'test/packaging/debian13.test.ts', TIMEOUT, ctx);
    // Each failed check with the lines the script printed for it.
    const failed = out.split(/\n(?=ok |not ok |test-debian: )/).filter((b) => b.startsWith('not ok '));
    expect(failed, 'the failed checks of packaging/test-debian.sh').toEqual([]);
    expect(status, out.split('\n').slice(-40).join('\n')).toBe(0);
    expect(out).toMatch(/^ok \d+ - postern\.service enabled by the package$/m);
    expect(out).toMatch(/done: \d+ checks, 0 failed/);
  }, TIMEOUT);
});
