// Property tests for src/core/address.ts: no input makes it throw; every address it
// accepts is written back (formatAddress) to one it accepts with the same value; every
// address built from RFC 5321's grammar (dot-atom or quoted local part, LDH or IDN
// domain, address literal) is accepted, and the classic near-misses are not.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatAddress, isRoutableAddress, parseAddress } from '../../src/core/address.js';

const RUNS = 3000;

const ATEXT = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-/=?^_`{|}~', 'é', 'ü', 'я', '中', 'ß'];
const atom = fc.string({ unit: fc.constantFrom(...ATEXT), minLength: 1, maxLength: 8 });
const dotAtom = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));
/** A quoted local part's value: printable ASCII (quotes and backslashes included) and some UTF-8. */
const quotedValue = fc.string({ unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), fc.constantFrom('é', 'ж', '字')), maxLength: 12 });
const quote = (v: string) => `"${v.replace(/["\\]/g, '\\$&')}"`;

const LD = [...'abcdefghijklmnopqrstuvwxyz0123456789', 'ü', 'é', 'д'];
const label = fc.tuple(fc.constantFrom(...LD), fc.string({ unit: fc.constantFrom(...LD, '-'), maxLength: 10 }), fc.constantFrom(...LD))
  .map(([a, mid, z]) => (mid.length ? `${a}${mid}${z}` : a));
const hostDomain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const domain = fc.oneof(
  { weight: 4, arbitrary: hostDomain },
  { weight: 1, arbitrary: fc.ipV4().map((ip) => `[${ip}]`) },
  { weight: 1, arbitrary: fc.ipV6().map((ip) => `[IPv6:${ip}]`) },
);
const anyText = fc.string({ unit: 'binary', maxLength: 40 });
const CONTROLS = [...Array(32).keys(), 0x7f, 0x85, 0x9b].map((c) => String.fromCharCode(c));

describe('address syntax (property)', () => {
  it('never throws; whatever parses formats back to an equal, valid address', () => {
    fc.assert(fc.property(fc.oneof(anyText, fc.tuple(anyText, anyText).map(([a, b]) => `${a}@${b}`)), (s) => {
      const parsed = parseAddress(s);
      expect(isRoutableAddress(s)).toBe(parsed !== undefined);
      if (parsed) {
        const again = formatAddress(parsed);
        expect(parseAddress(again)).toEqual(parsed);
      }
    }), { numRuns: RUNS });
  });

  it('accepts every dot-atom@domain and "quoted"@domain, with the local value as written', () => {
    fc.assert(fc.property(fc.oneof(dotAtom.map((v) => [v, v] as const), quotedValue.map((v) => [quote(v), v] as const)), domain,
      ([written, value], d) => {
        const a = `${written}@${d}`;
        expect(parseAddress(a)).toEqual({ local: value, domain: d });
        // Written back: a dot-atom value stays bare, anything else is quoted, and reads the same.
        expect(parseAddress(formatAddress({ local: value, domain: d }))).toEqual({ local: value, domain: d });
      }), { numRuns: RUNS });
  });

  it('refuses a label that starts or ends with "-", an empty label, and any control character', () => {
    fc.assert(fc.property(dotAtom, label, hostDomain, fc.constantFrom(...CONTROLS), fc.nat(), (local, l, d, ctl, at) => {
      expect(isRoutableAddress(`${local}@-${l}.${d}`)).toBe(false);
      expect(isRoutableAddress(`${local}@${l}-.${d}`)).toBe(false);
      expect(isRoutableAddress(`${local}@${l}..${d}`)).toBe(false);
      expect(isRoutableAddress(`${local}@${d}.`)).toBe(false);
      const good = `${local}@${d}`;
      const i = at % (good.length + 1);
      expect(isRoutableAddress(good.slice(0, i) + ctl + good.slice(i))).toBe(false);
      expect(isRoutableAddress(`${quote(local + ctl)}@${d}`)).toBe(false);
    }), { numRuns: RUNS });
  });
});
