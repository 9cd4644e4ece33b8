// Property tests for src/config/validate.ts parseConfig on generated TOML-ish text:
// the result is always a Config or a ConfigError (never another throw), and an error
// is one line naming the file and a line of it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/validate.js';

const RUNS = 2000;
const FILE = '/etc/postern/postern.toml';

const TABLES = ['listen', 'spool', 'smarthost', 'retry', 'queue', 'log', 'bogus', 'smarthost.x', 'listen]', ''];
const KEYS = ['hostname', 'qualify_domain', 'user', 'smtp', 'relay_from', 'max_message_size', 'max_recipients', 'max_connections',
  'idle_timeout', 'max_errors', 'directory', 'maildrop', 'hosts', 'tls', 'tls_ca_file', 'auth_user', 'auth_password_file',
  'connections', 'timeout', 'rules', 'delay_warning', 'timeout_frozen_after', 'ignore_bounce_errors_after', 'active_limit',
  'file', 'format', 'nosuch', 'a.b', '"quoted key"'];
const scalar = fc.oneof(
  fc.constantFrom('"5m"', '"0s"', '"50M"', '"0"', '"-1"', '"1y"', '"30d"', '"opportunistic"', '"none"', '"json"', '"127.0.0.1:25"',
    '"[::1]:0"', '"mail.example.org:99999"', '"* * F,2h,15m"', '"* * F,2h,0s"', '"127.0.0.0/8"', '""', 'true', '1979-05-27',
    '1e400', 'nan', 'inf', '-0', '0x10', '99999999999999999999'),
  fc.integer({ min: -5, max: 2 ** 40 }).map(String),
  fc.double({ noNaN: true }).map((d) => (Number.isFinite(d) ? String(d) : 'inf')),
  fc.string({ maxLength: 10 }).map((s) => JSON.stringify(s)),
);
const value = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 2, arbitrary: fc.array(scalar, { maxLength: 3 }).map((a) => `[${a.join(', ')}]`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KEYS), scalar).map(([k, v]) => `{ ${k} = ${v} }`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
const line = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(...TABLES).map((t) => `[${t}]`) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...KEYS), value).map(([k, v]) => `${k} = ${v}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constant('[smarthost]\nhosts = ["127.0.0.1:2525"]') },
);
const doc = fc.array(line, { maxLength: 14 }).map((l) => l.join('\n'));

// A valid file with generated values for real keys of each table, so that every key's
// checks (not only the TOML parser) meet hostile values.
const TABLE_KEYS: Record<string, string[]> = {
  listen: ['smtp', 'relay_from', 'max_message_size', 'max_recipients', 'max_connections', 'idle_timeout', 'max_errors'],
  smarthost: ['tls', 'tls_ca_file', 'auth_user', 'auth_password_file', 'connections', 'timeout'],
  retry: ['rules', 'delay_warning', 'timeout_frozen_after', 'ignore_bounce_errors_after'],
  log: ['file', 'format'],
  queue: ['active_limit'],
};
const entry = (table: string) => fc.tuple(fc.constantFrom(...(TABLE_KEYS[table] as string[])), value).map(([k, v]) => `${k} = ${v}`);
const keyed = fc.tuple(entry('listen'), entry('smarthost'), entry('retry'), entry('log'), entry('queue'))
  .map(([l, s, r, g, q]) => `hostname = "web1.example.org"\n[listen]\n${l}\n[smarthost]\nhosts = ["127.0.0.1:2525"]\n${s}\n` +
    `[retry]\n${r}\n[log]\n${g}\n[queue]\n${q}\n`);

describe('config parsing (property)', () => {
  it('always a Config or a one-line ConfigError naming the file and a line', () => {
    fc.assert(fc.property(fc.oneof(doc, keyed), fc.boolean(), (text, newline) => {
      const t = newline ? `${text}\n` : text;
      let err: unknown;
      try {
        const c = parseConfig(t, FILE);
        expect(c.smarthost.hosts.length).toBeGreaterThan(0);
        expect(c.listen.max_message_size).toBeGreaterThan(0);
        for (const ms of [c.smarthost.timeout, c.listen.idle_timeout]) {
          expect(ms).toBeGreaterThan(0);
          expect(ms).toBeLessThanOrEqual(2 ** 31 - 1); // what a Node timer holds
        }
        for (const ms of c.retry.delay_warning) expect(ms).toBeGreaterThan(0);
        return;
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).not.toContain('\n');
      const m = new RegExp(`^configuration error in ${FILE} line (\\d+): `).exec(msg);
      expect(m, msg).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(1);
      expect(Number(m![1])).toBeLessThanOrEqual(Math.max(1, t.split('\n').length));
    }), { numRuns: RUNS });
  });
});
