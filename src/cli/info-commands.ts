// cli/info-commands.ts: -bt (how addresses route), -bV (version and a configuration
// check) and -bP (effective settings, credentials never shown).
import type { Config } from '../config/schema.js';
import { version } from '../core/version.js';
import { formatRate, type Rate } from '../core/units.js';
import { qualify } from '../receive/cleanup.js';
import { Router } from '../router/router.js';
import { rewriteRules } from '../rewrite/load.js';
import { rewriteRecipient } from '../rewrite/rewriter.js';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';

type Out = (s: string) => void;

export async function addressTest(addresses: string[], config: Config, out: Out, json = false): Promise<number> {
  const rules = rewriteRules(config);
  const router = new Router(config.smarthost.hosts, rules?.hubUser ? (a) => rewriteRecipient(a, rules) : undefined);
  let status = 0;
  for (const raw of addresses) {
    const address = qualify(raw, config.qualify_domain);
    const r = router.route(address);
    if (!r.ok) {
      out(json ? JSON.stringify({ address, routable: false, reason: r.reason }) + '\n' : `${address} is undeliverable: ${r.reason}\n`);
      status = 2;
      continue;
    }
    // A redirected address as Exim's -bt shows it: the new address, then `<-- original`.
    const sent = r.route.address;
    if (!json) out(`${sent ?? address}\n${sent !== undefined ? `    <-- ${address}\n` : ''}  router = ${r.route.router}, transport = ${r.route.transport}\n`);
    const hosts: { name: string; ip: string; port: number }[] = [];
    for (const h of r.route.hosts) {
      let ip = h.name;
      if (!isIP(h.name)) ip = await lookup(h.name).then((a) => a.address, () => 'unresolved');
      if (json) hosts.push({ name: h.name, ip, port: h.port });
      else out(`  host ${h.name} [${ip}] port=${h.port}\n`);
    }
    if (json) out(JSON.stringify({ address, ...(sent !== undefined ? { sent_as: sent } : {}), routable: true, router: r.route.router, transport: r.route.transport, hosts }) + '\n');
  }
  return status;
}

export function versionCheck(config: Config, out: Out): number {
  rewriteRules(config); // the email-addresses file is checked too (a ConfigError names its line)
  out(`postern version ${version()} (Node.js ${process.version})\nConfiguration file is ${config.file}\n`);
  return 0;
}

const HIDDEN = new Set(['smarthost.auth_password_file']);

/** Settings held in ms or bytes, shown in the configuration's own units when defaulted. */
const DURATIONS = new Set(['listen.idle_timeout', 'smarthost.timeout', 'smarthost.probe_interval', 'retry.delay_warning',
  'retry.timeout_frozen_after', 'retry.ignore_bounce_errors_after']);
const SIZES = new Set(['listen.max_message_size']);

function durationText(ms: number): string {
  for (const [unit, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % n === 0) return `${ms / n}${unit}`;
  return `${ms / 1000}s`;
}

function sizeText(n: number): string {
  for (const [unit, f] of [['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) if (n % f === 0) return `${n / f}${unit}`;
  return String(n);
}

/** A parsed retry rule as written: `* * F,2h,15m; G,16h,1h,1.5`. */
function ruleText(r: unknown): string {
  const rule = r as { pattern: string; error: string; params: { kind: string; cutoff: number; interval: number; multiplier: number }[] };
  if (!Array.isArray(rule.params)) return JSON.stringify(r);
  return `${rule.pattern} ${rule.error} ${rule.params.map((p) =>
    `${p.kind},${durationText(p.cutoff)},${durationText(p.interval)}${p.kind === 'G' ? `,${p.multiplier}` : ''}`).join('; ')}`;
}

/** The configuration file's own values (`"300s"`, not 300000), by `section.key`; empty if it cannot be read. */
function rawValues(file: string | undefined): Map<string, unknown> {
  const raw = new Map<string, unknown>();
  if (!file) return raw;
  try {
    const doc = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const [k, v] of Object.entries(doc)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) raw.set(`${k}.${k2}`, v2);
      else raw.set(k, v);
    }
  } catch { /* validated already; an unreadable file just shows the values as held */ }
  return raw;
}

/** Flattens the effective configuration to `section.key = value` lines, in the configuration's units. */
function settings(config: Config): [string, string][] {
  const rows: [string, string][] = [];
  const raw = rawValues(config.file);
  const show = (v: unknown): string => {
    if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' && x ? `${(x as { name: string }).name}:${(x as { port: number }).port}` : String(x))).join(', ');
    return String(v);
  };
  const value = (key: string, v: unknown): string => {
    if (HIDDEN.has(key)) return '<value not displayable>';
    const written = raw.get(key);
    // A number held in ms or bytes: as the file wrote it (paths and the like stay as resolved).
    const numeric = typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'));
    if (numeric && written !== undefined && (typeof written !== 'object' || (Array.isArray(written) && written.every((x) => typeof x !== 'object')))) {
      return Array.isArray(written) ? written.map(String).join(', ') : String(written);
    }
    if (key === 'retry.rules' && Array.isArray(v)) return v.map(ruleText).join(', ');
    if (DURATIONS.has(key)) return Array.isArray(v) ? v.map((x) => durationText(Number(x))).join(', ') : durationText(Number(v));
    if (SIZES.has(key) && typeof v === 'number') return sizeText(v);
    if (key.startsWith('limits.')) return v === null ? 'off' : formatRate(v as Rate);
    return show(v);
  };
  for (const [k, v] of Object.entries(config)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as object)) rows.push([`${k}.${k2}`, value(`${k}.${k2}`, v2)]);
    } else {
      rows.push([k === 'file' ? 'config_file' : k, show(v)]);
    }
  }
  return rows;
}

export function printSettings(names: string[], config: Config, out: Out, err: Out, json = false): number {
  const rows = settings(config);
  if (json) {
    // {"name", "value"} per setting, the value as -bP prints it.
    const print = out;
    out = (line) => {
      const m = /^(\S+) = (.*)\n$/.exec(line);
      if (m) print(JSON.stringify({ name: m[1], value: m[2] }) + '\n');
    };
  }
  if (names.length === 0) {
    for (const [k, v] of rows) out(`${k} = ${v}\n`);
    return 0;
  }
  let status = 0;
  for (const n of names) {
    const row = rows.find(([k]) => k === n || k.endsWith(`.${n}`));
    // A table's name (`-bP smarthost`): all its settings.
    const table = row ? [] : rows.filter(([k]) => k.startsWith(`${n}.`));
    if (row) out(`${row[0]} = ${row[1]}\n`);
    else if (table.length) for (const [k, v] of table) out(`${k} = ${v}\n`);
    else {
      err(`${n} is not a known option\n`);
      status = 1;
    }
  }
  return status;
}
