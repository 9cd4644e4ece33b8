// Crash safety, twenty times over: each round floods the daemon with SMTP clients and
// `sendmail` processes at once (half the rounds against a slow hub, so deliveries are
// in flight), SIGKILLs it at a random moment, and starts it again. At the end every
// message that got a 250 or a sendmail exit 0 must have reached the hub: none lost.
// Duplicates can only come from deliveries the hub had taken when the kill came and
// the spool had not yet recorded (Exim and Postfix have the same window); they are
// counted and reported, and bounded.
import { afterAll, describe, expect, it } from 'vitest';
import { Sink } from '../helpers/sink.js';
import { Instance, waitUntil } from '../helpers/postern.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const ROUNDS = 20;
const SMTP_CLIENTS = 6;
const SENDMAIL_LOOPS = 3;

describe('crash safety under repeated SIGKILL', () => {
  let sink: Sink | undefined;
  let p: Instance | undefined;
  afterAll(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it(`loses nothing acknowledged over ${ROUNDS} rounds of SIGKILL during mixed SMTP and sendmail floods`, async () => {
    sink = new Sink();
    await sink.listen();
    const inst = new Instance([sink.port]);
    p = inst;
    const acked = new Set<string>();
    let offered = 0;

    for (let round = 0; round < ROUNDS; round++) {
      sink.behaviour = round % 2 === 1 ? { delayMs: 15 } : {};
      await inst.start();
      let killed = false;
      const smtp = async (c: number) => {
        for (let i = 0; !killed && i < 200; i++) {
          const token = `smtp-${round}-${c}-${i}`;
          let client: RawSmtp | undefined;
          try {
            client = (await RawSmtp.open(inst.port)).client;
            await client.cmd('EHLO load.test');
            // A few messages per connection, as a busy client sends them.
            for (let k = 0; k < 3 && !killed; k++, i++) {
              const t = `${token}-${k}`;
              await client.cmd(`MAIL FROM:<load${c}@example.org>`);
              await client.cmd(`RCPT TO:<r${c}@example.org>`);
              offered++;
              const reply = await client.data(`Subject: ${t}\n\ntoken ${t}\n${'payload line\n'.repeat(30)}`);
              if (/^250 /.test(reply)) acked.add(t);
            }
          } catch {
            // The daemon died under this connection: nothing unacknowledged counts.
          } finally {
            client?.close();
          }
        }
      };
      const sendmail = async (k: number) => {
        for (let i = 0; !killed && i < 50; i++) {
          const t = `sm-${round}-${k}-${i}`;
          offered++;
          const r = await inst.run('sendmail', ['-i', `s${k}@example.org`], { input: `Subject: ${t}\n\ntoken ${t}\n` });
          if (r.code === 0) acked.add(t);
        }
      };
      const floods = [
        ...Array.from({ length: SMTP_CLIENTS }, (_, c) => smtp(c)),
        ...Array.from({ length: SENDMAIL_LOOPS }, (_, k) => sendmail(k)),
      ];
      // Kill at a random moment once some mail is flowing.
      const before = acked.size;
      await waitUntil('some acknowledgements', () => acked.size >= before + 5 + Math.floor(Math.random() * 40), 30_000);
      await inst.stop('SIGKILL');
      killed = true;
      await Promise.all(floods);
    }

    // The last start: everything acknowledged must arrive.
    sink.behaviour = {};
    await inst.start();
    const received = () => {
      const counts = new Map<string, number>();
      for (const m of sink!.messages) {
        const t = /^token (\S+)$/m.exec(m.data)?.[1];
        if (t) counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      return counts;
    };
    await waitUntil('every acknowledged message at the hub', () => {
      const got = received();
      return [...acked].every((t) => got.has(t));
    }, 120_000).catch(() => undefined);
    const got = received();
    const lost = [...acked].filter((t) => !got.has(t));
    const duplicated = [...got.values()].reduce((n, c) => n + c - 1, 0);
    const delivered = [...acked].filter((t) => got.has(t)).length;
    // The closing note quotes this line.
    const bySendmail = [...acked].filter((t) => t.startsWith('sm-')).length;
    console.log(`crash rounds: ${ROUNDS}, offered ${offered}, acknowledged ${acked.size} (${acked.size - bySendmail} by SMTP, ${bySendmail} by sendmail), delivered ${delivered}, lost ${lost.length}, duplicated ${duplicated}`);
    expect(lost).toEqual([]);
    expect(acked.size).toBeGreaterThan(ROUNDS * 5);
    expect(bySendmail).toBeGreaterThan(0);
    // Only what was in flight at a kill can come twice: a few per round at most.
    expect(duplicated).toBeLessThanOrEqual(ROUNDS * 8);
  }, 600_000);
});
