// test/helpers/droot.ts: runs one of the Debian 13 root scripts of packaging/ (test-debian.sh,
// test-debian-migrate.sh, test-systemd.sh) for a vitest file: why it cannot run here (not
// root, tools missing), and its output, with the test skipped with the script's reason when
// the Debian archive cannot be reached (exit 75 and a "NAME: SKIP:" line). The caller asserts.
import { spawn, spawnSync } from 'node:child_process';
import type { TestContext } from 'vitest';

/** Why the root scripts cannot run on this machine, or undefined when they can. */
export function rootScriptsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root';
  const missing = ['debootstrap', 'systemd-nspawn', 'nsenter', 'unshare', 'dpkg-deb']
    .filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length) return `needs ${missing.join(', ')} (apt-get install debootstrap systemd-container)`;
  return undefined;
}

/**
 * Runs `script` to its end (SIGTERM 30 s before `timeoutMs`: its trap tears the root down)
 * and resolves with its exit status and output; skips `ctx` when the archive is unreachable.
 */
export async function runRootScript(script: string, skipLine: RegExp, testFile: string, timeoutMs: number, ctx: TestContext): Promise<{ status: number | null; out: string }> {
  const child = spawn(script, [], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs - 30_000);
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  clearTimeout(timer);
  if (status === 75 && skipLine.test(out)) {
    const reason = out.split('\n').filter((l) => /cannot be reached|SKIP/.test(l)).join('; ') || 'the Debian archive cannot be reached';
    console.warn(`${testFile} skipped: ${reason}`);
    ctx.skip(reason);
  }
  return { status, out };
}
