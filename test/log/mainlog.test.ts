// Unit tests for src/log/mainlog.ts: client-supplied text with control characters is
// escaped as Exim's string_printing() does, in both log formats, so that no field can
// forge a log line or send an escape sequence to an admin's terminal.
import { describe, expect, it } from 'vitest';
import { printable, renderLine, renderText } from '../../src/log/mainlog.js';
import type { MtaEvent } from '../../src/core/events.js';

const NOW = Date.UTC(2024, 0, 2, 3, 4, 5);

describe('printable', () => {
  it('names \\n \\r \\t \\b \\v \\f and writes other controls in octal', () => {
    expect(printable('a\nb\rc\td\be\vf\fg')).toBe('a\\nb\\rc\\td\\be\\vf\\fg');
    expect(printable('\x1b[31mred\x00\x7f')).toBe('\\033[31mred\\000\\177');
    expect(printable('csi\u009b2J')).toBe('csi\\2332J');
    expect(printable('ls\u2028ps\u2029')).toBe('ls\\u2028ps\\u2029');
  });
  it('leaves printable ASCII and Unicode alone', () => {
    const s = 'user@bücher.example <"a b"@x> ([1.2.3.4]) ~!\\';
    expect(printable(s)).toBe(s);
  });
});

describe('renderLine: hostile fields', () => {
  const received: MtaEvent = {
    type: 'received', id: '1abcDE-000001-AB', sender: 'a@b.test\n2024-01-01 00:00:00 1xxxxx-000000-XX Completed',
    protocol: 'esmtp', size: 10, clientIp: '127.0.0.1', helo: 'evil\r\x1b]0;owned\x07', messageIdHeader: 'id\x1b[2J@x',
  };

  it('an Exim-format line stays one line with every control escaped', () => {
    const line = renderLine(received, NOW, 'exim');
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    expect(line).toContain('<= a@b.test\\n2024-01-01 00:00:00 1xxxxx-000000-XX Completed');
    expect(line).toContain('H=(evil\\r\\033]0;owned\\007) [127.0.0.1]');
    expect(line).toContain('id=id\\033[2J@x');
  });

  it('a rejection names the escaped address', () => {
    const t = renderText({ type: 'rejected', stage: 'RCPT', clientIp: '10.0.0.1', sender: 's@x', rcpt: 'r\r@x', reason: 'Relay not permitted' });
    expect(t).toBe('H=[10.0.0.1] F=<s@x> rejected RCPT <r\\r@x>: Relay not permitted');
  });

  it('a JSON line has no raw control, DEL, C1 or line separator, and parses back to the same fields', () => {
    const e: MtaEvent = { ...received, helo: 'x\u009b\u2028\x7f\x1b' } as MtaEvent;
    const line = renderLine(e, NOW, 'json');
    expect(line.split('\n').length).toBe(2);
    expect(line.slice(0, -1)).not.toMatch(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/);
    expect(JSON.parse(line)).toMatchObject({ helo: 'x\u009b\u2028\x7f\x1b', sender: received.type === 'received' ? received.sender : '' });
  });
});

describe('renderText: a recipient a router redirected (hub_user)', () => {
  const host = { name: 'mail.example.org', ip: '192.0.2.25', port: 25 };
  it('is logged as Exim logs it: the address sent, then the original in angle brackets', () => {
    expect(renderText({ type: 'delivered', id: '1xVME4-0001HS-0Y', rcpt: 'root@web1.example.org', sentAs: 'root@example.org', first: true,
      router: 'hub_user_smarthost', transport: 'remote_smtp', host, reply: { code: 250, enhanced: '2.0.0', text: 'Ok' } }))
      .toBe('=> root@example.org <root@web1.example.org> R=hub_user_smarthost T=remote_smtp H=mail.example.org [192.0.2.25] C="250 2.0.0 Ok"');
    expect(renderText({ type: 'deferred', id: '1xVME4-0001HS-0Y', rcpt: 'root@web1.example.org', sentAs: 'root@example.org', router: 'hub_user_smarthost',
      transport: 'remote_smtp', sender: 'a@b', result: { cause: 'refused' }, host }))
      .toMatch(/^== root@example\.org <root@web1\.example\.org> R=hub_user_smarthost T=remote_smtp defer \(111\)/);
  });
});
