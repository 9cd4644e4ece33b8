// src/receive/smtp.ts with a spool that fails unexpectedly at commit: the client gets
// 452 4.3.1 (try again) and the main log gets one line with the error's message.
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { EventBus, type MtaEvent } from '../../src/core/events.js';
import { renderText } from '../../src/log/mainlog.js';
import { SmtpReceiver } from '../../src/receive/smtp.js';
import { MessageIdGenerator } from '../../src/spool/message-id.js';
import type { Spool } from '../../src/spool/spool.js';
import { RawSmtp } from '../helpers/smtp-client.js';

describe('an unexpected error on accept', () => {
  let receiver: SmtpReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
  });

  it('is answered 452 4.3.1 and logged with its message', async () => {
    const spool = {
      incoming: (id: string) => ({
        id, bodySize: 0,
        write: async () => undefined,
        abort: async () => undefined,
        commit: async () => { throw new Error('boom: lmdb said no'); },
      }),
    } as unknown as Spool;
    const events = new EventBus();
    const seen: MtaEvent[] = [];
    events.on((e) => seen.push(e));
    receiver = new SmtpReceiver({
      hostname: 'web1.example.org', qualifyDomain: 'example.org', relayFrom: ['127.0.0.0/8'], maxMessageSize: 1 << 20,
      maxRecipients: 10, maxConnections: 10, spool, events, clock: systemClock, ids: new MessageIdGenerator(), kick: () => undefined,
    });
    const bound = await receiver.listen('127.0.0.1', 0);
    const { client } = await RawSmtp.open(Number(bound.slice(bound.lastIndexOf(':') + 1)));
    await client.cmd('EHLO client.test');
    await client.cmd('MAIL FROM:<a@example.org>');
    await client.cmd('RCPT TO:<b@example.org>');
    expect(await client.data('Subject: x\n\nbody')).toMatch(/^452 4\.3\.1 /);
    client.close();
    const lines = seen.map(renderText);
    expect(lines).toContain('H=(client.test) [127.0.0.1] F=<a@example.org> rejected after DATA: local error: boom: lmdb said no');
  });
});
