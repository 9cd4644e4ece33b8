// core/address.ts: what postern accepts as a mail address (local@domain, quoted local
// parts allowed, no spaces or brackets outside quotes). Shared by receiving, which
// refuses what cannot be routed, and by the router.

// The domain may be internationalised (SMTPUTF8): letters and digits of any script.
const ADDRESS = /^[^\s@<>()\\,;:"]+(?:\.[^\s@<>()\\,;:"]+)*@[\p{L}\p{N}\-_.[\]:]+$|^"[^"\r\n<>]*"@[\p{L}\p{N}\-_.[\]:]+$/u;

export function isRoutableAddress(address: string): boolean {
  return ADDRESS.test(address);
}
