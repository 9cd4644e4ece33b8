// config/schema.ts: the TOML keys of SPEC.md as one zod schema, with defaults. The
// Config type is derived from it; units ("50M", "15m") are turned into numbers here
// so the rest of postern only sees bytes and milliseconds.
import { z } from 'zod';
import type { RetryRule } from '../core/retry-rules.js';
import { parseDuration, parseRate, parseSize } from '../core/units.js';


const duration = z.string().transform((s, ctx) => {
  const ms = parseDuration(s);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a duration such as "30s", "15m", "2h" or "4d"` });
    return z.NEVER;
  }
  return ms;
});

/** A duration that is a wait or a timer: more than 0, and no more than a Node timer holds (24 days). */
const positive = duration.refine((ms) => ms > 0, 'must be more than 0');
const timer = positive.refine((ms) => ms <= 2 ** 31 - 1, 'must be at most 24d');

/** host:port, [v6]:port, or a bare host (port 25). */
const hostPort = z.string().transform((s, ctx) => {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+))(?::(\d{1,5}))?$/.exec(s.trim());
  const port = m?.[3] === undefined ? 25 : Number(m[3]);
  if (!m || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not host:port (use [addr]:port for IPv6)` });
    return z.NEVER;
  }
  return { name: (m[1] ?? m[2]) as string, port };
});

/** "200/1h": at most 200 messages an hour; "off" or "0": no limit. */
const rate = z.string().transform((s, ctx) => {
  const r = parseRate(s);
  if (r === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a rate such as "200/1h" (a count of messages, "/", a period of at least 1s; "off" or "0": no limit)` });
    return z.NEVER;
  }
  return r;
});

const cidr = z.string().regex(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, 'must be an address or address/prefix');

export const configSchema = z.strictObject({
  hostname: z.string().min(1).optional(),
  /** The daemon's own user: a daemon started as root binds its listeners, then runs as this user. */
  user: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/i, 'must be a user name').optional(),
  qualify_domain: z.string().min(1).optional(),
  listen: z.strictObject({
    smtp: z.array(hostPort).default([{ name: '127.0.0.1', port: 25 }, { name: '::1', port: 25 }]),
    relay_from: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
    max_message_size: z.union([z.string(), z.number()]).transform((v, ctx) => {
      const n = parseSize(v);
      if (n === undefined || n === 0) {
        ctx.addIssue({ code: 'custom', message: n === 0 ? 'must be more than 0' : `"${v}" is not a size such as "50M" or "512K"` });
        return z.NEVER;
      }
      return n;
    }).default(50 * 1024 * 1024),
    max_recipients: z.number().int().positive().default(1000),
    max_connections: z.number().int().positive().default(100),
    /** Silence from a client this long ends its session with 421 4.4.2. */
    idle_timeout: timer.default(300_000),
    /** 5xx replies in one session before 421 4.7.0 and the end of it (Postfix's hard error limit); 0: none. */
    max_errors: z.number().int().min(0).default(20),
  }).prefault({}),
  spool: z.strictObject({
    directory: z.string().min(1).default('/var/spool/postern'),
    /** The drop folder of sendmail (mode 1731, the daemon user's, of the drop group); default: the spool folder's path + "-maildrop". */
    maildrop: z.string().min(1).optional(),
    /** The setgid helper through which users write into the maildrop; its group is the drop group. Default: the one installed with postern. */
    postdrop: z.string().min(1).optional(),
  }).prefault({}),
  smarthost: z.strictObject({
    hosts: z.array(hostPort).min(1, 'needs at least one host'),
    tls: z.enum(['none', 'opportunistic', 'required', 'implicit']).default('opportunistic'),
    tls_ca_file: z.string().optional(),
    auth_user: z.string().optional(),
    auth_password_file: z.string().optional(),
    connections: z.number().int().min(1).max(100).default(4),
    timeout: timer.default(300_000),
    /** While a smarthost is down it is probed (connect, EHLO, TLS/AUTH, QUIT) at most this often; its return makes held mail due. */
    probe_interval: timer.default(60_000),
  }),
  retry: z.strictObject({
    rules: z.array(z.string()).default(['* * F,2h,15m; G,16h,1h,1.5; F,4d,6h']),
    delay_warning: z.array(positive).default([86_400_000]),
    /** Frozen messages older than this are cancelled (bounces discarded); "0s" never (Debian: 7d). */
    timeout_frozen_after: duration.default(7 * 86_400_000),
    /** A frozen bounce older than this gets one last try, then is discarded; "0s" never (Debian: 2d). */
    ignore_bounce_errors_after: duration.default(2 * 86_400_000),
  }).prefault({}),
  queue: z.strictObject({
    active_limit: z.number().int().min(1).default(500),
  }).prefault({}),
  /** Sender rewriting on the way to the smarthost, as Debian's Exim satellites do it. */
  rewrite: z.strictObject({
    /** Debian's dc_readhost: with hide_hostname, user@hostname and user@qualify_domain go out as user@readhost. */
    readhost: z.string().regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/,
      'must be a domain such as "example.org"').optional(),
    /** Debian's dc_hide_mailname. */
    hide_hostname: z.boolean().default(true),
    /** A file in Debian's /etc/email-addresses format ("user: address" lines). */
    email_addresses: z.string().min(1).optional(),
    /** An aliases file (Debian's /etc/aliases), followed before hub_user for entries with one address. */
    aliases: z.string().min(1).optional(),
    /** More names of this machine, besides hostname, qualify_domain and localhost (Debian's dc_other_hostnames). */
    local_domains: z.array(z.string().regex(/^[A-Za-z0-9.-]+$/, 'must be a domain such as "web1"')).default([]),
  }).prefault({}),
  /** The Prometheus endpoint: off unless `listen` is set; a bare port listens on 127.0.0.1 only (0: any free port). */
  metrics: z.strictObject({
    listen: z.string().transform((s, ctx) => {
      const m = /^(?:(?:\[([^\]]+)\]|([^:\s]+)):)?(\d{1,5})$/.exec(s.trim());
      const port = Number(m?.[3]);
      if (!m || port > 65535) {
        ctx.addIssue({ code: 'custom', message: `"${s}" is not host:port or a port (such as "127.0.0.1:9725")` });
        return z.NEVER;
      }
      return { name: (m[1] ?? m[2] ?? '127.0.0.1') as string, port };
    }).optional(),
  }).prefault({}),
  /**
   * A runaway sender is held, not relayed: past its rate, new mail is accepted and
   * frozen (limits/sender-limits.ts). per_user: local submissions (sendmail, -bs), by
   * the submitting user; per_client: SMTP, by the client's address.
   */
  limits: z.strictObject({
    per_user: rate.default({ count: 1000, period: 3_600_000 }),
    per_client: rate.default({ count: 1000, period: 3_600_000 }),
  }).prefault({}),
  daemon: z.strictObject({
    /**
     * A daemon started by postern.socket exits after this long with no SMTP connection,
     * nothing queued and nothing in the maildrop (systemd starts it again for the next
     * connection, or postern-maildrop.path for a sendmail file). Off unless set.
     */
    idle_exit: timer.optional(),
  }).prefault({}),
  log: z.strictObject({
    file: z.string().min(1).default('/var/log/postern/mainlog'),
    format: z.enum(['exim', 'json']).default('exim'),
  }).prefault({}),
});

type RawConfig = z.output<typeof configSchema>;

/** The effective configuration: schema output plus the derived values; retry rules parsed. */
export interface Config extends Omit<RawConfig, 'retry'> {
  file: string;
  hostname: string;
  qualify_domain: string;
  spool: { directory: string; maildrop: string; postdrop?: string };
  retry: Omit<RawConfig['retry'], 'rules'> & { rules: RetryRule[] };
}
