// Unit tests for src/core/address.ts: RFC 5321 Mailbox syntax (dot-atom or quoted
// local part; LDH or IDN domain, or an address literal), and the round trip through
// parseAddress/formatAddress.
import { describe, expect, it } from 'vitest';
import { formatAddress, isRoutableAddress, parseAddress } from '../../src/core/address.js';

describe('isRoutableAddress', () => {
  it.each([
    'a@example.org', 'first.last+tag@example.org', "o'brien@example.org", 'root@localhost',
    '"a b"@example.org', '"a@b"@example.org', '"a\\"b"@example.org', '"a..b"@example.org', '""@example.org',
    'user@bücher.example', 'пользователь@пример.рф', 'a@xn--bcher-kva.example', 'a@1.2.3.example',
    'a@[192.0.2.1]', 'a@[IPv6:2001:db8::1]', 'a@a-b.example',
  ])('accepts %s', (a) => expect(isRoutableAddress(a)).toBe(true));

  it.each([
    'a@-hub.test', 'a@hub-.test', 'a@hub.-x.test', 'a@x..y', 'a@.x', 'a@x.', 'a@', '@x', 'a', 'a b@x', 'a..b@x',
    '.a@x', 'a.@x', '"a"b@x', 'a"b"@x', '"a\rb"@x', '"a\nb"@x', 'a\x00b@x', 'a@x\x00', 'a@[192.0.2]', 'a@[IPv6:zz::1]',
    'a@[2001:db8::1]', 'a@x_y.test', 'a@x y', 'a<b@x', 'a@x>', 'bad address@@x', `a@${'x'.repeat(64)}.test`,
    'a\u202e@x', 'a@ex\u200bample.org',
  ])('refuses %j', (a) => expect(isRoutableAddress(a)).toBe(false));
});

describe('parseAddress / formatAddress', () => {
  it('unquotes the local part and quotes it back only when it is not a dot-atom', () => {
    expect(parseAddress('"a\\"b c"@x.test')).toEqual({ local: 'a"b c', domain: 'x.test' });
    expect(formatAddress({ local: 'a"b c', domain: 'x.test' })).toBe('"a\\"b c"@x.test');
    expect(formatAddress(parseAddress('"plain"@x.test')!)).toBe('plain@x.test');
  });
});
