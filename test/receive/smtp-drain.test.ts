// src/receive/smtp.ts's close (a stop, a restart): no new connection is taken, and a
// session under way finishes its message and its QUIT instead of getting 421 at its next
// command (with postern.socket, a restart then refuses and cuts off no one). A session
// still open after the grace period gets 421 and is closed.
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { EventBus } from '../../src/core/events.js';
import { SmtpReceiver } from '../../src/receive/smtp.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { Spool } from '../../src/spool/spool.js';
import { RawSmtp } from '../helpers/smtp-client.js';

function receiverWith(): SmtpReceiver {
  const spool = {
    incoming: (id: string) => ({
      id, bodySize: 0, write: async () => undefined, abort: async () => undefined, commit: async () => ({ size: 1 }),
    }),
  } as unknown as Spool;
  const r = new SmtpReceiver({
    hostname: 'web1.example.org', qualifyDomain: 'example.org', relayFrom: ['127.0.0.0/8'], maxMessageSize: 1 << 20,
    maxRecipients: 10, maxConnections: 10, spool, events: new EventBus(), clock: systemClock, ids: new MessageIdGenerator(), kick: () => undefined,
  });
  return r;
}
const portOf = (bound: string) => Number(bound.slice(bound.lastIndexOf(':') + 1));
const refused = (port: number) => new Promise<string>((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  s.on('connect', () => { s.destroy(); resolve('connected'); });
});

describe('the SMTP listener closing', () => {
  let receiver: SmtpReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  it('lets a session under way send its message and QUIT, and takes no new connection', async () => {
    receiver = receiverWith();
    const port = portOf(await receiver.listen('127.0.0.1', 0));
    const { client } = await RawSmtp.open(port);
    await client.cmd('EHLO client.test');
    let closed = false;
    const closing = receiver.close().then(() => { closed = true; });
    expect(await refused(port)).toBe('ECONNREFUSED');
    expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250 /);
    expect(await client.cmd('RCPT TO:<b@example.org>')).toMatch(/^250 /);
    expect(await client.data('Subject: x\n\nbody')).toMatch(/^250 /);
    expect(closed).toBe(false);
    expect(await client.cmd('QUIT')).toMatch(/^221 /);
    await closing;
    receiver = undefined;
  });

  it('answers 421 to a session still open after the grace period, and closes it', async () => {
    receiver = receiverWith();
    const port = portOf(await receiver.listen('127.0.0.1', 0));
    // A short grace period (the daemon's is 10 s).
    for (const s of (receiver as unknown as { servers: { options: { closeTimeout: number } }[] }).servers) s.options.closeTimeout = 300;
    const { client } = await RawSmtp.open(port);
    await client.cmd('EHLO client.test');
    const t0 = Date.now();
    await receiver.close();
    receiver = undefined;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await client.reply()).toMatch(/^421 /);
  });
});
