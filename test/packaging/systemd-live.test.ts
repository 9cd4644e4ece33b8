// test/packaging/systemd-live.test.ts: packaging/test-systemd.sh, postern under a live
// systemd: the .deb installed with apt on a debootstrapped Debian 13, booted with
// systemd-nspawn; the units (postern.service, postern.socket) through systemctl, the
// sandbox from inside the service's mount namespace, the journal, SIGUSR1 and logrotate;
// then a continuous SMTP load through restart, reload and kill -9, without and with the
// socket unit (with it: 0 refused, 0 lost). Needs root, debootstrap and systemd-nspawn
// (skipped with the reason otherwise); skipped when the Debian archive cannot be reached
// (exit 75). The script's "measure:" lines are printed.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootScriptsUnavailable, runRootScript } from '../helpers/droot.js';
import { ROOT } from '../helpers/postern.js';

const SCRIPT = join(ROOT, 'packaging/test-systemd.sh');
const TIMEOUT = 15 * 60_000;

const why = rootScriptsUnavailable();

describe('postern under a live systemd (packaging/test-systemd.sh)', () => {
  it.skipIf(why !== undefined)(`units, sandbox, journal and restarts under load that refuse no one${why ? ` (skipped: ${why})` : ''}`, async (ctx) => {
    const { status, out } = await runRootScript(SCRIPT, /^test-systemd: SKIP: /m, 'test/packaging/systemd-live.test.ts', TIMEOUT, ctx);
    const measures = [...new Set(out.split('\n').filter((l) => l.startsWith('measure: ')))];
    if (measures.length) console.log(measures.join('\n'));
    const failed = out.split(/\n(?=ok |not ok |test-systemd: |measure: )/).filter((b) => b.startsWith('not ok '));
    expect(failed, 'the failed checks of packaging/test-systemd.sh').toEqual([]);
    expect(status, out.split('\n').slice(-40).join('\n')).toBe(0);
    expect(out).toMatch(/^ok \d+ - postern\.socket enabled by the package$/m);
    expect(measures.filter((l) => l.startsWith('measure: after '))).toHaveLength(4);
    expect(out).toMatch(/done: \d+ checks, 0 failed/);
  }, TIMEOUT);
});
