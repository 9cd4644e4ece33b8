// daemon/sd-notify.ts: tells systemd the daemon is ready (Type=notify). Node cannot send a
// datagram on a Unix socket, so `systemd-notify --ready` does it for us, naming this
// process as the main one; the unit allows it with NotifyAccess=all. It waits until
// systemd has read the message, so the short-lived child is still there to be credited.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export function notifyReady(onError: (message: string) => void): void {
  if (!process.env.NOTIFY_SOCKET) return;
  const tool = ['/usr/bin/systemd-notify', '/bin/systemd-notify'].find((p) => existsSync(p)) ?? 'systemd-notify';
  const child = spawn(tool, ['--ready', `--pid=${process.pid}`], { stdio: 'ignore' });
  child.on('error', (e) => onError(`cannot tell systemd that postern is ready: ${tool}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  child.on('exit', (code) => {
    if (code !== 0) onError(`cannot tell systemd that postern is ready: ${tool} exited ${code}`);
  });
}
