// core/units.ts: durations ("15m") and sizes ("50M") as TOML writes them, to ms and
// bytes. Dependency-free, so the retry rules and the daemon's -q flag can use it
// without loading the schema library.

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "15m", "2h", "4d", "1w", or a bare number of seconds, to milliseconds (a safe integer). */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([smhdw]?)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * (UNITS[m[2] || 's'] ?? 1000));
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** "50M", "512K", "1G" or a number of bytes. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text > 0 ? text : undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  if (!m) return undefined;
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase()] ?? 1;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A rate as `limits.*` write it: at most `count` messages in `period` ms. */
export interface Rate {
  count: number;
  period: number;
}

/**
 * "200/1h", "50/15m", "1000/1d" (Exim's ratelimit and Postfix's anvil write their rates
 * so: a count over a duration; "200/h" is "200/1h"), to a Rate; "0" and "off" to null
 * (no limit); undefined when it is neither.
 */
export function parseRate(text: string): Rate | null | undefined {
  const t = text.trim();
  if (t === '0' || t.toLowerCase() === 'off') return null;
  const m = /^(\d+)\s*\/\s*(\d*(?:\.\d+)?[smhdw]?)$/.exec(t);
  if (!m) return undefined;
  const count = Number(m[1]);
  const p = m[2] as string;
  const period = parseDuration(/^[smhdw]$/.test(p) ? `1${p}` : p);
  if (!Number.isSafeInteger(count) || count < 1 || period === undefined || period < 1000) return undefined;
  return { count, period };
}

/** A Rate as the configuration writes it ("200/1h"), for logs and journal entries. */
export function formatRate(r: Rate): string {
  const units: [string, number][] = [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  const [u, ms] = units.find(([, ms]) => r.period % ms === 0) ?? ['s', 1000];
  return `${r.count}/${r.period / ms}${u}`;
}
