// core/address.ts: what postern accepts as a mail address: RFC 5321's Mailbox (a
// dot-atom or quoted-string local part, an LDH domain or an address literal), with
// RFC 6531's UTF-8 (SMTPUTF8: IDN domains, UTF-8 local parts). Shared by receiving,
// which refuses what cannot be routed, and by the router.
// node:net only for an address literal, when one comes: `sendmail` starts without it.
const net = () => process.getBuiltinModule('node:net');

// UTF-8 beyond ASCII, less C1 controls, white space and invisible formatting characters.
const UTF8 = '[^\\x00-\\x9f\\s\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\ufeff]';
const ATEXT_ASCII = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]";
// qtextSMTP (printable ASCII but " and \) or UTF-8, and quoted-pairSMTP (\ and printable ASCII).
const QTEXT_ASCII = '[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\x20-\\x7e]';
const patterns = (atext: string, qtext: string, flags: string) => {
  const dotAtom = `${atext}+(?:\\.${atext}+)*`;
  return { local: new RegExp(`^(?:${dotAtom}|"(?:${qtext})*")$`, flags), dotAtom: new RegExp(`^${dotAtom}$`, flags) };
};
// Two sets with the same answers on ASCII (UTF8 matches no ASCII character, \p{L} and
// \p{N} are A-Za-z and 0-9 there, \p{M} nothing): V8 takes milliseconds to build the
// Unicode ones, so they are made only when a string beyond ASCII comes (sendmail's start).
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const ascii = { ...patterns(ATEXT_ASCII, QTEXT_ASCII, ''), label: /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/ };
let unicode: typeof ascii | undefined;
const forText = (s: string): typeof ascii => ASCII_ONLY.test(s) ? ascii : (unicode ??= {
  ...patterns(`(?:${ATEXT_ASCII}|${UTF8})`, `${QTEXT_ASCII}|${UTF8}`, 'u'),
  // A label: letters and digits (of any script), hyphens inside only. Not a literal:
  // V8 parses a literal's Unicode classes when it compiles the file, used or not.
  label: new RegExp('^[\\p{L}\\p{N}](?:[\\p{L}\\p{N}\\p{M}-]*[\\p{L}\\p{N}\\p{M}])?$', 'u'),
});

function isDomain(domain: string): boolean {
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const literal = domain.slice(1, -1);
    if (/^IPv6:/i.test(literal)) return net().isIPv6(literal.slice(5));
    return net().isIPv4(literal);
  }
  if (domain.length === 0 || domain.length > 255) return false;
  const { label } = forText(domain);
  return domain.split('.').every((l) => l.length <= 63 && label.test(l));
}

export interface ParsedAddress {
  /** The local part's value: quotes removed, quoted pairs resolved. */
  local: string;
  domain: string;
}

/** local@domain split and checked; undefined when it is not a valid address. */
export function parseAddress(address: string): ParsedAddress | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!forText(local).local.test(local) || !isDomain(domain)) return undefined;
  const value = local.startsWith('"') ? local.slice(1, -1).replace(/\\(.)/gu, '$1') : local;
  return { local: value, domain };
}

/** The address written back: the local part as a dot-atom when it is one, else quoted. */
export function formatAddress(a: ParsedAddress): string {
  const local = forText(a.local).dotAtom.test(a.local) ? a.local : `"${a.local.replace(/["\\]/g, '\\$&')}"`;
  return `${local}@${a.domain}`;
}

export function isRoutableAddress(address: string): boolean {
  return parseAddress(address) !== undefined;
}
