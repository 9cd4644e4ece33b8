// test/cli/help.test.ts: --help on every personality (usage on stdout, exit 0),
// newaliases and sendmail -bi (nothing to do, exit 0), the committed man pages equal to
// what man/generate.mjs makes from the same source, and every configuration key in
// postern.toml(5).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PAGES } from '../../src/cli/help.js';
import { configSchema } from '../../src/config/schema.js';
import { ROOT, runCommand } from '../helpers/postern.js';

const tmp = mkdtempSync(join(tmpdir(), 'postern-help-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('--help', () => {
  for (const name of ['postern', 'sendmail', 'mailq', 'postern-qgrep', 'newaliases', 'postern-exigrep']) {
    it(`${name} --help prints its usage and exits 0`, async () => {
      const r = await runCommand(name, ['--help'], { env: { POSTERN_CONFIG: '/nonexistent/postern.toml' } });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: ${name}\\b`));
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(PAGES[name]!.summary);
    });
  }

  it('postern install --help is the usage too (no install)', async () => {
    const r = await runCommand('postern', ['install', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: postern install \[--root DIR\] \[--dry-run\]/);
  });

  it('newaliases and sendmail -bi do nothing and exit 0', async () => {
    for (const [name, args] of [['newaliases', []], ['sendmail', ['-bi']], ['postern', ['-bi']]] as const) {
      const r = await runCommand(name, [...args], { env: { POSTERN_CONFIG: '/nonexistent/postern.toml' } });
      expect({ name, ...r }).toEqual({ name, code: 0, stdout: '', stderr: '' });
    }
  });
});

describe('man pages', () => {
  it('the committed pages are what man/generate.mjs makes from the --help source', () => {
    execFileSync(process.execPath, [join(ROOT, 'man/generate.mjs'), tmp]);
    const made = readdirSync(tmp).sort();
    expect(made).toEqual(['postern-exigrep.8', 'postern-qgrep.8', 'postern.8', 'postern.toml.5']);
    for (const f of made) expect(readFileSync(join(ROOT, 'man', f), 'utf8'), `man/${f} is stale: run node man/generate.mjs`).toBe(readFileSync(join(tmp, f), 'utf8'));
  });

  it('postern.toml(5) names every key of the configuration schema', () => {
    const page = PAGES['postern.toml']!;
    const terms = new Map<string, string[]>();
    for (const s of page.sections) {
      const table = s.title.startsWith('[') ? s.title.slice(1, -1) : '';
      for (const [term] of s.items ?? []) for (const t of term.split(', ')) terms.set(table ? `${table}.${t}` : t, []);
    }
    // zod 4: optional/default/prefault wrap the object whose shape holds the keys.
    const shapeOf = (t: any): Record<string, unknown> | undefined => {
      for (let d = t?._zod?.def; d; d = d.innerType?._zod?.def) if (d.type === 'object') return d.shape;
      return undefined;
    };
    const keys: string[] = [];
    for (const [k, v] of Object.entries(configSchema.shape)) {
      const inner = shapeOf(v);
      if (inner) for (const k2 of Object.keys(inner)) keys.push(`${k}.${k2}`);
      else keys.push(k);
    }
    expect(keys.length).toBeGreaterThan(25);
    expect(keys.filter((k) => !terms.has(k))).toEqual([]);
  });
});
