// core/retry-rules.ts: Exim retry rules ("* * F,2h,15m; G,16h,1h,1.5; F,4d,6h") as
// values: the parser, run once when the configuration is validated, so the
// configuration carries parsed rules and the scheduler only reads them. Pure.
import { parseDuration } from './units.js';

export interface RetryParams {
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

export function parseRetryRule(text: string): RetryRule {
  const m = /^\s*(\S+)\s+(\S+)\s+(.*)$/.exec(text);
  if (!m) throw new Error(`retry rule "${text}" needs a pattern, an error type and parameter sets`);
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

export function parseRetryRules(lines: string[]): RetryRule[] {
  return lines.map(parseRetryRule);
}
