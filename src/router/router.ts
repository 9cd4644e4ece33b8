// router/router.ts: Exim's `smarthost` manualroute router as a pure query: every
// well-formed address goes to the smarthost list with the remote_smtp transport, in
// failover order. No I/O; the scheduler and `-bt` ask it.
import { isRoutableAddress } from '../core/address.js';
import type { HostSpec, Route } from '../core/types.js';

export type Routing = { ok: true; route: Route } | { ok: false; reason: string };

export { isRoutableAddress };

export class Router {
  constructor(private readonly hosts: HostSpec[]) {}

  /** Every host any route may use (the scheduler's dead-host throttle looks at them). */
  destinations(): HostSpec[] {
    return this.hosts;
  }

  route(address: string): Routing {
    if (!isRoutableAddress(address)) return { ok: false, reason: 'Unrouteable address' };
    return { ok: true, route: { router: 'smarthost', transport: 'remote_smtp', hosts: this.hosts } };
  }
}
