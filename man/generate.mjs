#!/usr/bin/env node
// man/generate.mjs: writes the man pages from the one source of postern's help
// (src/cli/help.ts, built into dist/), so `--help` and man(1) never disagree. Run after
// `npm run build`: `node man/generate.mjs [OUTDIR]` (default: this folder). The pages
// are committed, so the Debian package needs no build step for them.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const { MAN_PAGES, manPage } = await import('../dist/cli/help.js');
const dir = resolve(process.argv[2] ?? import.meta.dirname);
for (const [file, page] of MAN_PAGES) writeFileSync(join(dir, file), manPage(page));
