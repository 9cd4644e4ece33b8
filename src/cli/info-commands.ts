// cli/info-commands.ts: -bt (how addresses route), -bV (version and a configuration
// check) and -bP (effective settings, credentials never shown).
import type { Config } from '../config/schema.js';
import { VERSION } from '../receive/cleanup.js';
import { qualify } from '../receive/cleanup.js';
import { Router } from '../router/router.js';
import { rewriteRules } from '../rewrite/load.js';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

type Out = (s: string) => void;

export async function addressTest(addresses: string[], config: Config, out: Out): Promise<number> {
  const router = new Router(config.smarthost.hosts);
  let status = 0;
  for (const raw of addresses) {
    const address = qualify(raw, config.qualify_domain);
    const r = router.route(address);
    if (!r.ok) {
      out(`${address} is undeliverable: ${r.reason}\n`);
      status = 2;
      continue;
    }
    out(`${address}\n  router = ${r.route.router}, transport = ${r.route.transport}\n`);
    for (const h of r.route.hosts) {
      let ip = h.name;
      if (!isIP(h.name)) ip = await lookup(h.name).then((a) => a.address, () => 'unresolved');
      out(`  host ${h.name} [${ip}] port=${h.port}\n`);
    }
  }
  return status;
}

export function versionCheck(config: Config, out: Out): number {
  out(`postern version ${VERSION} (Node.js ${process.version})\nConfiguration file is ${config.file}\n`);
  return 0;
  rewriteRules(config); // the email-addresses file is checked too (a ConfigError names its line)
}

const HIDDEN = new Set(['smarthost.auth_password_file']);

/** Flattens the effective configuration to `section.key = value` lines. */
export function settings(config: Config): [string, string][] {
  const rows: [string, string][] = [];
  const show = (v: unknown): string => {
    if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' && x ? `${(x as { name: string }).name}:${(x as { port: number }).port}` : String(x))).join(', ');
    return String(v);
  };
  for (const [k, v] of Object.entries(config)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as object)) rows.push([`${k}.${k2}`, HIDDEN.has(`${k}.${k2}`) ? '<value not displayable>' : show(v2)]);
    } else {
      rows.push([k === 'file' ? 'config_file' : k, show(v)]);
    }
  }
  return rows;
}

export function printSettings(names: string[], config: Config, out: Out, err: Out): number {
  const rows = settings(config);
  if (names.length === 0) {
    for (const [k, v] of rows) out(`${k} = ${v}\n`);
    return 0;
  }
  let status = 0;
  for (const n of names) {
    const row = rows.find(([k]) => k === n || k.endsWith(`.${n}`));
    if (row) out(`${row[0]} = ${row[1]}\n`);
    else {
      err(`${n} is not a known option\n`);
      status = 1;
    }
  }
  return status;
}
