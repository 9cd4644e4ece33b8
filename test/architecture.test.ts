// The dependency direction of STYLE.md, checked on the source: spool, router,
// transports, log and core import nothing above them, so each can be read, tested and
// replaced alone. A failing case names the file and the import that crosses the line.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '../src');
const ALLOWED: Record<string, string[]> = {
  core: [],
  spool: ['core'],
  router: ['core'],
  transports: ['core'],
  log: ['core'],
  bounce: ['core'],
  config: ['core'],
  metrics: ['core'],
  limits: ['core'],
};

function imports(folder: string): { file: string; target: string }[] {
  const out: { file: string; target: string }[] = [];
  for (const name of readdirSync(join(SRC, folder))) {
    const text = readFileSync(join(SRC, folder, name), 'utf8');
    for (const m of text.matchAll(/from '\.\.\/([a-z-]+)\//g)) out.push({ file: `${folder}/${name}`, target: m[1] as string });
    for (const m of text.matchAll(/import\('\.\.\/([a-z-]+)\//g)) out.push({ file: `${folder}/${name}`, target: m[1] as string });
  }
  return out;
}

describe('module boundaries', () => {
  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    it(`${folder}/ imports only ${allowed.join(', ') || 'nothing'} from src/`, () => {
      const crossing = imports(folder).filter((i) => !allowed.includes(i.target)).map((i) => `${i.file} -> ${i.target}`);
      expect(crossing).toEqual([]);
    });
  }

  it('config/load.ts and config/validate.ts do not import each other in a circle', () => {
    const validate = readFileSync(join(SRC, 'config/validate.ts'), 'utf8');
    expect(validate).not.toMatch(/from '\.\/load\.js'|import\('\.\/load\.js'\)/);
  });

  it('the sendmail path does not load yargs, smtp-server, nodemailer or p-queue', () => {
    const text = readFileSync(join(SRC, 'receive/sendmail.ts'), 'utf8') + readFileSync(join(SRC, 'receive/cleanup.ts'), 'utf8');
    expect(text).not.toMatch(/from '(yargs|smtp-server|p-queue|nodemailer\/lib\/smtp-connection)'/);
  });
});
