// The [limits] table: its defaults (on, generous), "off" and "0", and a bad value refused
// with the file, line and key named, by parseConfig and by the real daemon (exit 1, one
// sentence, nothing bound); -bP shows them as written.
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/validate.js';
import { Instance } from '../helpers/postern.js';

const FILE = '/etc/postern/postern.toml';
const MINIMAL = '[smarthost]\nhosts = ["mail.example.org"]\n';

function error(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('parseConfig accepted a bad file');
}

describe('[limits]', () => {
  it('is on by default: 1000 an hour per local user and per SMTP client', () => {
    expect(parseConfig(MINIMAL, FILE).limits).toEqual({ per_user: { count: 1000, period: 3_600_000 }, per_client: { count: 1000, period: 3_600_000 } });
  });

  it('takes COUNT/PERIOD, and "off" or "0" for no limit', () => {
    const c = parseConfig(`${MINIMAL}[limits]\nper_user = "200/1h"\nper_client = "off"\n`, FILE);
    expect(c.limits).toEqual({ per_user: { count: 200, period: 3_600_000 }, per_client: null });
    expect(parseConfig(`${MINIMAL}[limits]\nper_user = "0"\n`, FILE).limits.per_user).toBeNull();
  });

  it.each([
    ['per_user = "200"', 6, 'limits.per_user'],
    ['per_client = "lots/1h"', 6, 'limits.per_client'],
    ['per_client = "0/1h"', 6, 'limits.per_client'],
    ['per_user = 200', 6, 'limits.per_user'],
  ])('refuses %s, naming file, line and key', (line, at, key) => {
    const msg = error(`${MINIMAL}\n[limits]\n\n${line}\n`);
    expect(msg.startsWith(`configuration error in ${FILE} line ${at}: ${key}: `)).toBe(true);
    expect(msg).not.toContain('\n');
  });

  it('says what a rate looks like', () => {
    expect(error(`${MINIMAL}[limits]\nper_user = "200 an hour"\n`))
      .toBe(`configuration error in ${FILE} line 4: limits.per_user: "200 an hour" is not a rate such as "200/1h" (a count of messages, "/", a period of at least 1s; "off" or "0": no limit)`);
    expect(error(`${MINIMAL}[limits]\nper_host = "1/1h"\n`)).toBe(`configuration error in ${FILE} line 4: limits.per_host: unknown key`);
  });
});

describe('the commands and [limits]', () => {
  let p: Instance | undefined;
  afterEach(async () => {
    await p?.cleanup();
    p = undefined;
  });

  it('-bP shows the rates as the file writes them, "off" for none', async () => {
    p = new Instance([2599], '[limits]\nper_client = "off"\nper_user = "200/h"\n');
    expect(await p.run('postern', ['-bP', 'limits'])).toEqual({ code: 0, stdout: 'limits.per_user = 200/1h\nlimits.per_client = off\n', stderr: '' });
  });

  it('does not start: exit 1, one sentence naming file, line and key', async () => {
    p = new Instance([2599], '[limits]\nper_client = "1000 per hour"\n');
    const r = await p.run('postern', ['-bd']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^postern: configuration error in ${p.config} line 16: limits\\.per_client: "1000 per hour" is not a rate such as "200/1h"[^\\n]*\\n$`));
    expect(r.stdout).toBe('');
  });
});
