// rewrite/address-list.ts: finds the addr-specs of an RFC 5322 address-list header
// value (From, To, Cc, Bcc, Sender, Reply-To) and replaces them in place, leaving every
// other byte as written: display names, comments (`root (Cron Daemon)`), quoting,
// groups and folds. Also folds a header whose lines grew too long. Pure functions on
// byte strings (one char per byte, as the spool holds headers); imports nothing.

/** Where one address sits in a header value: [start, end) of the addr-spec text. */
export interface AddressSpan {
  start: number;
  end: number;
  address: string;
}

const WSP = /[ \t\r\n]/;

/**
 * The addr-specs of an address list, with their positions: the text inside `<...>`
 * (an obsolete route `@a,@b:` left out), or a mailbox written without brackets
 * (`root@vm`, `root (Cron Daemon)`, a bare `root`). A group's display name and a
 * phrase without an address are not addresses. Undefined when the value is malformed
 * (an open quote, comment or bracket): such a header is best left as it came.
 */
export function findAddresses(value: string): AddressSpan[] | undefined {
  const spans: AddressSpan[] = [];
  // The current element: whether it had brackets, and the bare text outside comments.
  let angled = false;
  let bare: { start: number; end: number; words: number } | undefined;
  // Only a clean addr-spec: no blanks or comments inside it (outside quoted strings).
  const push = (start: number, end: number) => {
    const address = value.slice(start, end);
    if (!/[ \t\r\n()]/.test(address.replace(/"(?:[^"\\]|\\.)*"/g, '""'))) spans.push({ start, end, address });
  };
  const endElement = () => {
    // Exactly one word (dots and @ join atoms and quoted strings): an addr-spec; but a
    // lone quoted string is a name someone left without its address.
    if (!angled && bare && bare.words === 1 && (value[bare.start] !== '"' || value.slice(bare.start, bare.end).includes('@'))) {
      push(bare.start, bare.end);
    }
    angled = false;
    bare = undefined;
  };
  const word = (start: number, end: number) => {
    if (!bare) {
      bare = { start, end, words: 1 };
      return;
    }
    // Adjacent to the previous token, or joined to it by '.' or '@': the same word.
    const prev = value[bare.end - 1];
    const next = value[start];
    if (bare.end === start || prev === '.' || prev === '@' || next === '.' || next === '@') bare.end = end;
    else bare.words++;
  };
  let i = 0;
  const n = value.length;
  while (i < n) {
    const c = value[i] as string;
    if (c === '"') {
      const start = i;
      i++;
      while (i < n && value[i] !== '"') i += value[i] === '\\' ? 2 : 1;
      if (i >= n) return undefined;
      i++;
      word(start, i);
      continue;
    }
    if (c === '(') {
      const end = commentEnd(value, i);
      if (end < 0) return undefined;
      i = end;
      continue;
    }
    if (c === '<') {
      const close = angleEnd(value, i + 1);
      if (close < 0) return undefined;
      let start = i + 1;
      let end = close;
      // Obsolete source route: <@a,@b:user@dom>: the address is after the colon.
      const inner = value.slice(start, end);
      const route = /^\s*@[^:"]*:/.exec(inner);
      if (route) start += route[0].length;
      while (start < end && WSP.test(value[start] as string)) start++;
      while (end > start && WSP.test(value[end - 1] as string)) end--;
      if (end > start) push(start, end);
      angled = true;
      i = close + 1;
      continue;
    }
    if (c === ',') {
      endElement();
      i++;
      continue;
    }
    if (c === ':') {
      // A group: what came before is its name, not an address.
      angled = false;
      bare = undefined;
      i++;
      continue;
    }
    if (c === ';') {
      endElement();
      i++;
      continue;
    }
    if (WSP.test(c)) {
      i++;
      continue;
    }
    if (c === ')' || c === '>') return undefined;
    // An atom (with the dots and @ that join atoms into an address).
    const start = i;
    while (i < n && !/[ \t\r\n"(),:;<>]/.test(value[i] as string)) i++;
    word(start, i);
  }
  endElement();
  return spans;
}

/** The index just past the comment (nested, with quoted pairs) opening at `from`; -1 if it never closes. */
function commentEnd(value: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < value.length) {
    const d = value[i];
    if (d === '\\') i += 2;
    else {
      if (d === '(') depth++;
      else if (d === ')') depth--;
      i++;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** The `>` closing a bracket opened before `from`, skipping quoted strings and comments; -1 if none. */
function angleEnd(value: string, from: number): number {
  let i = from;
  while (i < value.length) {
    const c = value[i];
    if (c === '>') return i;
    if (c === '"') {
      i++;
      while (i < value.length && value[i] !== '"') i += value[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '(') {
      const end = commentEnd(value, i);
      i = end < 0 ? value.length : end;
    } else if (c === '<') {
      return -1;
    } else i++;
  }
  return -1;
}

/**
 * The value with each address `map` returns a replacement for replaced in place;
 * undefined when nothing changed (or the value is malformed and was left alone).
 */
export function mapAddresses(value: string, map: (address: string) => string | undefined): string | undefined {
  const spans = findAddresses(value);
  if (!spans) return undefined;
  let out = value;
  let changed = false;
  for (const s of [...spans].reverse()) {
    const next = map(s.address);
    if (next === undefined || next === s.address) continue;
    out = out.slice(0, s.start) + next + out.slice(s.end);
    changed = true;
  }
  return changed ? out : undefined;
}

/** RFC 5322 2.1.1: a line must be at most 998 octets, and should be at most 78. */
export const PREFERRED_LINE = 78;
const MAX_LINE = 998;

/**
 * A whole header (`Name: value`, folded lines, ending with LF) with every line over 78
 * octets folded: a line break goes in before a space or tab that is not inside a
 * quoted string, comment or bracket, preferring one after a comma, as late as keeps the
 * line within 78 (else the first that keeps it within 998, else the first there is).
 * A line with no such place (one long address) stays as it is. Lines already short
 * enough are not touched.
 */
export function foldHeader(raw: string): string {
  const body = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
  const lines = body.split('\n');
  const out: string[] = [];
  for (const line of lines) {
    let rest = line;
    while (rest.length > PREFERRED_LINE) {
      const at = foldPoint(rest, out.length === 0 && rest === line ? rest.indexOf(':') + 1 : 1);
      if (at < 0) break;
      out.push(rest.slice(0, at));
      rest = rest.slice(at);
    }
    out.push(rest);
  }
  return out.join('\n') + '\n';
}

/** Where to break a too-long line (the index of the space or tab that starts the next line), or -1. */
function foldPoint(line: string, from: number): number {
  const points: { at: number; comma: boolean }[] = [];
  let quote = false;
  let paren = 0;
  let angle = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && (quote || paren > 0)) {
      i++;
      continue;
    }
    if (quote) {
      if (c === '"') quote = false;
      continue;
    }
    if (c === '"') quote = true;
    else if (c === '(') paren++;
    else if (c === ')' && paren > 0) paren--;
    else if (paren === 0 && c === '<') angle++;
    else if (paren === 0 && c === '>' && angle > 0) angle--;
    else if ((c === ' ' || c === '\t') && paren === 0 && angle === 0 && i > from && !/^[ \t]*$/.test(line.slice(0, i))) {
      // A run of blanks breaks at its last one, so no line ends in a blank.
      if (line[i + 1] === ' ' || line[i + 1] === '\t') continue;
      points.push({ at: i, comma: line[i - 1] === ',' });
    }
  }
  if (points.length === 0) return -1;
  const within = (limit: number) => points.filter((p) => p.at <= limit);
  const short = within(PREFERRED_LINE);
  const comma = short.filter((p) => p.comma);
  if (comma.length > 0) return (comma[comma.length - 1] as { at: number }).at;
  if (short.length > 0) return (short[short.length - 1] as { at: number }).at;
  const long = within(MAX_LINE);
  if (long.length > 0) return (long[0] as { at: number }).at;
  return (points[0] as { at: number }).at;
}
