// cli/exigrep.ts: postern-exigrep, exigrep's job over the main log: every line of each
// message that has a line matching the pattern, grouped per message (printed when its
// `Completed` line is read, the unfinished ones at the end), and the matching lines that
// belong to no message. Reads gzipped files as they are; with no file named it reads
// log.file and its rotations, oldest first. Both log formats (exim, json) are read.
import { createReadStream, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { CommandError, EX, failure, noPermission, usage } from '../core/exit.js';

export interface ExigrepArgs {
  pattern: RegExp;
  invert: boolean;
  files: string[];
}

export function parseExigrepArgs(argv: string[]): ExigrepArgs {
  let literal = false;
  let caseSensitive = false;
  let invert = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (rest.length === 0 && /^-[lIv]+$/.test(a)) {
      literal ||= a.includes('l');
      caseSensitive ||= a.includes('I');
      invert ||= a.includes('v');
    } else if (rest.length === 0 && a.startsWith('-') && a !== '-') throw usage(`unknown option ${a}`);
    else rest.push(a);
  }
  const [text, ...files] = rest;
  if (text === undefined) throw usage('a pattern is needed: postern-exigrep PATTERN [FILE...]');
  let pattern: RegExp;
  try {
    pattern = new RegExp(literal ? text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : text, caseSensitive ? '' : 'i');
  } catch {
    throw usage(`${text} is not a valid regular expression (-l takes it literally)`);
  }
  return { pattern, invert, files };
}

const ROTATED = /^(?:\.(\d+)|-(\d{8,10}))?(\.gz)?$/;

/** The main log and its rotations (name.1, name.2.gz, name-20261127.gz), oldest first. */
export function logFiles(file: string): string[] {
  const dir = dirname(file);
  const base = basename(file);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw readError(dir, e);
  }
  const found: { path: string; age: number; date: string }[] = [];
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const m = ROTATED.exec(name.slice(base.length));
    if (!m) continue;
    found.push({ path: join(dir, name), age: m[1] === undefined ? (m[2] === undefined ? 0 : 1) : Number(m[1]), date: m[2] ?? '' });
  }
  // Higher numbers are older; dated names sort by their date; the live file is last.
  found.sort((a, b) => b.age - a.age || a.date.localeCompare(b.date));
  return found.map((f) => f.path);
}

function readError(path: string, e: unknown): CommandError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return noPermission(`cannot read ${path}: permission denied (the main log is for root, the daemon's user and its group)`);
  if (code === 'ENOENT') return failure(`cannot read ${path}: no such file`);
  return failure(`cannot read ${path}: ${code ?? (e as Error).message}`);
}

/** Lines of a file, gunzipped when it starts with gzip's magic bytes. */
async function* lines(path: string): AsyncGenerator<string> {
  const raw = createReadStream(path);
  const first = await new Promise<Buffer | undefined>((resolve, reject) => {
    raw.once('error', reject);
    raw.once('readable', () => resolve((raw.read(2) as Buffer | null) ?? undefined));
    raw.once('end', () => resolve(undefined));
  });
  if (first === undefined) return;
  raw.unshift(first);
  const gz = first.length === 2 && first[0] === 0x1f && first[1] === 0x8b;
  const stream: Readable = gz ? raw.pipe(createGunzip()) : raw;
  if (gz) raw.on('error', (e) => stream.destroy(e));
  yield* createInterface({ input: stream, crlfDelay: Infinity });
}

const EXIM_ID = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [-+]\d{4})? ([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) (.*)$/;

/** The message a line belongs to, and whether it is the message's last line. */
function messageOf(line: string): { id: string; completed: boolean } | undefined {
  if (line.startsWith('{')) {
    try {
      const e = JSON.parse(line) as { id?: unknown; type?: unknown; event?: unknown };
      if (typeof e.id !== 'string') return undefined;
      return { id: e.id, completed: e.type === 'completed' || e.event === 'completed' };
    } catch {
      return undefined;
    }
  }
  const m = EXIM_ID.exec(line);
  return m ? { id: m[1] as string, completed: m[2] === 'Completed' } : undefined;
}

export async function exigrep(args: ExigrepArgs, files: string[], out: (s: string) => void): Promise<number> {
  const groups = new Map<string, { lines: string[]; matched: boolean }>();
  let printed = 0;
  const show = (g: { lines: string[]; matched: boolean }) => {
    if (g.matched === args.invert) return;
    out(g.lines.join('\n') + '\n\n');
    printed++;
  };
  for (const path of files) {
    try {
      for await (const line of lines(path)) {
        const hit = args.pattern.test(line);
        const msg = messageOf(line);
        if (!msg) {
          if (hit && !args.invert) {
            out(line + '\n');
            printed++;
          }
          continue;
        }
        let g = groups.get(msg.id);
        if (!g) groups.set(msg.id, (g = { lines: [], matched: false }));
        g.lines.push(line);
        g.matched ||= hit;
        if (msg.completed) {
          groups.delete(msg.id);
          show(g);
        }
      }
    } catch (e) {
      if (e instanceof CommandError) throw e;
      throw readError(path, e);
    }
  }
  for (const g of groups.values()) show(g);
  return printed > 0 ? EX.OK : EX.FAIL;
}
