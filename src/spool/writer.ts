// spool/writer.ts: who is writing a message not yet committed, and whether that writer
// still lives. A writer is its pid and its process start time (field 22 of
// /proc/PID/stat, clock ticks since boot), so a reused pid, or a killed writer that is
// still a zombie, is not taken for the writer. Used by the spool's sweep of `incoming`
// entries and bodies/ files; reads /proc only.
import { readFileSync } from 'node:fs';

/** What an `incoming` entry records of its writer. */
export interface Writer {
  pid: number;
  /** When the entry was made (ms since epoch): the only clue in entries of older versions. */
  start: number;
  /** The writer's process start time, from /proc (absent without /proc, and in older entries). */
  pstart?: number;
}

/** State (R, S, Z, ...) and start time of a process as /proc/PID/stat gives them; undefined when unreadable. */
export function procStat(pid: number | 'self'): { state: string; pstart: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const pstart = Number(fields[19]);
  return fields[0] && Number.isInteger(pstart) ? { state: fields[0], pstart } : undefined;
}

let self: Writer | undefined;

/** This process as a writer. */
export function thisWriter(): Writer {
  if (!self) {
    const st = procStat('self');
    self = { pid: process.pid, start: 0, ...(st ? { pstart: st.pstart } : {}) };
  }
  return { ...self, start: Date.now() };
}

/** Whether the process behind `pid` exists (EPERM: it does, as another user). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the writer of an entry still lives. `startedAt` (ms since epoch) is when this
 * process started: an entry of older versions with this pid and an earlier time is of a
 * previous process. Without /proc for the pid (none, or hidepid hiding another user's
 * processes) only the pid can be asked: a writer that may live is taken as living.
 */
export function writerAlive(w: Writer, startedAt: number): boolean {
  if (w.pid === process.pid) {
    const mine = thisWriter().pstart;
    return w.pstart !== undefined && mine !== undefined ? w.pstart === mine : w.start >= startedAt;
  }
  const st = procStat(w.pid);
  if (!st) return exists(w.pid);
  if (st.state === 'Z' || st.state === 'X') return false; // killed, not yet reaped
  return w.pstart === undefined || st.pstart === w.pstart;
}
