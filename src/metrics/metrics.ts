// metrics/metrics.ts: the daemon's Prometheus endpoint ([metrics] listen; off unless
// set). Counters follow the event bus (arrivals, recipients' results with their cause,
// rejections, [limits] episodes); the spool's commit times come from its onSynced hook; the queue gauges
// and smarthost states are read at scrape time from the spool's entry counts and the
// scheduler (never a scan of the queue). One registry per instance: no global state.
// The port is bounded as node_exporter's is: at most METRICS_LIMITS.max connections (a
// connection waiting for its request gives way to a newer one, the peer holding the most
// first), the request within 5 s of the connection, 5 s of keep-alive.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EventBus } from '../core/events.js';
import { ConnectionGuard, type GuardLimits } from '../core/conn-guard.js';

/** A scraper or two; each connection is an open file. firstByte 0: node:http's parser reads the bytes, not us. */
const METRICS_LIMITS: GuardLimits = { max: 32, firstByte: 0, request: 5_000 };
/** A scrape's answer and an idle keep-alive connection: each at most this long. */
const KEEP_ALIVE = 5_000;

/** What the gauges read at scrape time. */
export interface MetricsSources {
  events: EventBus;
  spool: { stats(): { messages: number; frozen: number; due: number; oldestArrival: number | undefined } };
  scheduler: { activeCount(): number; hostStates(): { host: string; up: boolean }[] };
  now: () => number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly commit: Histogram;
  private readonly unsubscribe: () => void;
  private server: Server | undefined;
  private readonly guard: ConnectionGuard;

  constructor(s: MetricsSources, limits: Partial<GuardLimits> = {}) {
    this.guard = new ConnectionGuard({ ...METRICS_LIMITS, ...limits });
    const registers = [this.registry];
    const received = new Counter({ name: 'postern_received_messages_total', help: 'Messages accepted into the spool, by protocol (Exim\'s P=).',
      labelNames: ['protocol'], registers });
    const recipients = new Counter({ name: 'postern_recipients_total',
      help: 'Recipient results of delivery attempts: delivered, deferred or failed; cause (refused, timeout, reply, ...) for deferred and failed.',
      labelNames: ['result', 'cause'], registers });
    const rejections = new Counter({ name: 'postern_smtp_rejections_total', help: 'SMTP commands refused by policy, by stage (connect, mail, rcpt, data).',
      labelNames: ['stage'], registers });
    const episodes = new Counter({ name: 'postern_limit_episodes_total',
      help: 'Episodes of a sender over a [limits] rate (its mail accepted and frozen), by limit (per_user, per_client): one each, not one per message.',
      labelNames: ['limit'], registers });
    // Series that exist from the start (a rate() over a counter born later misses its first step).
    recipients.inc({ result: 'delivered', cause: '' }, 0);
    for (const stage of ['connect', 'mail', 'rcpt', 'data']) rejections.inc({ stage }, 0);
    for (const limit of ['per_user', 'per_client']) episodes.inc({ limit }, 0);
    this.commit = new Histogram({ name: 'postern_spool_commit_seconds',
      help: 'Spool write transactions (new mail, delivery results, operator actions), from the call to the sync on disk.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
    const spool = s.spool;
    const scheduler = s.scheduler;
    const now = s.now;
    new Gauge({ name: 'postern_queue_messages',
      help: 'Messages in the spool: active (in the delivery window), deferred (waiting for a retry or a queue run), frozen.',
      labelNames: ['state'], registers,
      collect() {
        const st = spool.stats();
        const active = Math.min(scheduler.activeCount(), st.messages - st.frozen);
        this.set({ state: 'active' }, active);
        this.set({ state: 'deferred' }, Math.max(0, st.messages - st.frozen - active));
        this.set({ state: 'frozen' }, st.frozen);
      } });
    new Gauge({ name: 'postern_queue_oldest_seconds', help: 'Age of the oldest message in the spool (0 when it is empty).', registers,
      collect() {
        const { oldestArrival } = spool.stats();
        this.set(oldestArrival === undefined ? 0 : Math.max(0, (now() - oldestArrival) / 1000));
      } });
    new Gauge({ name: 'postern_smarthost_up', help: '1 unless the smarthost (name:port) failed as a host and has not answered since.',
      labelNames: ['host'], registers,
      collect() {
        this.reset();
        for (const h of scheduler.hostStates()) this.set({ host: h.host }, h.up ? 1 : 0);
      } });
    this.unsubscribe = s.events.on((e) => {
      switch (e.type) {
        case 'received': received.inc({ protocol: e.protocol }); break;
        case 'delivered': recipients.inc({ result: 'delivered', cause: '' }); break;
        case 'deferred': case 'failed': recipients.inc({ result: e.type, cause: e.result.cause }); break;
        case 'rejected': rejections.inc({ stage: e.stage.toLowerCase() }); break;
        case 'limited': episodes.inc({ limit: e.limit }); break;
        default: break;
      }
    });
  }

  /** The spool's onSynced hook. */
  observeCommit(seconds: number): void {
    this.commit.observe(seconds);
  }

  /** Serves GET /metrics on host:port; resolves with the bound address ("127.0.0.1:9725"). */
  listen(host: string, port: number): Promise<string> {
    const guard = this.guard;
    const server = createServer({ headersTimeout: guard.limits.request, requestTimeout: guard.limits.request,
      keepAliveTimeout: KEEP_ALIVE, connectionsCheckingInterval: 1_000 }, (req, res) => {
      // Being answered: not evicted; the answer then has KEEP_ALIVE to reach a slow reader,
      // after which the connection waits for its next request as any new one does.
      const sock = req.socket;
      guard.busy(sock, KEEP_ALIVE);
      res.once('finish', () => guard.idle(sock));
      const path = (req.url ?? '').split('?')[0];
      if (req.method !== 'GET' || path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('postern serves only GET /metrics\n');
        return;
      }
      this.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
      }, (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
      });
    });
    server.on('connection', (sock: Socket) => guard.admit(sock, sock.remoteAddress ?? ''));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const a = server.address() as AddressInfo;
        resolve(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
      });
    });
  }

  close(): Promise<void> {
    this.unsubscribe();
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
