// core/exit.ts: sysexits codes and the UsageError/DataError/TempError a command
// throws to end with one plain sentence on stderr and the right exit status.

export const EX = { OK: 0, FAIL: 1, USAGE: 64, DATAERR: 65, SOFTWARE: 70, TEMPFAIL: 75, NOPERM: 77 } as const;

export class CommandError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}
export const usage = (msg: string) => new CommandError(msg, EX.USAGE);
export const dataError = (msg: string) => new CommandError(msg, EX.DATAERR);
export const tempError = (msg: string) => new CommandError(msg, EX.TEMPFAIL);
export const failure = (msg: string) => new CommandError(msg, EX.FAIL);
export const noPermission = (msg: string) => new CommandError(msg, EX.NOPERM);
