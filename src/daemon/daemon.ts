// daemon/daemon.ts: the composition root for `postern -bd`: builds config, spool, log,
// router, transport, scheduler and the receivers, and handles signals (TERM/INT:
// stop listening, finish in-flight deliveries within a bound, exit 0; HUP: reload the
// configuration, keeping the old one if the new one is bad).
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { controlKeyPath } from '../admin/control-client.js';
import { systemClock } from '../core/clock.js';
import { EventBus } from '../core/events.js';
import { failure, usage } from '../core/exit.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import { loadConfig } from '../config/load.js';
import { parseDuration } from '../core/units.js';
import { MainLog } from '../log/mainlog.js';
import { SmtpReceiver } from '../receive/smtp.js';
import { LocalServer } from '../admin/control-server.js';
import { version } from '../core/version.js';
import { LmdbSpool, SpoolUnavailable } from '../spool/lmdb-spool.js';
import { MessageIdGenerator } from '../spool/message-id.js';
import { RESERVE_SIZE, SpaceReserve } from '../spool/reserve.js';
import { rewriteRules } from '../rewrite/load.js';
import { Pickup, STALL } from '../receive/pickup.js';
import { SenderLimits } from '../limits/sender-limits.js';
import { OwnServer } from '../admin/own-server.js';
import { formatEntry } from '../admin/format.js';
import { isLmdbCommitFailure } from '../spool/lmdb-spool.js';
import { changesIdentityInProcess, daemonUser, dropPrivileges, prepareFolders, runAs, startedAs, tidySpool } from './privileges.js';
import { handOverEnv, handOverShell, inheritedListeners } from './listen-fds.js';
import { buildScheduler, schedulerSettings } from './delivery.js';
import type { UserEntry } from '../core/users.js';

const STOP_GRACE = 30_000;
/** How often the spool's partial messages of dead writers, and body files of no message, are swept (and at start). */
const SWEEP_EVERY = 60 * 60_000;

/**
 * How far V8 lets the old generation grow past what the last full GC left before it
 * starts the next one (V8's own choice when unset). The daemon's live heap is small
 * (about 15 MB) while a busy listener allocates fast: with V8's default a full,
 * concurrent mark-compact ran every 0.1–0.7 s under load, and its helper threads spent
 * about 0.25 ms of CPU per relayed message (a quarter of the process's CPU). Growing
 * by 200% first halves that, for about 10 MB more resident memory at the peak.
 */
const HEAP_GROWING_PERCENT = 200;

/**
 * The spool as the SMTP receiver sees it before it is open: the listeners are bound
 * (as root) before the spool is opened (as the daemon's user); a message that could
 * reach DATA in between gets 452.
 */
function openedLater(get: () => LmdbSpool): LmdbSpool {
  return new Proxy({} as LmdbSpool, {
    get(_target, key) {
      let spool: LmdbSpool | undefined;
      try {
        spool = get();
      } catch { /* not declared yet */ }
      if (!spool) throw new SpoolUnavailable('the spool is not open yet');
      const value = Reflect.get(spool, key, spool) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(spool) : value;
    },
  });
}

/**
 * The root daemon on a node that cannot change identity in process (privileges.ts): its
 * listeners bound and its folders set up, it starts itself again as `user`, handing the
 * listening sockets over as systemd would (listen-fds.ts), closes its own copies, and
 * stays as a thin supervisor: signals passed on, the child's exit status its own. The
 * child finds the sockets, skips what only root does, and runs the daemon.
 */
async function superviseAs(owner: UserEntry, receiver: SmtpReceiver, listeners: number): Promise<never> {
  const fds = receiver.listeningFds();
  if (fds.length !== listeners) throw failure(`cannot hand the SMTP listeners to the ${owner.name} user: ${listeners - fds.length} of ${listeners} have no descriptor`);
  const child = runAs(owner, { fds, env: handOverEnv(fds.length, 'smtp'), prefix: handOverShell });
  void receiver.close(); // the child has its own copies now
  return child;
}

/**
 * The listen.smtp addresses the sockets systemd passed (`bound`, as the listener reports
 * them: `127.0.0.1:25`, `[::1]:25`) do not cover, each as one sentence.
 */
export function unlistened(smtp: { name: string; port: number }[], bound: string[]): string[] {
  const key = (name: string, port: number) => {
    const host = name.replace(/^\[(.*)\]$/, '$1');
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  };
  const have = new Set(bound);
  return smtp.filter((l) => !have.has(key(l.name, l.port))).map((l) => `listen.smtp ${key(l.name, l.port)} is not among the sockets systemd passed (${bound.join(' ') || 'none'}): not listened on; the socket unit's ListenStream= decides (systemctl edit postern.socket, then systemctl restart postern.socket postern)`);
}

export async function daemon(argv: string[], configFile: string | undefined): Promise<void> {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  let queueInterval = 30 * 60_000;
  let qFlag = '-q30m';
  for (const a of argv) {
    if (a === '-bd' || a === '-bdf') continue;
    const m = /^-q(.+)$/.exec(a);
    const ms = m ? parseDuration(m[1] as string) : undefined;
    if (ms === undefined || ms <= 0) throw usage(`unknown option ${a} for -bd (expected -q<interval>, such as -q15m)`);
    queueInterval = ms;
    qFlag = a;
  }
  let config = await loadConfig(configFile, { apart: true });
  rewriteRules(config); // a bad email-addresses file: one sentence, exit 1, before any listener is bound
  const owner = daemonUser(config); // an unknown user: one sentence, exit 1
  startedAs(owner); // the daemon a root one started as `user` (superviseAs): that user, or refused
  process.umask(0o027); // a main log made after a rotation is 0640 too
  const events = new EventBus();
  // One ID generator for this process: receiving, pickup and bounces share it.
  const ids = new MessageIdGenerator();
  // A kick without an ID (sendmail, -q) also means "look at the maildrop".
  const kick = (opts: { id?: string; force?: boolean } = {}) => {
    scheduler.kick(opts);
    if (opts.id === undefined && picking) void pickup.run();
  };
  let picking = false; // the maildrop is this process's once it holds the delivery lock
  // [limits]: one counter for SMTP and the pickup, kept across SIGHUP (in memory: a restart forgets it).
  const limits = new SenderLimits(config.limits, { clock: systemClock, events });
  const receiver = new SmtpReceiver({
    hostname: config.hostname, qualifyDomain: config.qualify_domain, relayFrom: config.listen.relay_from,
    maxMessageSize: config.listen.max_message_size, maxRecipients: config.listen.max_recipients,
    maxConnections: config.listen.max_connections, spool: openedLater(() => spool), events, clock: systemClock,
    idleTimeout: config.listen.idle_timeout, maxErrors: config.listen.max_errors,
    ids, kick: (id) => kick({ id }), limits,
  });
  const bound: string[] = [];
  // Listeners handed over (by the root daemon below, or a socket unit), else bound here.
  const handed = inheritedListeners('smtp');
  if (handed) for (const fd of handed) bound.push(await receiver.listenFd(fd));
  else for (const l of config.listen.smtp) bound.push(await receiver.listen(l.name, l.port));
  // Sockets from systemd (postern.socket) are where the daemon listens, whatever
  // listen.smtp says: each address of it they do not cover is said once, in the journal
  // and the main log, with the way to make them agree.
  const notListened = handed ? unlistened(config.listen.smtp, bound) : [];
  for (const a of notListened) process.stderr.write(`postern: ${a}\n`);
  // Listeners are bound: now the folders and their owners; then root is left behind
  // before the spool, the control socket and the delivery lock are opened.
  let spool: LmdbSpool;
  try {
    prepareFolders(config, owner);
    if (owner && process.geteuid?.() === 0) {
      if (!changesIdentityInProcess()) return await superviseAs(owner, receiver, bound.length);
      dropPrivileges(owner);
    }
    tidySpool(config); // as the daemon's user: root never walks a folder that user may change
    spool = LmdbSpool.open(config.spool.directory);
  } catch (err) {
    await receiver.close(); // else the bound listeners would keep a failed start alive
    throw err;
  }
  // Now that the maildrop is there and ours: its copy of the validated configuration,
  // which lets every user's sendmail skip validation (config/load.ts).
  await loadConfig(configFile, { apart: true }).catch(() => undefined);
  // What a crash left: body files (or an older version's chunks) of messages whose
  // receiving process is gone, and body files of no message (a crash before an unlink).
  await spool.sweepIncoming().catch(() => 0);
  const log = new MainLog(config.log.file, config.log.format, () => Date.now());
  events.on((e) => log.write(e));
  // The indexes an older postern's writes may have left behind (a downgrade, then this):
  // mended unless nothing was written since this version's last clean stop. A mend that
  // fails (a full disk) is said, and no reason not to start.
  try {
    spool.mendIndexesIfNeeded();
  } catch (err) {
    events.emit({ type: 'notice', text: `cannot mend the spool's listing indexes (${(err as Error).message}): queue listings may show stale entries until a start mends them` });
  }
  // A full disk is logged at most once a minute (each client gets its 452 anyway).
  let troubleLogged = -Infinity;
  const spoolTrouble = (text: string) => {
    if (Date.now() - troubleLogged < 60_000) return;
    troubleLogged = Date.now();
    events.emit({ type: 'notice', text: `${text}; mail is refused with 452 4.3.1 until space is back (logged once a minute at most)` });
  };
  spool.onWriteError = (err) => spoolTrouble(err.message);
  spool.reserve = new SpaceReserve(config.spool.directory, RESERVE_SIZE);
  spool.reserve.ensure();
  const scheduler = buildScheduler(config, spool, events, queueInterval, ids);
  // [metrics] listen: loaded only when set, so a daemon without it never imports prom-client.
  let metrics: import('../metrics/metrics.js').Metrics | undefined;
  let metricsAt = '';
  if (config.metrics.listen) {
    const { Metrics } = await import('../metrics/metrics.js');
    const m = new Metrics({ events, spool, scheduler, now: () => Date.now() });
    try {
      metricsAt = await m.listen(config.metrics.listen.name, config.metrics.listen.port);
    } catch (err) {
      await m.close();
      await receiver.close();
      throw failure(`cannot listen for metrics on ${config.metrics.listen.name}:${config.metrics.listen.port}: ${(err as Error).message}`);
    }
    metrics = m;
    spool.onSynced = (seconds) => m.observeCommit(seconds);
  }
  const pickup = new Pickup({
    dir: config.spool.maildrop, spool, events, clock: systemClock, ids, hostname: config.hostname, qualifyDomain: config.qualify_domain,
    maxMessageSize: config.listen.max_message_size, maxRecipients: config.listen.max_recipients, kick: (id) => scheduler.kick({ id }),
    // A `sendmail -bs` client may pause for its idle timeout between two writes of a message.
    stall: Math.max(STALL, 2 * config.listen.idle_timeout), limits,
  });
  // The key that lets spool administrators (who can read it) ask for operator actions.
  const controlKey = randomBytes(24).toString('hex');
  try {
    rmSync(controlKeyPath(config.spool.directory), { force: true });
    writeFileSync(controlKeyPath(config.spool.directory), controlKey + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // A full disk must not keep the daemon from starting (it delivers, which frees
    // space); -Mg then runs in the command under the delivery lock instead.
    spoolTrouble(`cannot write ${controlKeyPath(config.spool.directory)}: ${(err as Error).message}`);
  }
  const local = new LocalServer({ spoolDir: config.spool.directory, kick, controlKey, giveUp: (id, user) => scheduler.giveUp(id, user),
    bulk: async (action, ids, user) => {
      const { applyAction } = await import('../admin/actions.js');
      const results = await applyAction(spool, events, action, ids, user, (id) => scheduler.isActive(id));
      if (action === 'thaw' || typeof action === 'object') scheduler.kick();
      return results;
    } });
  await local.listen();
  // Any local user's own messages (SPEC's exception): listed and removed through the maildrop's public socket.
  const own = new OwnServer({ maildrop: config.spool.maildrop, handlers: {
    list: (login) => {
      const now = Date.now();
      let text = '';
      for (const r of spool.list()) if (r.user === login) text += formatEntry(r, now);
      return text;
    },
    remove: async (ids, login) => {
      const theirs = ids.filter((id) => spool.load(id)?.user === login);
      const { applyAction } = await import('../admin/actions.js');
      const results = await applyAction(spool, events, 'remove', theirs, login, (id) => scheduler.isActive(id));
      return ids.map((id) => {
        const r = results[theirs.indexOf(id)];
        return r === 'done' || r === 'locked' ? r : 'gone';
      });
    },
  } });
  await own.listen();
  events.emit({ type: 'notice', text: `postern ${version()} daemon started: pid=${process.pid}, ${qFlag}, listening for SMTP on ${bound.join(' ')}${metricsAt ? ` (metrics on http://${metricsAt}/metrics)` : ''}` });
  for (const text of notListened) events.emit({ type: 'notice', text });

  // Mail is accepted at once; deliveries start when this process holds the delivery
  // lock (a `postern -q` run may hold it for a while; it is never taken from a live one).
  let release = () => {};
  let lockTimer: NodeJS.Timeout | undefined;
  const takeLock = () => {
    let lock: ReturnType<typeof acquireDeliveryLock>;
    try {
      lock = acquireDeliveryLock(config.spool.directory);
    } catch (err) {
      // No inode left, say: keep accepting (452 while the disk is full) and try again.
      spoolTrouble(`cannot take the delivery lock: ${(err as Error).message}`);
      lockTimer = setTimeout(takeLock, 2000);
      return;
    }
    if (lock.ok) {
      release = lock.release;
      scheduler.start();
      picking = true;
      pickup.start(); // the maildrop is drained by the process that delivers
      return;
    }
    if (!lockTimer) events.emit({ type: 'notice', text: `waiting for the delivery lock held by pid ${lock.heldBy}` });
    lockTimer = setTimeout(takeLock, 2000);
  };
  takeLock();
  // The start-up sweep (above) again every hour: a writer that dies while this daemon
  // runs on (a queue command's pickup), or one the start-up sweep could not yet tell
  // dead, leaves its file. Armed only now: a start that fails must not wait on it.
  let sweepTimer = systemClock.at(Date.now() + SWEEP_EVERY, function sweep() {
    void spool.sweepIncoming().catch(() => 0).finally(() => { sweepTimer = systemClock.at(Date.now() + SWEEP_EVERY, sweep); });
  });

  let stopping = false;
  const stop = async (signal: string, why = `${signal} received: stopping`) => {
    if (stopping) return;
    stopping = true;
    events.emit({ type: 'notice', text: why });
    // And in the journal, as the start's "ready" line is (journalctl -u postern).
    process.stderr.write(`postern: ${why}\n`);
    await Promise.all([receiver.close(), local.close(), own.close(), metrics?.close()]);
    await pickup.stop();
    await scheduler.stop(STOP_GRACE);
    events.emit({ type: 'notice', text: `postern daemon stopped: pid=${process.pid}` });
    process.stderr.write(`postern: stopped\n`);
    if (lockTimer) clearTimeout(lockTimer);
    sweepTimer.cancel();
    await log.close();
    try {
      spool.stampIndexes();
    } catch { /* a full disk: the next start mends */ }
    await spool.close();
    release();
    process.exit(0);
  };
  // A bug (Postfix's panic): log it and exit non-zero; systemd restarts us and the
  // spool's due index says what is left to do. Never carry on in an unknown state.
  const panic = (err: unknown) => {
    // lmdb-js rejects a promise of its own, beside the one our write awaited, when a
    // commit fails: the write's owner has handled it (452, retried settle).
    if (isLmdbCommitFailure(err)) return spoolTrouble('cannot write the spool (disk full or I/O error)');
    events.emit({ type: 'notice', text: `panic: ${(err as Error)?.stack ?? String(err)}` });
    void log.close().finally(() => process.exit(70));
  };
  process.on('uncaughtException', panic);
  process.on('unhandledRejection', panic);
  // Reloads are numbered: of two SIGHUPs close together, the later one's file is kept,
  // whichever validation ends last (each may take a worker thread's time).
  let reloads = 0;
  const reload = async () => {
    log.reopen();
    const mine = ++reloads;
    try {
      // A reload overtaken by a later one writes no copies (sendmail would find them stale).
      const next = await loadConfig(configFile, { apart: true, keep: () => mine === reloads });
      if (mine !== reloads) return;
      scheduler.reconfigure(schedulerSettings(next));
      limits.reconfigure(next.limits);
      // The spool's folders stay this process's until a restart, but sendmail follows
      // the file at once: say so, or mail would wait unseen in a maildrop nobody watches.
      const moved = (['directory', 'maildrop'] as const).filter((k) => next.spool[k] !== config.spool[k]);
      const old = config.spool;
      config = next;
      events.emit({ type: 'notice', text: `SIGHUP received: configuration reloaded from ${config.file} (listeners, spool and log keep their old settings until a restart)` });
      for (const k of moved) {
        events.emit({ type: 'notice', text: `SIGHUP received: spool.${k} changed from ${old[k]} to ${next.spool[k]}: this daemon goes on with the old one, while sendmail already uses the new one; restart the daemon` });
      }
    } catch (err) {
      if (mine !== reloads) return;
      events.emit({ type: 'notice', text: `SIGHUP received: ${(err as Error).message}; keeping the old configuration` });
    }
  };
  const { notifyReady } = await import('./sd-notify.js');
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // daemon.idle_exit: only a daemon systemd started on its socket unit (the sockets came
  // from it, and it runs as a unit), which systemd starts again for the next connection
  // (the sockets stay open: a connection racing the exit waits in their queue) or, with
  // postern-maildrop.path, for a sendmail file. Mail waiting for a retry keeps it up.
  const idleExit = config.daemon.idle_exit;
  if (idleExit !== undefined && handed && process.env.INVOCATION_ID) {
    let busySince = Date.now();
    const maildropBusy = () => {
      try {
        return readdirSync(config.spool.maildrop).some((n) => !n.startsWith('.'));
      } catch {
        return true;
      }
    };
    const every = Math.max(250, Math.min(idleExit / 4, 30_000));
    const idleCheck = setInterval(() => {
      const a = receiver.activity();
      const now = Date.now();
      if (a.sessions > 0 || spool.count() > 0 || maildropBusy()) busySince = now;
      const quiet = now - Math.max(busySince, a.lastConnection);
      if (quiet >= idleExit) {
        clearInterval(idleCheck);
        void stop('idle', `idle for ${Math.round(quiet / 1000)} s (daemon.idle_exit): nothing queued, no connection; exiting, systemd starts postern again on demand`);
      }
    }, every);
    idleCheck.unref();
  }
  process.on('SIGHUP', () => void reload());
  // Exim admins send USR1 out of habit: here it reopens the main log (never an inspector).
  process.on('SIGUSR1', () => log.reopen());
  // Ready only now that every signal has its handler and everything they call exists:
  // a TERM or HUP right after this line is a clean stop or a reload.
  process.stderr.write(`postern: ready, listening for SMTP on ${bound.join(' ')}${metricsAt ? ` (metrics on ${metricsAt})` : ''}\n`);
  notifyReady((m) => process.stderr.write(`postern: ${m}\n`));
}
