// scheduler/host-watch.ts: the smarthosts' health as the scheduler sees it. Keeps each
// host's retry state (host-state.ts); probes a host that is down every probe_interval
// (connect, EHLO, TLS and AUTH as configured, QUIT, through the transport); and
// remembers which messages wait only for their hosts (heldFor), so that when a host
// answers again, after a delivery or a probe, those are made due at once, in one log
// line, never found by a scan.
import type { Timer } from '../core/clock.js';
import { hostKey, type HostLabel, type HostSpec, type HostTrouble } from '../core/types.js';
import type { ProbeResult } from '../transports/transport.js';
import { HostRetryState } from './host-state.js';
import type { SchedulerState } from './options.js';

/** What the watch needs of the active window. */
export interface WindowView {
  has(id: string): boolean;
  /** Makes these due at once, whatever their due keys say. */
  flush(ids: Iterable<string>): void;
}

export class HostWatch {
  private readonly retry = new HostRetryState();
  /** Messages deferred only because every host of their route was down: host → IDs (what its return makes due). */
  private readonly heldFor = new Map<string, Set<string>>();
  /** The armed probe of each host that is down. */
  private readonly probes = new Map<string, Timer>();

  constructor(private readonly s: SchedulerState, private readonly window: WindowView) {}

  /** The hosts of a route that may be tried at `now` (not waiting for their retry time). */
  usable(hosts: HostSpec[], now: number): HostSpec[] {
    return this.retry.usable(hosts, now);
  }

  /** When every one of `hosts` waits for its retry time: the earliest of those times; else undefined. */
  allWaitUntil(hosts: HostSpec[], now: number): number | undefined {
    return this.retry.allWaitUntil(hosts, now);
  }

  /** Each smarthost (name:port) and whether it is up: not failed as a host since it last answered. */
  states(): { host: string; up: boolean }[] {
    return this.s.o.router.destinations().map((h) => ({ host: hostKey(h), up: !this.retry.has(h) }));
  }

  /** -qf, -M: every host's retry time forgotten. */
  forget(): void {
    this.retry.clear();
  }

  /** A host failed as a host (`at`: when): it waits for its retry time, and is probed meanwhile. */
  failed(t: HostTrouble, at: number): void {
    this.retry.failed(t.host, t, this.s.o.retryRules, at);
    this.probeLater({ name: t.host.name, port: t.host.port });
  }

  /** A host answered a delivery: back from a retry wait, its held mail is due now. */
  answered(h: HostSpec, label: HostLabel): void {
    if (this.retry.succeeded(h)) this.hostBack(h, label);
  }

  /** New settings (SIGHUP): retry data kept for the hosts still configured; mail held for the others is due now. */
  reconfigure(): void {
    const kept = this.s.o.router.destinations();
    this.retry.clear(kept);
    const keys = new Set(kept.map(hostKey));
    for (const [k, t] of this.probes) if (!keys.has(k)) { t.cancel(); this.probes.delete(k); }
    for (const [k, ids] of [...this.heldFor]) {
      if (keys.has(k)) continue;
      this.window.flush(ids);
      this.heldFor.delete(k);
    }
  }

  stop(): void {
    for (const t of this.probes.values()) t.cancel();
    this.probes.clear();
  }

  /** After a settle: is the message held back for its hosts (then their return makes it due), or not any more? */
  hold(id: string, hosts: HostSpec[] | undefined): void {
    for (const set of this.heldFor.values()) set.delete(id);
    if (hosts === undefined) return;
    if (this.retry.allWaitUntil(hosts, this.s.o.clock.now()) === undefined) {
      // A host came back while this attempt ran: due again at once.
      this.window.flush([id]);
      return;
    }
    for (const h of hosts) {
      const k = hostKey(h);
      const set = this.heldFor.get(k) ?? new Set<string>();
      set.add(id);
      this.heldFor.set(k, set);
    }
  }

  /** Arms a probe of a host that failed, probe_interval from now (one per host). */
  private probeLater(host: HostSpec): void {
    const k = hostKey(host);
    const o = this.s.o;
    const every = o.probeInterval ?? 0;
    if (!o.transport.probe || every <= 0 || this.probes.has(k) || this.s.stopping) return;
    if (!o.router.destinations().some((d) => hostKey(d) === k)) return;
    this.probes.set(k, o.clock.at(o.clock.now() + every, () => void this.probe(host)));
  }

  /** Connect, EHLO (TLS, AUTH), QUIT: back means up again; else another probe later. */
  private async probe(host: HostSpec): Promise<void> {
    const k = hostKey(host);
    const transport = this.s.o.transport;
    if (this.s.stopping || !this.retry.has(host) || !transport.probe) {
      this.probes.delete(k);
      return;
    }
    let r: ProbeResult;
    try {
      r = await transport.probe(host);
    } catch (err) {
      r = { ok: false, host: { name: host.name, ip: host.name, port: host.port }, trouble: { cause: 'local', note: (err as Error).message } };
    }
    this.probes.delete(k);
    if (this.s.stopping) return;
    if (r.ok) {
      if (this.retry.succeeded(host)) this.hostBack(host, r.host);
    } else if (this.retry.has(host)) {
      this.probeLater(host);
    }
  }

  /** A host answered again: everything held back only for it is due now, in one log line. */
  private hostBack(host: HostSpec, label: HostLabel): void {
    const k = hostKey(host);
    this.probes.get(k)?.cancel();
    this.probes.delete(k);
    const ids = this.heldFor.get(k) ?? new Set<string>();
    this.heldFor.delete(k);
    const due: string[] = [];
    for (const id of ids) {
      for (const other of this.heldFor.values()) other.delete(id);
      // One in the window right now settles on its own (hold() sees the host is back).
      if (!this.window.has(id)) due.push(id);
    }
    this.window.flush(due);
    this.s.o.events.emit({ type: 'hostBack', host: label, due: due.length });
  }
}
