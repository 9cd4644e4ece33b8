// Metrics: a daemon with [metrics] listen on a free loopback port relays a message whose
// recipients are delivered, deferred and refused by a real test hub; /metrics is scraped
// and its counters and gauges match the main log (JSON lines, which also carry the hub's
// queue ID); freezing and thawing move the message between the gauges' states; a
// smarthost that refuses connections shows as down, with the cause on the deferral.
// contrib/'s dashboard and alert rules name only metrics the page has.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeBoth, closedPort, Instance, metricSamples, metricsAt, ROOT, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp, sendOne } from '../helpers/smtp-client.js';

const METRICS = 'format = "json"\n[metrics]\nlisten = "127.0.0.1:0"\n';

async function scrape(p: Instance): Promise<Map<string, number>> {
  const at = metricsAt(p);
  expect(at).toMatch(/^127\.0\.0\.1:\d+$/);
  const res = await fetch(`http://${at}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return metricSamples(await res.text());
}

type Line = Record<string, unknown> & { type: string; id?: string };
const lines = (p: Instance): Line[] => p.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);

describe('metrics', () => {
  let sink: Sink;
  let p: Instance;
  afterEach(() => closeBoth(sink, p));

  it('counts a delivery, a deferral and a bounce as the main log does, and follows the queue', async () => {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port], METRICS);
    sink.behaviour.rcpt = (a) => (a.startsWith('later') ? '451 4.3.0 try again later' : a.startsWith('bad') ? '550 5.1.1 no such user' : undefined);
    await p.start();
    const id = (await sendOne(p.port, 'app@example.org', ['ok@example.org', 'later@example.org', 'bad@example.org'], 'Subject: m\n\nx\n')).slice(-16);
    // A recipient refused by postern's policy (no domain it can route): one rejection at RCPT.
    const { client } = await RawSmtp.open(p.port);
    await client.cmd('EHLO client.test');
    await client.cmd('MAIL FROM:<app@example.org>');
    expect(await client.cmd('RCPT TO:<a@-bad.test>')).toMatch(/^5\d\d /);
    client.close();
    // The message to ok@ and the bounce to app@ reach the hub; the bounce completes.
    await sink.waitFor(2);
    await waitUntil('the bounce completed', () => {
      const l = lines(p);
      const bounce = l.find((e) => e.type === 'received' && e.bounceOf === id)?.id;
      return bounce !== undefined && l.some((e) => e.type === 'completed' && e.id === bounce);
    });
    const log = lines(p);
    const count = (pred: (e: Line) => boolean) => log.filter(pred).length;
    const m = await scrape(p);
    expect(m.get('postern_received_messages_total{protocol="esmtp"}')).toBe(count((e) => e.type === 'received' && e.protocol === 'esmtp'));
    expect(m.get('postern_received_messages_total{protocol="local"}')).toBe(count((e) => e.type === 'received' && e.protocol === 'local'));
    expect(m.get('postern_recipients_total{result="delivered",cause=""}')).toBe(count((e) => e.type === 'delivered'));
    expect(m.get('postern_recipients_total{result="deferred",cause="reply"}')).toBe(count((e) => e.type === 'deferred'));
    expect(m.get('postern_recipients_total{result="failed",cause="reply"}')).toBe(count((e) => e.type === 'failed'));
    expect(m.get('postern_smtp_rejections_total{stage="rcpt"}')).toBe(count((e) => e.type === 'rejected' && e.stage === 'RCPT'));
    expect(m.get('postern_smtp_rejections_total{stage="rcpt"}')).toBe(1);
    expect(m.get('postern_smtp_rejections_total{stage="mail"}')).toBe(0);
    expect([count((e) => e.type === 'delivered'), count((e) => e.type === 'deferred'), count((e) => e.type === 'failed')]).toEqual([2, 1, 1]);
    // The hub's "250 Ok: queued as Qn" on each delivery line.
    expect(log.filter((e) => e.type === 'delivered').map((e) => e.hub_queue_id).sort()).toEqual(['Q1', 'Q2']);
    // What is left: the message for later@, waiting for its retry.
    expect(m.get('postern_queue_messages{state="deferred"}')).toBe(1);
    expect(m.get('postern_queue_messages{state="frozen"}')).toBe(0);
    expect(m.get('postern_queue_messages{state="active"}')).toBe(0);
    expect(m.get('postern_queue_oldest_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.get(`postern_smarthost_up{host="127.0.0.1:${sink.port}"}`)).toBe(1);
    // Synced writes: the arrival, its attempt (the bounce committed in it), the bounce's attempt.
    expect(m.get('postern_spool_commit_seconds_count')).toBeGreaterThanOrEqual(3);

    expect((await p.run('postern', ['-Mf', id])).code).toBe(0);
    let after = await scrape(p);
    expect([after.get('postern_queue_messages{state="deferred"}'), after.get('postern_queue_messages{state="frozen"}')]).toEqual([0, 1]);
    expect((await p.run('postern', ['-Mt', id])).code).toBe(0);
    // A thawed message is due at once and the daemon is told: it may be in the delivery
    // window (active) when scraped; it is deferred again once that attempt is settled.
    let last: (number | undefined)[] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      after = await scrape(p);
      last = ['deferred', 'frozen', 'active'].map((s) => after.get(`postern_queue_messages{state="${s}"}`));
      if (last[0] === 1 && last[1] === 0 && last[2] === 0) break;
    }
    expect(last).toEqual([1, 0, 0]);
    // The dashboard and the alert rules in contrib/ use only names this page has.
    const served = new Set([...m.keys()].map((k) => k.replace(/\{.*$/, '')));
    const contrib = readFileSync(join(ROOT, 'contrib/postern.rules.yml'), 'utf8') + readFileSync(join(ROOT, 'contrib/grafana-postern.json'), 'utf8');
    const used = new Set(contrib.match(/\bpostern_[a-z_]+/g));
    expect(used.size).toBeGreaterThanOrEqual(7);
    expect([...used].filter((n) => !served.has(n))).toEqual([]);
    // Only /metrics is served.
    const at = metricsAt(p);
    expect((await fetch(`http://${at}/`)).status).toBe(404);
  }, 60_000);

  it('shows a smarthost that refuses connections as down, and the deferral by its cause', async () => {
    sink = new Sink();
    await sink.listen();
    const dead = await closedPort();
    p = new Instance([dead], METRICS);
    await p.start();
    await sendOne(p.port, 'app@example.org', ['a@example.org'], 'Subject: m\n\nx\n');
    await waitUntil('the deferral', () => lines(p).some((e) => e.type === 'deferred'));
    const m = await scrape(p);
    expect(m.get(`postern_smarthost_up{host="127.0.0.1:${dead}"}`)).toBe(0);
    expect(m.get('postern_recipients_total{result="deferred",cause="refused"}')).toBe(1);
    expect(m.get('postern_queue_messages{state="deferred"}')).toBe(1);
  }, 60_000);
});
