// transports/outgoing.ts: what leaves is the stored message with the sender and the
// header block rewritten by the transport's rules (none: as stored), the body
// untouched, the size following the headers' new length; pieces read at once only
// when the job's body can be.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { outgoing } from '../../src/transports/outgoing.js';
import type { DeliveryJob } from '../../src/transports/transport.js';

const HEADERS = 'From: root@vm\nSubject: x\n';
const BODY = 'From: root@vm in the body stays\n';
const job = (text: boolean): DeliveryJob => ({
  id: '1xVaAA-000001-AA', sender: 'root@vm', recipients: ['ops@example.org'], hosts: [{ name: '127.0.0.1', port: 25 }],
  size: HEADERS.length + 1 + BODY.length, headers: HEADERS,
  body: () => Readable.from([Buffer.from(BODY, 'latin1')]),
  ...(text ? { bodyChunks: () => [Buffer.from(BODY, 'latin1')] } : {}),
});
const rw = { sender: (a: string) => a.replace('@vm', '@example.org'), headers: (h: string) => h.replace('root@vm', 'root@example.org') };
const all = async (r: Readable) => Buffer.concat(await r.toArray()).toString('latin1');

describe('outgoing', () => {
  it('rewrites the sender and headers, never the body; the size follows', async () => {
    const out = outgoing(job(true), rw);
    const want = `From: root@example.org\nSubject: x\n\n${BODY}`;
    expect(out.sender).toBe('root@example.org');
    expect(out.recipients).toEqual(['ops@example.org']);
    expect(await all(out.message())).toBe(want);
    expect(Buffer.concat(out.messageParts?.() ?? []).toString('latin1')).toBe(want);
    expect(out.size).toBe(want.length);
  });

  it('without rules sends the message as stored; a body not held whole has no pieces form', async () => {
    const out = outgoing(job(false));
    expect(out.sender).toBe('root@vm');
    expect(await all(out.message())).toBe(`${HEADERS}\n${BODY}`);
    expect(out.messageParts).toBeUndefined();
    expect(out.size).toBe(job(false).size);
  });
});
