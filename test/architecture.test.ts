// The dependency direction of STYLE.md, checked on the source: spool, router,
// transports, log and core import nothing above them, so each can be read, tested and
// replaced alone; receive sits below the operator's rooms (admin), the daemon that
// composes them, the installer and the importer, and cli on top of all. No file
// imports itself back through others, dynamic imports included. A failing case names
// the file and the import that crosses the line, or the circle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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
  rewrite: ['config', 'core'],
  // The scheduler drives deliveries: it reads the spool, asks the router and the
  // transport, logs, and composes bounces and warnings; nothing above it.
  scheduler: ['core', 'bounce', 'log', 'router', 'spool', 'transports'],
  receive: ['core', 'config', 'spool', 'rewrite', 'limits'],
  migrate: ['core', 'config', 'log', 'spool', 'rewrite'],
  install: ['core', 'config', 'migrate'],
  admin: ['core', 'config', 'log', 'spool', 'receive', 'scheduler'],
  daemon: ['core', 'config', 'log', 'spool', 'receive', 'scheduler', 'router', 'transports', 'rewrite', 'metrics', 'admin', 'limits'],
  cli: ['core', 'config', 'log', 'spool', 'receive', 'scheduler', 'router', 'transports', 'rewrite', 'metrics', 'admin', 'daemon', 'install', 'migrate'],
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

/** Every .ts file under src/ and the src/ files it imports (static, type-only and dynamic imports alike). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        const targets = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}\/[^']+)'/g)]
          .map((m) => relative(SRC, resolve(dirname(path), m[1] as string)).replace(/\.js$/, '.ts'));
        graph.set(relative(SRC, path), targets);
      }
    }
  };
  walk(SRC);
  return graph;
}

/** The import circles of a graph, each as the path that closes it (depth-first search). */
function circles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next].join(' -> '));
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe('module boundaries', () => {
  it('every folder of src/ has its place in the layering', () => {
    const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory() && n !== 'postdrop');
    expect(folders.filter((f) => !(f in ALLOWED))).toEqual([]);
  });

  it('no import circles between files, dynamic imports included', () => {
    expect(circles(importGraph())).toEqual([]);
  });

  it('the circle finder finds a circle (so the case above can fail)', () => {
    expect(circles(new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']]]))).toEqual(['a.ts -> b.ts -> c.ts -> a.ts']);
  });

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
