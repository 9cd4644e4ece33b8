// rewrite/rewriter.ts: sender rewriting as Debian's Exim satellites do it, on the way
// out to the smarthost (the spool keeps the original). A local user's address
// (user@hostname, user@qualify_domain, user@localhost) becomes the address
// /etc/email-addresses gives that user, else user@readhost when hide_hostname is on.
// Applied to the envelope sender and to From, Reply-To, Sender, To, Cc, Bcc, keeping
// display names, comments and quoting. Pure functions on byte strings (headers as the
// spool holds them); the rules come from rewrite/load.ts.
import { foldHeader, mapAddresses, PREFERRED_LINE } from './address-list.js';

export interface RewriteRules {
  /** This machine's own domains, lower case: an address there is a local user's. */
  localDomains: string[];
  /** `rewrite.readhost` when `hide_hostname` is on (Debian's dc_readhost + dc_hide_mailname). */
  readhost?: string;
  /** /etc/email-addresses: local part (lower case, as bytes) → address (as bytes). */
  emailAddresses: Map<string, string>;
  /**
   * Debian's `hub_user` router (satellite with a readhost, whatever dc_hide_mailname
   * says): a recipient in the local domains whose local part is a login of this
   * machine (`check_local_user`) goes to `local@readhost`.
   */
  hubUser?: {
    readhost: string;
    users: ReadonlySet<string>;
    /** Debian's system_aliases router (before hub_user): local part → its one target; unqualified targets take qualifyDomain. */
    aliases?: ReadonlyMap<string, string>;
    qualifyDomain?: string;
  };
}

/** Where a recipient goes when a router redirected it: the new address and the router that sends it. */
export interface Redirect {
  address: string;
  router: 'hub_user_smarthost' | 'smarthost';
}

/**
 * Where a recipient is sent when Debian's satellite routers redirect it, or undefined
 * when it goes as it is. At one of this machine's names: an alias (system_aliases) is
 * followed, its target routed again (an alias met twice is not followed again, as
 * Exim passes an address its own ancestor generated to the next router); then a
 * login here goes to `user@readhost` (hub_user, by hub_user_smarthost). An address
 * an alias made that is not local goes by the smarthost router; a chain that ends at
 * no login (Exim: unrouteable) leaves the recipient as it came. Exim leaves the
 * headers alone.
 */
export function rewriteRecipient(address: string, rules: RewriteRules): Redirect | undefined {
  const hub = rules.hubUser;
  if (!hub) return undefined;
  let current = address;
  const seen = new Set<string>();
  for (;;) {
    const at = current.lastIndexOf('@');
    if (at <= 0) return undefined;
    const domain = current.slice(at + 1).toLowerCase().replace(/\.$/, '');
    // Aliased away from this machine: the smarthost router sends it.
    if (!rules.localDomains.includes(domain)) return current === address ? undefined : { address: current, router: 'smarthost' };
    // Exim's $local_part is lower case (caseful_local_part is off), so the new address is too.
    const local = current.slice(0, at).toLowerCase();
    const key = unquote(local);
    const target = seen.has(key) ? undefined : hub.aliases?.get(key);
    if (target !== undefined) {
      seen.add(key);
      current = target.includes('@') ? target : `${target}@${hub.qualifyDomain ?? domain}`;
      continue;
    }
    if (hub.users.has(key)) return { address: `${local}@${hub.readhost}`, router: 'hub_user_smarthost' };
    // No alias and no login here (Exim: unrouteable): the recipient goes to the hub as it came.
    return undefined;
  }
}

/** The headers rewritten (Exim's `frs` plus To, Cc and Bcc, as SPEC asks). */
const REWRITTEN_HEADERS = new Set(['from', 'reply-to', 'sender', 'to', 'cc', 'bcc']);

/** `"a b"` → `a b`: the local part as a lookup key. */
function unquote(local: string): string {
  return local.startsWith('"') && local.endsWith('"') && local.length >= 2 ? local.slice(1, -1).replace(/\\(.)/g, '$1') : local;
}

/** One address (a byte string, `local@domain`, or a bare local part); the same string when no rule applies. */
export function rewriteAddress(address: string, rules: RewriteRules): string {
  const at = address.lastIndexOf('@');
  if (at === 0 || address === '') return address;
  // An unqualified address (a header nobody qualified) is a local user's too.
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? undefined : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
  if (domain !== undefined && !rules.localDomains.includes(domain)) return address;
  const mapped = rules.emailAddresses.get(unquote(local).toLowerCase());
  if (mapped !== undefined) return mapped;
  if (rules.readhost !== undefined) return `${local}@${rules.readhost}`;
  return address;
}

/** The envelope sender (text, '' for <>), rewritten. */
export function rewriteSender(sender: string, rules: RewriteRules): string {
  if (sender === '') return sender;
  const bytes = Buffer.from(sender, 'utf8').toString('latin1');
  const out = rewriteAddress(bytes, rules);
  return out === bytes ? sender : Buffer.from(out, 'latin1').toString('utf8');
}

/** One header (`Name: value`, its folds, LF at the end), rewritten and folded if it changed. */
function rewriteHeader(raw: string, rules: RewriteRules): string {
  const colon = raw.indexOf(':');
  if (colon <= 0 || !REWRITTEN_HEADERS.has(raw.slice(0, colon).trim().toLowerCase())) return raw;
  const end = raw.endsWith('\n') ? raw.length - 1 : raw.length;
  const value = mapAddresses(raw.slice(colon + 1, end), (a) => rewriteAddress(a, rules));
  if (value === undefined) return raw;
  const out = `${raw.slice(0, colon + 1)}${value}\n`;
  return out.split('\n').some((l) => l.length > PREFERRED_LINE) ? foldHeader(out) : out;
}

/** A header block as the spool holds it (LF line ends, byte strings), each address header rewritten. */
export function rewriteHeaders(block: string, rules: RewriteRules): string {
  const lines = block.split('\n');
  const last = lines.pop(); // '' after the final LF; a last line without LF otherwise
  const headers: string[] = [];
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length > 0) headers[headers.length - 1] += `${line}\n`;
    else headers.push(`${line}\n`);
  }
  let out = headers.map((h) => rewriteHeader(h, rules)).join('');
  if (last) out += last;
  return out;
}
