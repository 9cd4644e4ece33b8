// core/version.ts: postern's version, read once from package.json, the one place it
// is written (so a package built with a new version says so everywhere: -bV,
// --version, Received:, the daemon's start line, the man pages). Relative to this
// file's place in dist/ (or the sendmail bundle's, dist/cli/), both two levels down.

let known: string | undefined;

export function version(): string {
  if (known === undefined) {
    try {
      // node:fs by process.getBuiltinModule, as config/load.ts takes it: no ESM facade on sendmail's start.
      const { readFileSync } = process.getBuiltinModule('node:fs');
      known = String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version);
    } catch {
      known = 'unknown';
    }
  }
  return known;
}
