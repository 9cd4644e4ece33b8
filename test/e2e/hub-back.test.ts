// The hub comes back, end to end: a real daemon relays to a smarthost port that is
// closed; the mail submitted meanwhile is deferred (the first by "Connection refused",
// the rest with Exim's -54 line, no connection); a real hub then starts on that port
// and the backlog starts to leave within probe_interval (plus a margin for a loaded
// machine), with no -q, announced by one "is back" line. Asserts no speed.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { closeBoth, closedPort, Instance } from '../helpers/postern.js';
import { sendOne } from '../helpers/smtp-client.js';
import { Sink } from '../helpers/sink.js';

const N = 30;
let p: Instance | undefined;
let sink: Sink | undefined;
afterEach(async () => {
  await closeBoth(sink, p);
  p = undefined;
  sink = undefined;
});


describe('a smarthost that comes back', () => {
  it('the backlog starts to leave within probe_interval of its return, with one "is back" line', async () => {
    const hub = await closedPort();
    p = new Instance([hub]);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace('timeout = "10s"', 'timeout = "10s"\nprobe_interval = "2s"'));
    await p.start(['-q30m']);
    for (let i = 0; i < N; i++) {
      expect(await sendOne(p.port, 'www-data@web1.example.org', [`u${i}@example.org`], `Subject: ${i}\r\n\r\nbody ${i}\r\n`)).toMatch(/^250/);
    }
    await p.waitForLog(/ defer \(/, N, 30_000);
    expect(p.log()).toMatch(/H=127\.0\.0\.1 \[127\.0\.0\.1\]:\d+ Connection refused/);
    expect(p.log()).toMatch(/== u\d+@example\.org R=smarthost T=remote_smtp defer \(-54\): retry time not reached for any host/);

    sink = new Sink();
    await sink.listen(hub);
    const back = Date.now();
    await sink.waitFor(1, 2_000 + 15_000);
    const started = Date.now() - back;
    await sink.waitFor(N, 30_000);
    const lines = await p.waitForLog(/H=127\.0\.0\.1 \[127\.0\.0\.1\]:\d+ is back: \d+ messages due now/);
    expect(lines[0]).toBe(`H=127.0.0.1 [127.0.0.1]:${hub} is back: ${N} messages due now`);
    expect(started).toBeLessThan(2_000 + 15_000);
    await p.waitForLog(/Completed/, N, 30_000);
  }, 90_000);
});
