// bench/root.ts: where the bench runs from (HERE: dist/bench/, where tsc puts the
// compiled bench) and the repository's root (ROOT: the first folder above with a
// package.json), so the bench finds bin/, dist/, config/ and bench/peers/ wherever it
// is compiled to.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));

function findRoot(from: string): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) throw new Error(`no package.json above ${from}`);
  }
}

export const ROOT = findRoot(HERE);

/** The daemon's node flags as config/postern.service sets them (Environment=NODE_OPTIONS=...): measured as shipped. */
export const UNIT_NODE_FLAGS = /^Environment=NODE_OPTIONS=(.*)$/m.exec(readFileSync(join(ROOT, 'config/postern.service'), 'utf8'))?.[1]?.split(/\s+/).filter(Boolean) ?? [];
