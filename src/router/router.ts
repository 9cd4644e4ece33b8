// router/router.ts: Exim's `smarthost` manualroute router as a pure query: every
// well-formed address goes to the smarthost list with the remote_smtp transport, in
// failover order. Before it, Debian's `hub_user` (a satellite with a readhost): a local
// user's address is redirected to user@readhost and goes out by `hub_user_smarthost`
// (after Debian's system_aliases, when rewrite.aliases is set), the route then naming
// the address sent. No I/O; the scheduler and `-bt` ask it.
import { isRoutableAddress } from '../core/address.js';
import type { HostSpec, Route } from '../core/types.js';

export type Routing = { ok: true; route: Route } | { ok: false; reason: string };


export class Router {
  /** `redirect`: where a recipient is redirected and by which router (rewrite/rewriter.ts's rewriteRecipient), or undefined. */
  constructor(private readonly hosts: HostSpec[], private readonly redirect?: (address: string) => { address: string; router: string } | undefined) {}

  /** Every host any route may use (the scheduler's dead-host throttle looks at them). */
  destinations(): HostSpec[] {
    return this.hosts;
  }

  route(address: string): Routing {
    if (!isRoutableAddress(address)) return { ok: false, reason: 'Unrouteable address' };
    const to = this.redirect?.(address);
    if (to !== undefined && to.address !== address) {
      return { ok: true, route: { router: to.router, transport: 'remote_smtp', hosts: this.hosts, address: to.address } };
    }
    return { ok: true, route: { router: 'smarthost', transport: 'remote_smtp', hosts: this.hosts } };
  }
}
