// Property test of the whole mail path with the real daemon and a real hub: generated
// bodies full of dots, bare CRs and bare LFs, sent by SMTP with correct dot-stuffing,
// arrive at the hub line for line (every CR, LF or CRLF a line end there), and no
// message ends early or runs into the next (nothing that could end DATA at the hub
// gets through unstuffed). About 100 runs against one daemon.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeBoth, sinkAndInstance, type Instance } from '../helpers/postern.js';
import type { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';

const line = fc.string({ unit: fc.constantFrom('.', '.', 'a', ' ', '\r', '\n', '\t'), maxLength: 6 });
const body = fc.array(line, { maxLength: 8 }).map((lines) => lines.join('\r\n'))
  // A bare CR right before a CRLF merges into it once stored with LF line ends (a line
  // "x<CR>" arrives as "x"): the one way the hub's lines differ, and harmless.
  .filter((b) => !/\r\r\n/.test(b) && !b.endsWith('\r'));

/** RFC 5321 4.5.2: a dot that starts a line (after any LF, as the receiving smtp-server reads it) is doubled. */
const stuff = (s: string) => s.replace(/(^|\n)\./g, '$1..');

describe('dots and line ends through the daemon (property)', () => {
  let sink: Sink;
  let p: Instance;
  let client: RawSmtp;
  beforeAll(async () => {
    [sink, p] = await sinkAndInstance();
    await p.start();
    client = (await RawSmtp.open(p.port)).client;
    expect(await client.cmd('EHLO client.test')).toMatch(/^250/);
  }, 30_000);
  afterAll(async () => {
    client?.close();
    await closeBoth(sink, p);
  });

  it('every generated body reaches the hub line for line', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(body, async (content) => {
      const tag = `p${++n}`;
      expect(await client.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
      expect(await client.cmd('RCPT TO:<b@example.org>')).toMatch(/^250/);
      expect(await client.cmd('DATA')).toMatch(/^354/);
      (client as unknown as { sock: import('node:net').Socket }).sock.write(Buffer.from(`${stuff(`Subject: ${tag}\r\n\r\n${content}`)}\r\n.\r\n`, 'latin1'));
      expect(await client.reply()).toMatch(/^250 /);
      await sink.waitFor(n, 20_000);
      const got = sink.messages[n - 1]!;
      expect(got.raw.toString('latin1')).toContain(`\r\nSubject: ${tag}\r\n`);
      const raw = got.raw.toString('latin1');
      const hubBody = raw.slice(raw.indexOf('\r\n\r\n') + 4).split('\r\n');
      expect(hubBody.pop()).toBe('');
      expect(hubBody).toEqual(content.split(/\r\n|\r|\n/));
    }), { numRuns: 100 });
    expect(sink.messages).toHaveLength(n);
  }, 120_000);
});
