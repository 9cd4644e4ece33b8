// test/powerloss/targets.ts: the targeted cuts, one before and one after each durability
// step. LazyFS kills itself at the first operation that matches (a path regex on the
// folder below the mount). Its crash faults know unlink, truncate, fsync (fdatasync is
// an fsync with datasync set), write, create, open, read, rename, link and symlink; a
// chmod (the maildrop file's completion mark) is not among them, so "after the first
// fsync of a maildrop file" is the cut before the mark and "before the unlink" one after.
import type { Target } from './harness.js';

const DROP = '.*/spool-maildrop/[0-9a-f]{32}';
const BODY = '.*/spool/bodies/[0-9A-Za-z-]+';
const MDB = '.*/spool/spool\\.mdb';
const sendmailOnly = { smtpClients: 0, operator: false, big: 0.3 } as const;
const bigOnly = { sendmailRoot: false, sendmailUser: false, operator: false, big: 1 } as const;

export const TARGETS: Target[] = [
  // The maildrop file (sendmail): its data, its sync, then the pickup's removal after the commit.
  { name: 'maildrop file: before its first write', timing: 'before', op: 'write', from: DROP, load: sendmailOnly },
  { name: 'maildrop file: before its fsync', timing: 'before', op: 'fsync', from: DROP, load: sendmailOnly },
  { name: 'maildrop file: after its fsync (before the completion mark)', timing: 'after', op: 'fsync', from: DROP, load: sendmailOnly },
  { name: 'maildrop file: before the pickup removes it (after the commit)', timing: 'before', op: 'unlink', from: DROP, load: sendmailOnly },
  { name: 'maildrop file: after the pickup removes it', timing: 'after', op: 'unlink', from: DROP, load: sendmailOnly },
  { name: 'maildrop file: after its create', timing: 'after', op: 'create', from: DROP, load: { ...sendmailOnly, sendmailRoot: false } },
  // The setgid helper (an ordinary user's sendmail) writes an unnamed file (O_TMPFILE) and links it in, where the file system can.
  // FUSE (so LazyFS) has no O_TMPFILE: the helper takes its named-file path there, no link comes,
  // and these two rounds end by the harness's kill 8 s after arming (a load of the helper alone).
  { name: 'maildrop file (helper): before its link', timing: 'before', op: 'link', from: '.*', to: DROP, load: { ...sendmailOnly, sendmailRoot: false } },
  { name: 'maildrop file (helper): after its link', timing: 'after', op: 'link', from: '.*', to: DROP, load: { ...sendmailOnly, sendmailRoot: false } },
  // The body file of a big message (SMTP past 1 MB).
  { name: 'body file: after its create', timing: 'after', op: 'create', from: BODY, load: bigOnly },
  { name: 'body file: before a write', timing: 'before', op: 'write', from: BODY, load: bigOnly },
  { name: 'body file: before its fsync', timing: 'before', op: 'fsync', from: BODY, load: bigOnly },
  { name: 'body file: after its fsync (before the commit)', timing: 'after', op: 'fsync', from: BODY, load: bigOnly },
  { name: 'body file: before its unlink (-Mrm or delivery)', timing: 'before', op: 'unlink', from: BODY, load: { ...bigOnly, operator: true } },
  { name: 'body file: after its unlink (its removal committed: synced first?)', timing: 'after', op: 'unlink', from: BODY, load: { ...bigOnly, operator: true } },
  // The spool's commit: LMDB writes the data pages, fdatasyncs, writes the meta page, fdatasyncs.
  { name: 'spool commit: before a write', timing: 'before', op: 'write', from: MDB },
  { name: 'spool commit: before its fdatasync', timing: 'before', op: 'fsync', from: MDB },
  { name: 'spool commit: after its first fdatasync (data pages synced, meta page not)', timing: 'after', op: 'fsync', from: MDB },
  // The reserve file (made at the daemon's start).
  { name: 'reserve: after its create', timing: 'after', op: 'create', from: '.*/spool/reserve', atStart: true },
  { name: 'reserve: after its first write', timing: 'after', op: 'write', from: '.*/spool/reserve', atStart: true },
  // The delivery lock (a symlink made at the daemon's start).
  { name: 'delivery lock: before its symlink', timing: 'before', op: 'symlink', from: '.*', to: '.*/spool/deliver\\.lock', atStart: true },
  { name: 'delivery lock: after its symlink', timing: 'after', op: 'symlink', from: '.*', to: '.*/spool/deliver\\.lock', atStart: true },
  // Nothing runs on after the cut (found by random cuts at 446 and 831 ms): a root sendmail
  // still starting when the power went wrote its drop file into the bare folder under the
  // mount point once the dead mount was taken down, exited 0, and its message counted as
  // acknowledged and lost. Our kill while the first sendmail starts; the round's check
  // finds anything written under the mount point (harness.ts, checkBare).
  { name: 'cut while the first sendmail starts (nothing may outlive the cut)', timing: 'before', op: 'none', killAtMs: 250, load: { smtpClients: 0, operator: false, sendmailUser: false, big: 0 } },
  { name: 'cut while the first sendmail starts, 600 ms', timing: 'before', op: 'none', killAtMs: 600, load: { smtpClients: 0, operator: false, sendmailUser: false, big: 0 } },
  // The one rename on these folders: the configuration caches (written aside, renamed in).
  { name: 'config cache: after its rename into the spool', timing: 'after', op: 'rename', from: '.*', to: '.*/spool/config\\.cache\\.json', atStart: true },
  { name: 'config cache: after its rename into the maildrop', timing: 'after', op: 'rename', from: '.*', to: '.*/spool-maildrop/\\.config\\.cache\\.json', atStart: true },
];

/**
 * Torn writes of the spool file (POWERLOSS_TORN=1; not in the default rounds): LazyFS cuts
 * a write anywhere, also inside one 512-byte sector, which disks write whole. LMDB counts
 * on that for its meta pages (the 128-byte writes below 8 KB, at 2088 and 4136 here): torn there, the
 * meta page names the new transaction over the roots of an old one, and the spool no
 * longer opens (an assertion in mdb_page_touch, or "duplicate value error"). Tears of
 * data pages (several KB) are harmless. See README, Power-loss harness.
 */
export const TORN_TARGETS: Target[] = [
  // (Set in LazyFS's configuration at the mount: the Nth write to the file since then.)
  { name: 'spool commit: torn 40th write (first of 2 parts kept)', timing: 'before', op: 'write', torn: { file: 'spool/spool.mdb', occurrence: 40, parts: 2, persist: [1] } },
  { name: 'spool commit: torn 150th write (second of 2 parts kept)', timing: 'before', op: 'write', torn: { file: 'spool/spool.mdb', occurrence: 150, parts: 2, persist: [2] } },
  { name: 'spool commit: torn 400th write (parts 1 and 3 of 4 kept)', timing: 'before', op: 'write', torn: { file: 'spool/spool.mdb', occurrence: 400, parts: 4, persist: [1, 3] } },
];
