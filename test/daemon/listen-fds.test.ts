// daemon/listen-fds.ts: listening sockets handed over as systemd does (sd_listen_fds(3)).
import { describe, expect, it } from 'vitest';
import { handOverEnv, inheritedListeners } from '../../src/daemon/listen-fds.js';

describe('inheritedListeners', () => {
  it('takes the descriptors from 3 on that are for this process, named smtp or unnamed, and forgets the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '3', LISTEN_PID: '42', LISTEN_FDNAMES: 'smtp:metrics:smtp', PATH: '/bin' };
    expect(inheritedListeners('smtp', env, 42)).toEqual([3, 5]);
    expect(env).toEqual({ PATH: '/bin' });
    expect(inheritedListeners('smtp', { LISTEN_FDS: '2', LISTEN_PID: '42' }, 42)).toEqual([3, 4]);
    expect(inheritedListeners('smtp', { ...handOverEnv(2, 'smtp'), LISTEN_PID: '7' }, 7)).toEqual([3, 4]);
  });

  it('ignores what is for another process (inherited by a child), malformed, or named otherwise', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '41' };
    expect(inheritedListeners('smtp', env, 42)).toBeUndefined();
    expect(env).toEqual({});
    expect(inheritedListeners('smtp', { LISTEN_FDS: '1' }, 42)).toBeUndefined();
    expect(inheritedListeners('smtp', { LISTEN_FDS: 'x', LISTEN_PID: '42' }, 42)).toBeUndefined();
    expect(inheritedListeners('smtp', { LISTEN_FDS: '0', LISTEN_PID: '42' }, 42)).toBeUndefined();
    expect(inheritedListeners('smtp', { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'metrics' }, 42)).toBeUndefined();
  });
});
