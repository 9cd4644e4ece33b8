// Error-scoped retry rules against misbehaving smarthosts on real sockets: a closed
// port (refused), a hub that never greets (timeout), one that hangs up at once (lost
// connection), RCPT 452 and 451 replies, MAIL 451, 451 after the dot, no STARTTLS
// under tls = "required"; each error picks its own rule,
// which -Mwhy names with the attempt, the next attempt and when it would freeze.
// And -brt as Exim prints it.
import { createServer, type Server, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closedPort, Instance } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';

const M = 60_000;
const RULES = `[retry]
rules = [
  "* refused F,4d,1m",
  "* timeout F,4d,3m",
  "* lost_connection F,4d,4m",
  "* rcpt_452 F,4d,7m",
  "* rcpt_45x F,4d,8m",
  "* mail_4xx F,4d,10m",
  "* data_4xx F,4d,11m",
  "* tls_required F,4d,5m",
  "* * F,2h,15m; G,16h,1h,1.5; F,4d,6h",
]
`;

interface Why {
  id: string;
  recipients: { rcpt: string; state: string; tries: number; attempts: { at: string; host?: string; kind: string; reason: string; errno?: number }[];
    error?: string; rule: string | null; nextAttempt?: string; end?: { what: string; at?: string; why: string } }[];
}

let p: Instance | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await p?.cleanup();
  p = undefined;
  for (const c of closers.splice(0)) await c();
});

/** A TCP server that does `onConn` with each connection (says nothing, or hangs up). */
async function rawHub(onConn: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return (server.address() as { port: number }).port;
}


function instance(port: number): Instance {
  const i = new Instance([port], RULES);
  writeFileSync(i.config, readFileSync(i.config, 'utf8').replace('timeout = "10s"', 'timeout = "2s"'));
  return i;
}

/** Queues one message (sendmail -odq), delivers it once (-M), and returns -Mwhy's JSON. */
async function attemptOnce(i: Instance, to = 'a@example.org'): Promise<Why> {
  const r = await i.run('sendmail', ['-odq', '-f', 'www-data@web1.example.org', to], { input: 'Subject: t\n\nbody\n' });
  expect(r.code).toBe(0);
  const id = (await i.run('postern-qgrep', ['-i'])).stdout.trim().split('\n').pop() as string;
  await i.run('postern', ['-M', id], { timeoutMs: 30_000 });
  const why = await i.run('postern', ['-Mwhy', id, '--json']);
  expect(why.code).toBe(0);
  return JSON.parse(why.stdout) as Why;
}

/** The gap from the attempt to the next one, ms. */
const gap = (w: Why) => {
  const r = w.recipients[0]!;
  return Date.parse(r.nextAttempt!) - Date.parse(r.attempts[r.attempts.length - 1]!.at);
};

describe('each error picks its own retry rule (real sockets)', () => {
  it('connection refused → * refused F,4d,1m', async () => {
    p = instance(await closedPort());
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ state: 'pending', error: 'refused', rule: '* refused F,4d,1m' });
    expect(w.recipients[0]!.attempts[0]).toMatchObject({ kind: 'deferred', errno: 111, reason: 'Connection refused' });
    expect(Math.abs(gap(w) - M)).toBeLessThan(5000); // the host's retry time, set as the connection failed
    expect(p.log()).toMatch(/== a@example.org R=smarthost T=remote_smtp defer \(111\): Connection refused/);
  }, 60_000);

  it('a hub that never greets → * timeout F,4d,3m', async () => {
    p = instance(await rawHub(() => {}));
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ error: 'timeout', rule: '* timeout F,4d,3m' });
    expect(Math.abs(gap(w) - 3 * M)).toBeLessThan(5000);
  }, 60_000);

  it('a hub that hangs up at once → * lost_connection F,4d,4m', async () => {
    p = instance(await rawHub((s) => s.destroy()));
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ error: 'lost_connection', rule: '* lost_connection F,4d,4m' });
    expect(Math.abs(gap(w) - 4 * M)).toBeLessThan(5000);
  }, 60_000);

  it('RCPT 452 → rcpt_452, RCPT 451 → rcpt_45x; -Mwhy says it in words too', async () => {
    const sink = new Sink();
    await sink.listen();
    closers.push(() => sink.close());
    sink.behaviour = {
      rcpt: (a) => (a.startsWith('full') ? '452 4.2.2 mailbox full' : a.startsWith('busy') ? 451 : undefined),
      mail: (a) => (a.startsWith('later') ? 451 : undefined),
    };
    p = instance(sink.port);
    const full = await attemptOnce(p, 'full@example.org');
    expect(full.recipients[0]).toMatchObject({ error: 'rcpt_452', rule: '* rcpt_452 F,4d,7m' });
    expect(full.recipients[0]!.attempts[0]).toMatchObject({ host: `127.0.0.1 [127.0.0.1]:${sink.port}`, errno: -44,
      reason: 'SMTP error from remote mail server after RCPT TO:<full@example.org>: 452 4.2.2 mailbox full' });
    expect(gap(full)).toBe(7 * M);
    expect(full.recipients[0]!.end).toMatchObject({ what: 'freeze', why: 'the rule\'s last cutoff, 4d after the first failure; Exim would bounce' });
    expect(Date.parse(full.recipients[0]!.end!.at!) - Date.parse(full.recipients[0]!.attempts[0]!.at)).toBe(4 * 24 * 60 * M);
    const busy = await attemptOnce(p, 'busy@example.org');
    expect(busy.recipients[0]).toMatchObject({ error: 'rcpt_451', rule: '* rcpt_45x F,4d,8m' });
    expect(gap(busy)).toBe(8 * M);

    const text = await p.run('postern', ['-Mwhy', full.id]);
    expect(text.stdout).toContain(`${full.id} <www-data@web1.example.org>\n  full@example.org: pending, 1 try, failing since `);
    expect(text.stdout).toMatch(new RegExp(`\\n    \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d H=127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\]:${sink.port} defer \\(-44\\): ` +
      'SMTP error from remote mail server after RCPT TO:<full@example.org>: 452 4\\.2\\.2 mailbox full\\n'));
    expect(text.stdout).toContain('    retry rule: * rcpt_452 F,4d,7m (error rcpt_452)\n    next attempt: ');
    expect(text.stdout).toMatch(/\n    if nothing changes: frozen by the first failed attempt after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(the rule's last cutoff, 4d after the first failure; Exim would bounce\)\n\n$/);
  }, 60_000);

  it('MAIL 451 → mail_4xx', async () => {
    const sink = new Sink();
    await sink.listen();
    closers.push(() => sink.close());
    sink.behaviour = { mail: () => 451 };
    p = instance(sink.port);
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ error: 'mail_451', rule: '* mail_4xx F,4d,10m' });
    expect(gap(w)).toBe(10 * M);
  }, 60_000);

  it('451 after the final dot → data_4xx', async () => {
    const sink = new Sink();
    await sink.listen();
    closers.push(() => sink.close());
    sink.behaviour = { data: () => 451 };
    p = instance(sink.port);
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ error: 'data_451', rule: '* data_4xx F,4d,11m' });
    expect(w.recipients[0]!.attempts[0]).toMatchObject({ errno: -46 });
    expect(gap(w)).toBe(11 * M);
  }, 60_000);

  it('tls = "required" and a hub without STARTTLS → tls_required', async () => {
    const sink = new Sink();
    await sink.listen();
    closers.push(() => sink.close());
    p = instance(sink.port);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('tls = "none"', 'tls = "required"'));
    const w = await attemptOnce(p);
    expect(w.recipients[0]).toMatchObject({ error: 'tls_required', rule: '* tls_required F,4d,5m' });
    expect(w.recipients[0]!.attempts[0]).toMatchObject({ errno: -37 });
    expect(Math.abs(gap(w) - 5 * M)).toBeLessThan(5000);
  }, 60_000);

  it('-Mwhy on an unknown ID says so and exits 1', async () => {
    p = instance(await closedPort());
    const r = await p.run('postern', ['-Mwhy', '1abcde-fghijk-AB']);
    expect(r.stdout).toBe('Spool data file for 1abcde-fghijk-AB does not exist\n');
    expect(r.code).toBe(1);
  });
});

describe('postern -brt', () => {
  it('prints the rule as Exim does, only * rules without an error, and Exim\'s words when none applies', async () => {
    p = new Instance([2599], '[retry]\nrules = ["127.0.0.1 refused F,4d,1m", "*@example.net * F,1d,30m", "* * F,2h,15m; G,16h,1h,1.5; F,4d,6h"]\n');
    expect((await p.run('postern', ['-brt', 'a@example.org'])).stdout).toBe('Retry rule: * * F,2h,15m; G,16h,1h,1.5; F,4d,6h\n');
    expect((await p.run('postern', ['-brt', '127.0.0.1', 'refused'])).stdout).toBe('Retry rule: 127.0.0.1 refused F,4d,1m\n');
    expect((await p.run('postern', ['-brt', 'b@example.net', 'rcpt_452'])).stdout).toBe('Retry rule: *@example.net * F,1d,30m\n');
    expect(JSON.parse((await p.run('postern', ['-brt', '127.0.0.1', 'refused', '--json'])).stdout))
      .toEqual({ address: '127.0.0.1', error: 'refused', rule: '127.0.0.1 refused F,4d,1m' });
    const bad = await p.run('postern', ['-brt', 'a@example.org', 'refusd']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toBe('postern: unknown error type refusd after -brt\n');
    p.writeConfig([2599], '[retry]\nrules = ["127.0.0.1 refused F,4d,1m"]\n');
    const none = await p.run('postern', ['-brt', 'a@example.org']);
    expect(none.stdout).toBe('No retry information found\n');
    expect(none.code).toBe(0);
  });
});
