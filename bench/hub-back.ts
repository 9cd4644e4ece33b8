// bench/hub-back.ts: the smarthost that comes back. A postern daemon (built dist/)
// relays to a hub that is down (a closed port); N messages (default 1,000) are
// submitted over SMTP and each is deferred (the first by "Connection refused", the
// rest with Exim's -54 "retry time not reached for any host"); then the hub (bench/
// sink.js, its own process) starts on that port. Prints how long after the hub's
// return the backlog started to leave (bounded by smarthost.probe_interval) and how
// long it took to drain, and the daemon's "is back" line; JSON with --json.
//
//   npm run build && npx tsc -p bench && node dist/bench/hub-back.js [-m 1000] [--probe 1m] [--json]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { HERE, ROOT } from './root.js';

const { values: opt } = parseArgs({ options: {
  messages: { type: 'string', short: 'm', default: '1000' },
  probe: { type: 'string', default: '1m' },
  json: { type: 'boolean', default: false },
} });
const N = Number(opt.messages);
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'postern-hubback-'));
const cleanup = () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const say = (s: string) => { if (!opt.json) process.stderr.write(`${s}\n`); };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const log = () => { const f = join(dir, 'log/mainlog'); return existsSync(f) ? readFileSync(f, 'utf8') : ''; };
const count = (re: RegExp) => (log().match(re) ?? []).length;
async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const hubPort = await freePort();
writeFileSync(join(dir, 'postern.toml'), `hostname = "web1.example.org"
qualify_domain = "example.org"
[listen]
smtp = ["127.0.0.1:0"]
[spool]
directory = "spool"
[smarthost]
hosts = ["127.0.0.1:${hubPort}"]
tls = "none"
probe_interval = "${opt.probe}"
[queue]
active_limit = 500
[limits]
per_client = "off"
[log]
file = "log/mainlog"
`);

const daemon = spawn(process.execPath, [join(ROOT, 'bin/postern'), '-C', join(dir, 'postern.toml'), '-bd', '-q30m'], { stdio: ['ignore', 'ignore', 'pipe'] });
children.push(daemon);
let stderr = '';
daemon.stderr.on('data', (d) => (stderr += d));
await until('the daemon', () => /listening for SMTP on/.test(stderr), 20_000);
const smtpPort = Number(/listening for SMTP on \S+:(\d+)/.exec(stderr)?.[1]);
say(`daemon up, hub 127.0.0.1:${hubPort} down; submitting ${N} messages`);

// One SMTP session submits them all.
const conn = new SMTPConnection({ host: '127.0.0.1', port: smtpPort, ignoreTLS: true, logger: false });
await new Promise<void>((res, rej) => { conn.once('error', rej); conn.connect(() => res()); });
for (let i = 0; i < N; i++) {
  await new Promise<void>((res, rej) => conn.send({ from: 'www-data@web1.example.org', to: [`user${i % 50}@example.org`] },
    `Subject: backlog ${i}\n\nmessage ${i}\n`, (err) => (err ? rej(err) : res())));
}
conn.quit();
await until('every message deferred', () => count(/ defer \(/g) >= N, 300_000);
const refused = count(/ defer \(111\)/g);
const held = count(/ defer \(-54\): retry time not reached for any host/g);
say(`all ${N} deferred: ${refused} by "Connection refused", ${held} with "defer (-54): retry time not reached for any host"`);

// The hub comes back.
const back = Date.now();
const sink = spawn(process.execPath, [join(HERE, 'sink.js'), String(hubPort), '900'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
children.push(sink);
let received = 0;
let first: number | undefined;
let last: number | undefined;
sink.stdout.on('data', (d) => {
  for (const m of String(d).matchAll(/count (\d+)/g)) {
    received = Number(m[1]);
    if (received > 0 && first === undefined) first = Date.now();
    if (received >= N && last === undefined) last = Date.now();
  }
});
await until('the backlog to drain', () => last !== undefined, 900_000);
const backLine = /H=\S+ \[\S+\]:\d+ is back: \d+ messages due now/.exec(log())?.[0];
const firstAt = first ?? back;
const lastAt = last ?? Date.now();
const result = {
  messages: N, probeInterval: opt.probe, refused, heldWith54: held,
  startedAfterMs: firstAt - back, drainedAfterMs: lastAt - back, drainMs: lastAt - firstAt,
  messagesPerSecond: Math.round(N / ((lastAt - firstAt) / 1000)), isBackLine: backLine ?? null,
};
if (opt.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  say(`hub back; ${backLine ?? '(no is-back line)'}`);
  say(`first message at the hub ${(result.startedAfterMs / 1000).toFixed(1)} s after its return (probe_interval ${opt.probe})`);
  say(`all ${N} at the hub ${(result.drainedAfterMs / 1000).toFixed(1)} s after its return: drained in ${(result.drainMs / 1000).toFixed(1)} s (${result.messagesPerSecond} msg/s)`);
}
daemon.kill('SIGTERM');
sink.kill('SIGTERM');
await sleep(200);
process.exit(0);
