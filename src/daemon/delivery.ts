// daemon/delivery.ts: the delivery machinery built from a configuration (router,
// smarthost transport, scheduler settings, the scheduler), for the daemon and for a
// queue run with no daemon (deliverHere: -q, -M and postern-qgrep --deliver deliver
// in the command itself, once, under the delivery lock). Does not listen or pick up.
import { userInfo } from 'node:os';
import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { EventBus } from '../core/events.js';
import { tempError } from '../core/exit.js';
import { MainLog } from '../log/mainlog.js';
import { rewriteRules } from '../rewrite/load.js';
import { rewriteHeaders, rewriteRecipient, rewriteSender } from '../rewrite/rewriter.js';
import { Router } from '../router/router.js';
import { Scheduler, type SchedulerSettings } from '../scheduler/scheduler.js';
import type { LmdbSpool } from '../spool/lmdb-spool.js';
import { acquireDeliveryLock } from '../spool/lock.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import { RESERVE_SIZE, SpaceReserve } from '../spool/reserve.js';
import { SmtpTransport } from '../transports/smtp.js';

/** The smarthost transport; `rules`: [rewrite], applied to the sender and headers as they leave. */
export function buildTransport(config: Config, rules = rewriteRules(config)): SmtpTransport {
  const s = config.smarthost;
  return new SmtpTransport({
    heloName: config.hostname, tls: s.tls, timeout: s.timeout, clock: systemClock,
    ...(rules ? { rewrite: { sender: (a: string) => rewriteSender(a, rules), headers: (h: string) => rewriteHeaders(h, rules) } } : {}),
    ...(s.tls_ca_file ? { tlsCaFile: s.tls_ca_file } : {}),
    ...(s.auth_user !== undefined ? { authUser: s.auth_user } : {}),
    ...(s.auth_password_file ? { authPasswordFile: s.auth_password_file } : {}),
  });
}

/** The router: the smarthost, after Debian's hub_user when a readhost is set. */
export function routerFor(config: Config, rules = rewriteRules(config)): Router {
  return new Router(config.smarthost.hosts, rules?.hubUser ? (a) => rewriteRecipient(a, rules) : undefined);
}

/** The parts of the scheduler that come from the configuration (and change on SIGHUP). */
export function schedulerSettings(config: Config): SchedulerSettings {
  // Read again at each reload: an edited email-addresses file (or a new login) is seen on SIGHUP.
  const rewrite = rewriteRules(config);
  return {
    router: routerFor(config, rewrite),
    transport: buildTransport(config, rewrite),
    retryRules: config.retry.rules,
    timeoutFrozenAfter: config.retry.timeout_frozen_after,
    ignoreBounceErrorsAfter: config.retry.ignore_bounce_errors_after,
    delayWarning: config.retry.delay_warning,
    activeLimit: config.queue.active_limit,
    concurrency: config.smarthost.connections,
    probeInterval: config.smarthost.probe_interval,
  };
}

export function buildScheduler(config: Config, spool: LmdbSpool, events: EventBus, queueInterval: number,
  ids: MessageIdGenerator): Scheduler {
  return new Scheduler({
    spool, events, clock: systemClock, queueInterval, ids, hostname: config.hostname, qualifyDomain: config.qualify_domain,
    user: login(), ...schedulerSettings(config),
  });
}

/** The login postern runs as: U= on the bounces it sends. */
export function login(): string {
  try {
    return userInfo().username;
  } catch {
    return 'postern';
  }
}

/**
 * One pass over what is due now, in this process (no daemon answered): if no other
 * process is delivering from this spool. Nothing that comes due later in this run.
 */
export async function deliverHere(config: Config, spool: LmdbSpool, idGen: MessageIdGenerator): Promise<void> {
  const lock = acquireDeliveryLock(config.spool.directory);
  if (!lock.ok) {
    throw tempError(`another postern process (pid ${lock.heldBy}) is delivering from this spool and did not answer; try again`);
  }
  // On a full disk this run, too, may spend the daemon's reserve to record its results.
  spool.reserve = new SpaceReserve(config.spool.directory, RESERVE_SIZE);
  const events = new EventBus();
  const log = new MainLog(config.log.file, config.log.format, Date.now);
  events.on((e) => log.write(e));
  const scheduler = buildScheduler(config, spool, events, 24 * 3_600_000, idGen);
  scheduler.start();
  await scheduler.whenIdle();
  await scheduler.stop(0);
  await log.close();
  lock.release();
}
