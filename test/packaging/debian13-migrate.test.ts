// test/packaging/debian13-migrate.test.ts: packaging/test-debian-migrate.sh, the switch
// from Debian's Exim to the package in a debootstrapped Debian 13: Exim installed and
// configured by debconf as a satellite, a queue of Exim messages (cron, mailx, PHP,
// local SMTP), what Exim sends of it against what postern sends after `apt-get install`
// (postinst takes Exim's configuration and queue over), exim/exim4/exiqgrep/exiqsumm on
// postern's queue, an upgrade to the next version with no prompt, a preseeded first
// install. Needs root, debootstrap and systemd-nspawn (skipped with the reason
// otherwise); skipped with the reason when the Debian archive cannot be reached (exit 75).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootScriptsUnavailable, runRootScript } from '../helpers/droot.js';
import { ROOT } from '../helpers/postern.js';

const SCRIPT = join(ROOT, 'packaging/test-debian-migrate.sh');
const TIMEOUT = 15 * 60_000;

const why = rootScriptsUnavailable();

describe('from Debian\'s Exim to the package on Debian 13 (packaging/test-debian-migrate.sh)', () => {
  it.skipIf(why !== undefined)(`takes Exim's configuration and queue over, sends what Exim would have sent, upgrades with no prompt${why ? ` (skipped: ${why})` : ''}`, async (ctx) => {
    const { status, out } = await runRootScript(SCRIPT, /^test-debian(-migrate)?: SKIP: /m, 'test/packaging/debian13-migrate.test.ts', TIMEOUT, ctx);
    const failed = out.split(/\n(?=ok |not ok |test-debian)/).filter((b) => b.startsWith('not ok '));
    expect(failed, 'the failed checks of packaging/test-debian-migrate.sh').toEqual([]);
    expect(status, out.split('\n').slice(-40).join('\n')).toBe(0);
    expect(out).toMatch(/^ok \d+ - the sink got from postern exactly what Exim sent it/m);
    expect(out).toMatch(/^ok \d+ - apt-get install \.\/postern_\S+: upgraded$/m);
    expect(out).toMatch(/done: \d+ checks, 0 failed/);
  }, TIMEOUT);
});
