// src/daemon/daemon.ts's unlistened: with sockets from systemd (postern.socket), each
// listen.smtp address they do not cover is said once, with how to make them agree.
import { describe, expect, it } from 'vitest';
import { unlistened } from '../../src/daemon/daemon.js';

describe('listen.smtp against the sockets systemd passed', () => {
  it('says nothing when the socket unit has each address (IPv6 bracketed or not)', () => {
    expect(unlistened([{ name: '127.0.0.1', port: 25 }, { name: '::1', port: 25 }], ['127.0.0.1:25', '[::1]:25'])).toEqual([]);
    expect(unlistened([{ name: '[::1]', port: 25 }], ['[::1]:25'])).toEqual([]);
  });

  it('names each address the sockets do not cover, and the way out', () => {
    const said = unlistened([{ name: '127.0.0.1', port: 25 }, { name: '192.0.2.10', port: 25 }, { name: '::1', port: 2525 }], ['127.0.0.1:25', '[::1]:25']);
    expect(said).toHaveLength(2);
    expect(said[0]).toBe('listen.smtp 192.0.2.10:25 is not among the sockets systemd passed (127.0.0.1:25 [::1]:25): not listened on; '
      + "the socket unit's ListenStream= decides (systemctl edit postern.socket, then systemctl restart postern.socket postern)");
    expect(said[1]).toMatch(/^listen\.smtp \[::1\]:2525 is not among/);
  });
});
