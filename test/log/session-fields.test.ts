// The `=>` line's session fields as Exim prints them (X= with tls_cipher, Debian's CV=
// with tls_certificate_verified, A= the authenticator), and the transport's helpers
// that name the TLS version, the cipher's bits and whether a message needs SMTPUTF8.
import { describe, expect, it } from 'vitest';
import { renderText } from '../../src/log/mainlog.js';
import { cipherBits, needsSmtpUtf8, tlsVersionName } from '../../src/transports/smtp.js';
import type { SessionInfo } from '../../src/core/types.js';

const delivered = (session?: SessionInfo) => renderText({ type: 'delivered', id: 'x', rcpt: 'ops@example.org', first: true, router: 'smarthost',
  transport: 'remote_smtp', host: { name: 'hub.example.org', ip: '192.0.2.1', port: 587 }, reply: { code: 250, enhanced: '2.0.0', text: 'Ok' },
  ...(session ? { session } : {}) });

describe('=> line session fields', () => {
  it.each<[SessionInfo | undefined, string]>([
    [undefined, ''],
    [{ tls: { version: 'TLS1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, verified: true } }, ' X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes'],
    [{ tls: { version: 'TLS1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', bits: 128, verified: false }, auth: 'login' },
      ' X=TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128 CV=no A=login'],
    [{ auth: 'plain' }, ' A=plain'],
  ])('%j', (session, fields) => {
    expect(delivered(session)).toBe(`=> ops@example.org R=smarthost T=remote_smtp H=hub.example.org [192.0.2.1]:587${fields} C="250 2.0.0 Ok"`);
  });
});

describe('transport helpers', () => {
  it.each<[string, number]>([
    ['TLS_AES_256_GCM_SHA384', 256], ['TLS_AES_128_GCM_SHA256', 128], ['TLS_CHACHA20_POLY1305_SHA256', 256],
    ['ECDHE-RSA-AES128-GCM-SHA256', 128], ['ECDHE-RSA-AES256-GCM-SHA384', 256], ['ECDHE-RSA-CHACHA20-POLY1305', 256], ['DES-CBC3-SHA', 168],
  ])('bits of %s', (name, bits) => expect(cipherBits(name)).toBe(bits));

  it('TLS version as Exim writes it', () => {
    expect(tlsVersionName('TLSv1.3')).toBe('TLS1.3');
    expect(tlsVersionName('TLSv1.2')).toBe('TLS1.2');
  });

  it.each<[string, string[], boolean]>([
    ['a@example.org', ['b@example.org'], false],
    ['', ['b@example.org'], false],
    ['jürgen@example.org', ['b@example.org'], true],
    ['a@example.org', ['b@example.org', 'zoë@example.org'], true],
    ['a@bücher.example', ['b@example.org'], true],
  ])('needs SMTPUTF8: %s -> %j', (sender, rcpts, needs) => expect(needsSmtpUtf8(sender, rcpts)).toBe(needs));
});
