// hub_queue_id on JSON log lines: the hub's queue ID from its 250 after the data
// (Postfix "queued as", Exim "id="), absent for other wordings and on Exim-format lines.
import { describe, expect, it } from 'vitest';
import type { MtaEvent } from '../../src/core/events.js';
import { hubQueueId, renderLine } from '../../src/log/mainlog.js';

const delivered = (text: string): MtaEvent => ({ type: 'delivered', id: '1vQ4Wc-0001Ez-00', rcpt: 'ops@example.org', first: true,
  router: 'smarthost', transport: 'remote_smtp', host: { name: 'hub', ip: '192.0.2.1', port: 25 }, reply: { code: 250, enhanced: '2.0.0', text } });

describe('hubQueueId', () => {
  it.each([
    ['2.0.0 Ok: queued as 4dL9Xk1Q2Jz7', '4dL9Xk1Q2Jz7'],
    ['Ok: queued as 3F2A81C0B2', '3F2A81C0B2'],
    ['OK id=1tGx2B-000Abc-Xy', '1tGx2B-000Abc-Xy'],
    ['OK id=1tGx2B-00000000AbC-XyZw', '1tGx2B-00000000AbC-XyZw'],
    ['2.0.0 Ok', undefined],
    ['Message accepted for delivery', undefined],
    ['queued as', undefined],
  ])('%s', (text, id) => expect(hubQueueId(text)).toBe(id));

  it('is a field of JSON lines only', () => {
    const json = JSON.parse(renderLine(delivered('2.0.0 Ok: queued as 4dL9Xk1Q2Jz7'), 0, 'json')) as Record<string, unknown>;
    expect(json.hub_queue_id).toBe('4dL9Xk1Q2Jz7');
    expect(JSON.parse(renderLine(delivered('2.0.0 Ok'), 0, 'json'))).not.toHaveProperty('hub_queue_id');
    expect(renderLine(delivered('2.0.0 Ok: queued as 4dL9Xk1Q2Jz7'), 0, 'exim')).not.toContain('hub_queue_id');
  });
});
