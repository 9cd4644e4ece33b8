// core/retry-rules.ts: Exim retry rules ("* * F,2h,15m; G,16h,1h,1.5; F,4d,6h") as
// values: the parser, run once when the configuration is validated, so the
// configuration carries parsed rules and the scheduler only reads them. Pure.
import { parseDuration } from './units.js';

interface RetryParams {
  kind: 'F' | 'G' | 'H';
  cutoff: number;
  interval: number;
  multiplier: number;
}
export interface RetryRule {
  pattern: string;
  error: string;
  params: RetryParams[];
}

function duration(text: string, rule: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`malformed time "${text}" in retry rule "${rule}"`);
  return ms;
}

/**
 * Exim's error names a rule may give (`*` for any): what an attempt's trouble is
 * called is errorType() in scheduler/retry-rules.ts. `_MX` forms never match (a
 * smarthost is not found through MX); `_A` forms are the plain ones; `quota` and
 * `lookup` are accepted and never match (a satellite has neither).
 */
const ERROR_NAMES = new Set(['*', 'refused', 'refused_A', 'refused_MX', 'timeout', 'timeout_A', 'timeout_MX',
  'timeout_connect', 'timeout_connect_A', 'timeout_connect_MX', 'lost_connection', 'tls_required', 'auth_failed',
  'lookup', 'quota']);
const REPLY_ERROR = /^(mail|rcpt|data)_4[0-9x][0-9x]$/;

export function isRetryErrorName(name: string): boolean {
  return ERROR_NAMES.has(name) || REPLY_ERROR.test(name) || /^quota_\d+[smhdw]$/.test(name);
}

export function parseRetryRule(text: string): RetryRule {
  const m = /^\s*(\S+)\s+(\S+)\s+(.*)$/.exec(text);
  if (!m) throw new Error(`retry rule "${text}" needs a pattern, an error type and parameter sets`);
  if (!isRetryErrorName(m[2] as string)) {
    throw new Error(`unknown error type "${m[2]}" in retry rule "${text}" (use *, refused, timeout, timeout_connect, lost_connection, tls_required, auth_failed, mail_4xx, rcpt_4xx, data_4xx or a digit form such as rcpt_452)`);
  }
  if (/^senders=/.test(m[3] as string)) throw new Error(`senders= in retry rule "${text}" is not supported`);
  const params = (m[3] as string).split(';').map((s) => s.trim()).filter(Boolean).map((set) => {
    const f = set.split(',').map((x) => x.trim());
    const kind = f[0];
    // A zero interval would retry in a tight loop.
    if (f.length >= 3 && duration(f[2]!, text) === 0) throw new Error(`zero interval in "${set}" of retry rule "${text}"`);
    if (kind === 'F' && f.length === 3) {
      return { kind, cutoff: duration(f[1]!, text), interval: duration(f[2]!, text), multiplier: 1 } as RetryParams;
    }
    if ((kind === 'G' || kind === 'H') && f.length === 4) {
      const multiplier = Number(f[3]);
      if (!(multiplier >= 1)) throw new Error(`malformed multiplier "${f[3]}" in retry rule "${text}"`);
      return { kind, cutoff: duration(f[1]!, text), interval: duration(f[2]!, text), multiplier } as RetryParams;
    }
    throw new Error(`malformed parameter set "${set}" in retry rule "${text}"`);
  });
  return { pattern: m[1] as string, error: m[2] as string, params };
}

/** Each rule parsed; an error names the rule by its place (1-based) in the list. */
export function parseRetryRules(lines: string[]): RetryRule[] {
  return lines.map((line, i) => {
    try {
      return parseRetryRule(line);
    } catch (err) {
      throw new Error(`rule ${i + 1}: ${(err as Error).message}`);
    }
  });
}

const UNITS: [string, number][] = [['w', 7 * 86_400_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];

/** A duration as Exim writes it in a rule: the largest unit that divides it (2h, 15m, 4d; 1h30m). */
export function formatRetryTime(ms: number): string {
  if (ms === 0) return '0s';
  let out = '';
  let rest = ms;
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return rest > 0 ? `${out}${rest}ms` : out;
}

/** A rule as Exim's -brt prints it: `* * F,2h,15m; G,16h,1h,1.5; F,4d,6h`. */
export function formatRetryRule(r: RetryRule): string {
  const sets = r.params.map((p) => [p.kind, formatRetryTime(p.cutoff), formatRetryTime(p.interval),
    ...(p.kind === 'F' ? [] : [String(p.multiplier)])].join(','));
  return `${r.pattern} ${r.error} ${sets.join('; ')}`;
}
