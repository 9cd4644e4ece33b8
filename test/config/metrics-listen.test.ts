// [metrics] listen: off unless set; a bare port is loopback; host:port and [v6]:port as
// named; anything else refused with the key's path.
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';

const parse = (metrics?: Record<string, unknown>) =>
  configSchema.safeParse({ smarthost: { hosts: ['mail.example.org'] }, ...(metrics ? { metrics } : {}) });

describe('[metrics] listen', () => {
  it('is off unless set', () => {
    const r = parse();
    expect(r.success && r.data.metrics.listen).toBeUndefined();
  });
  it.each([
    ['9725', { name: '127.0.0.1', port: 9725 }],
    ['127.0.0.1:9725', { name: '127.0.0.1', port: 9725 }],
    ['10.1.2.3:9725', { name: '10.1.2.3', port: 9725 }],
    ['[::1]:9725', { name: '::1', port: 9725 }],
    ['127.0.0.1:0', { name: '127.0.0.1', port: 0 }],
  ])('%s', (listen, want) => {
    const r = parse({ listen });
    expect(r.success && r.data.metrics.listen).toEqual(want);
  });
  it.each(['', 'localhost', '127.0.0.1:99999', '::1:9725', 'host:port'])('refuses %j', (listen) => {
    const r = parse({ listen });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['metrics', 'listen']);
  });
});
