// Crash safety: SIGKILL the daemon while 20 clients submit hundreds of messages and
// deliveries are running, restart it, and check that every message that got a 250
// (or a sendmail exit 0) reaches the smarthost.
import { afterEach, describe, expect, it } from 'vitest';
import { Sink } from '../helpers/sink.js';
import { Instance, waitUntil } from '../helpers/postern.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const CLIENTS = 20;
const PER_CLIENT = 20; // 400 messages offered; the kill comes after 200 acknowledgements

describe('crash safety', () => {
  let sink: Sink | undefined;
  let p: Instance | undefined;
  afterEach(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it('delivers every acknowledged message after a SIGKILL mid-load', async () => {
    sink = new Sink();
    await sink.listen();
    p = new Instance([sink.port]);
    const inst = p;
    await inst.start();
    const acked = new Set<string>();
    let killed = false;
    const killAfter = 200;

    const client = async (n: number) => {
      let c: RawSmtp | undefined;
      try {
        c = (await RawSmtp.open(inst.port)).client;
        await c.cmd('EHLO load.test');
        for (let i = 0; i < PER_CLIENT && !killed; i++) {
          await c.cmd(`MAIL FROM:<load${n}@example.org>`);
          await c.cmd(`RCPT TO:<rcpt${n}-${i}@example.org>`);
          const reply = await c.data(`Subject: load ${n}-${i}\n\n${'payload line\n'.repeat(40)}`);
          const m = /^250 .*id=(\S+)$/.exec(reply);
          if (m) acked.add(m[1] as string);
          if (acked.size >= killAfter && !killed) {
            killed = true;
            inst.daemon?.kill('SIGKILL');
          }
        }
      } catch {
        // The connection died with the daemon: anything not acknowledged may be lost.
      } finally {
        c?.close();
      }
    };
    const sendmails = Array.from({ length: 5 }, (_, i) =>
      inst.run('sendmail', ['-i', `cli${i}@example.org`], { input: `Subject: cli ${i}\n\nfrom sendmail\n` }).then((r) => r.code));
    await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
    const sendmailCodes = await Promise.all(sendmails);
    expect(killed).toBe(true);
    expect(acked.size).toBeGreaterThanOrEqual(killAfter);
    await inst.stop('SIGKILL');

    // Restart: the due index is the schedule; nothing was persisted as "in flight".
    await inst.start();
    const deliveredIds = () => {
      const ids = new Set<string>();
      for (const m of sink!.messages) {
        const id = /\bid ([0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2})/.exec(m.data)?.[1];
        if (id) ids.add(id);
      }
      return ids;
    };
    await waitUntil('every acknowledged message at the smarthost', () => {
      const got = deliveredIds();
      return [...acked].every((id) => got.has(id));
    }, 60_000).catch(() => undefined);
    const missing = [...acked].filter((id) => !deliveredIds().has(id));
    expect(missing).toEqual([]);
    // sendmail submissions that exited 0 are delivered too.
    const okSendmails = sendmailCodes.filter((c) => c === 0).length;
    await waitUntil('sendmail submissions delivered', () =>
      sink!.messages.filter((m) => m.data.includes('from sendmail')).length >= okSendmails, 60_000);
    // Duplicates are possible only for deliveries in flight at the kill: a handful at most.
    const dup = sink.messages.length - deliveredIds().size;
    expect(dup).toBeLessThanOrEqual(20);
    // The queue drains completely.
    expect(await queueCountWhenEmpty(inst)).toBe('0\n');
  }, 180_000);
});

/** -bpc, repeated as deliveries complete, until it says 0 or a minute passes. */
async function queueCountWhenEmpty(inst: Instance): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await inst.run('postern', ['-bpc']);
    if (r.stdout === '0\n' || Date.now() > deadline) return r.stdout;
    await inst.waitForLog(/Completed/, 1, 1000).catch(() => undefined);
  }
}
