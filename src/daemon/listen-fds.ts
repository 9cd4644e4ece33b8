// daemon/listen-fds.ts: listening sockets a parent hands over, as systemd's socket activation
// does (sd_listen_fds(3)): LISTEN_FDS descriptors from 3 on, LISTEN_PID naming the process
// they are for (one that inherits the variables is not it), LISTEN_FDNAMES their names,
// colon-separated. The root daemon that cannot change identity in process hands its SMTP
// listeners (bound as root: port 25) to the child it starts as `user` this way
// (daemon.ts); a socket unit with FileDescriptorName=smtp would be taken the same way.
const FIRST_FD = 3;
const VARS = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'] as const;

/**
 * The inherited descriptors named `name` (or unnamed), once: the variables are removed,
 * so nothing this process starts takes them for its own. Undefined when none are for
 * this process.
 */
export function inheritedListeners(name: string, env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] | undefined {
  const { LISTEN_FDS: count, LISTEN_PID: forPid, LISTEN_FDNAMES: names } = env;
  for (const v of VARS) delete env[v];
  if (count === undefined || forPid !== String(pid) || !/^[1-9]\d{0,3}$/.test(count)) return undefined;
  const named = names?.split(':') ?? [];
  const fds: number[] = [];
  for (let i = 0; i < Number(count); i++) {
    const n = named[i];
    if (n === undefined || n === '' || n === 'unknown' || n === name) fds.push(FIRST_FD + i);
  }
  return fds.length ? fds : undefined;
}

/** The environment that hands `fds` over (each named `name`); LISTEN_PID is set by the shell that execs the child (handOverShell). */
export function handOverEnv(count: number, name: string): Record<string, string> {
  return { LISTEN_FDS: String(count), LISTEN_FDNAMES: Array.from({ length: count }, () => name).join(':') };
}

/** Node's spawn cannot set the child's own pid in its environment: a shell does, then execs the command (same pid). */
export const handOverShell = ['/bin/sh', '-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'];
