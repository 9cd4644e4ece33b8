// cli/args.ts: the shape of a command line, for main.ts and submit.ts alike: `-C FILE`,
// a queue run's selection, the mode flag, and so whether it submits a message (no mode:
// sendmail's own job), which submit.ts may do without main.ts.
import { usage } from '../core/exit.js';

/** Pulls `-C FILE` out of the arguments. */
export function takeConfigFlag(argv: string[]): { file: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-C') {
      file = argv[++i];
      if (file === undefined) throw usage('option -C needs a file name');
    } else if (a.startsWith('-C') && a.length > 2) file = a.slice(2);
    else rest.push(a);
  }
  return { file, rest };
}

/**
 * Exim's -R STRING / -S STRING (-Rf, -Rff...): a queue run over the messages with an
 * undelivered recipient / the sender containing STRING. `sendmail -R full|hdrs` is the DSN option.
 */
export function queueSelection(rest: string[]): string[] | undefined {
  return rest.length >= 2 && rest.length % 2 === 0 && rest.every((a, i) => i % 2 === 1 || /^-[RS]f{0,2}$/.test(a))
    && !rest.some((a, i) => a.startsWith('-R') && /^(full|hdrs)$/i.test(rest[i + 1] ?? '')) ? rest : undefined;
}

/** The mode flag (-bd, -bp, -q, -M..., --json; a selection's -q), or undefined for a submission. */
export function modeOf(rest: string[], selection: string[] | undefined): string | undefined {
  return selection ? `-q${(selection[0] as string).slice(2)}` : (rest.find((a) => /^-(b[dpsVPtm]|brt|bp[a-z]*|M[a-z]*|q[a-z0-9]*|bdf)$/.test(a)) ?? rest.find((a) => a === '--json'));
}

/** mailq's arguments as postern's: -bp unless a -bp form is given. */
export function mailqArgs(rest: string[]): string[] {
  return rest.some((a) => a.startsWith('-bp')) ? rest : ['-bp', ...rest];
}

/** Help, the version, -bi: main.ts answers these before it looks at anything else. */
export function answeredFirst(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('--version') || argv.includes('-bi') || (argv.length === 1 && argv[0] === '-h');
}

/** Whether main.ts would read one message from stdin for this command line (sendmail, -bm). */
export function isSubmission(personality: string, argv: string[]): boolean {
  if (answeredFirst(argv)) return false;
  if (['newaliases', 'mailq', 'postern-exigrep', 'postern-qgrep'].includes(personality)) return false;
  if (personality === 'postern' && (argv[0] === 'install' || argv[0] === 'uninstall')) return false;
  let rest: string[];
  try {
    rest = takeConfigFlag(argv).rest;
  } catch {
    return false; // main.ts says what is wrong
  }
  // `postern -C FILE install --import-queue`: install's, not a message to "install".
  if (personality === 'postern' && (rest[0] === 'install' || rest[0] === 'uninstall')) return false;
  const mode = modeOf(rest, queueSelection(rest));
  return !mode || mode === '-bm';
}
