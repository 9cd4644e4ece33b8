// cli/submit.ts: sendmail's submission alone (no mode flag: one message from stdin),
// bundled by esbuild with all it loads into one CommonJS file, dist/cli/submit.cjs,
// which bin/ runs first: no ESM loader, no module graph, no validator (the configuration
// comes from its fresh cache). Any other command line, or no fresh cache (a changed or
// bad file), resolves false at once, before stdin is touched: main.ts then does it all
// and says what is wrong. Errors end as main.ts ends them.
import { basename } from 'node:path';
import { cachedConfig } from '../config/load.js';
import { CommandError, EX } from '../core/exit.js';
import { sendmail } from '../receive/sendmail.js';
import { isSubmission, takeConfigFlag } from './args.js';

export async function submit(argv0: string, argv: string[]): Promise<boolean> {
  const personality = basename(argv0).replace(/\.js$/, '');
  if (!isSubmission(personality, argv)) return false;
  const flag = takeConfigFlag(argv);
  const c = cachedConfig(flag.file);
  if (!c) return false;
  try {
    await sendmail(flag.rest, c, 0, async () => (await import('../daemon/privileges.js')).makeMaildrop(c));
    process.exitCode = EX.OK;
  } catch (e) {
    // A submission throws CommandErrors (usage, data, try again later), else it is a bug.
    if (e instanceof CommandError) {
      process.stderr.write(`${personality}: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`${personality}: internal error: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = EX.SOFTWARE;
    }
  }
  return true;
}
