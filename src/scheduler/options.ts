// scheduler/options.ts: what the scheduler is given (its options, the part of them a
// reload may change) and what its parts share (the settings of now, stopping). Types
// only: the window, an attempt, the host watch and reports read them without importing
// the scheduler that composes them.
import type { Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { Router } from '../router/router.js';
import type { MessageIdGenerator } from '../spool/message-id.js';
import type { Spool } from '../spool/spool.js';
import type { Transport } from '../transports/transport.js';
import type { RetryRule } from './retry-rules.js';

export interface SchedulerOptions {
  spool: Spool;
  router: Router;
  transport: Transport;
  clock: Clock;
  events: EventBus;
  retryRules: RetryRule[];
  /** retry.timeout_frozen_after, ms after arrival: a frozen message is then cancelled (0: never). */
  timeoutFrozenAfter: number;
  /** retry.ignore_bounce_errors_after, ms after arrival: a frozen bounce gets one last try, then is discarded. */
  ignoreBounceErrorsAfter: number;
  /** retry.delay_warning, ms after arrival. */
  delayWarning: number[];
  activeLimit: number;
  concurrency: number;
  /** -q<interval>: the longest a due message waits for a look, ms. */
  queueInterval: number;
  /** smarthost.probe_interval, ms: how often a host that is down is probed (0: never). */
  probeInterval?: number;
  /** For bounces: names, and this process's one ID generator (shared with receiving). */
  hostname: string;
  qualifyDomain: string;
  ids: MessageIdGenerator;
  user?: string;
}

/** What a configuration reload (SIGHUP) may change while the scheduler runs. */
export type SchedulerSettings = Pick<SchedulerOptions, 'router' | 'transport' | 'retryRules' | 'delayWarning' | 'activeLimit' | 'concurrency'
  | 'timeoutFrozenAfter' | 'ignoreBounceErrorsAfter'> & Partial<Pick<SchedulerOptions, 'probeInterval'>>;

/** What the scheduler's parts share: the settings of now (replaced on SIGHUP), and whether it is stopping. */
export interface SchedulerState {
  o: SchedulerOptions;
  stopping: boolean;
}
