// A runaway sender is held, not relayed (issue 21, item 4), with the real daemon, real
// sockets, the real commands and a real test hub: past limits.per_client (SMTP) or
// limits.per_user (sendmail, by the maildrop file's owner) every message is still
// accepted (250, exit 0) but frozen, never at the hub; the main log says so once per
// episode and the metric counts one; -Mwhy says why; mailq shows them frozen; under the
// limit nothing is held; postern-qgrep --thaw releases them and they arrive. Time does
// not matter here: the rates are per hour and every message is sent within seconds
// (episodes over time are test/limits/smtp-episodes.test.ts, on a hand-driven clock).
import { chmodSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeBoth, metricSamples, metricsAt, sinkAndInstance, type Instance, type RunResult } from '../helpers/postern.js';
import { installHelper, makeGroup, makeUser, removeUsersAndGroups, runAs, type TestUser } from '../helpers/postdrop.js';
import type { Sink } from '../helpers/sink.js';
import { sendOne } from '../helpers/smtp-client.js';

const isRoot = process.getuid?.() === 0;
const LIMITS = '[limits]\nper_client = "3/1h"\nper_user = "2/1h"\n[metrics]\nlisten = "127.0.0.1:0"\n';

/** The daemon's /metrics samples: 'name{labels}' → value. */
async function scrape(p: Instance): Promise<Map<string, number>> {
  const at = metricsAt(p);
  return metricSamples(await (await fetch(`http://${at}/metrics`)).text());
}

async function smtp(p: Instance, n: number, subject: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const reply = await sendOne(p.port, 'app@example.org', ['ops@example.org'], `Subject: ${subject} ${i}\n\nbody\n`);
    expect(reply).toMatch(/^250 2\.0\.0 OK id=/);
    ids.push(/id=(\S+)/.exec(reply)![1]!);
  }
  return ids;
}

const subjects = (sink: Sink) => sink.messages.map((m) => /^Subject: (.*)$/m.exec(m.data)?.[1]);
const count = (text: string, re: RegExp) => text.match(new RegExp(re.source, 'gm'))?.length ?? 0;

describe('limits: a runaway sender is held, not relayed', () => {
  let p: Instance | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await closeBoth(sink, p);
    p = sink = undefined;
  });
  afterAll(() => removeUsersAndGroups());

  async function setup(extra = LIMITS): Promise<Instance> {
    [sink, p] = await sinkAndInstance(extra);
    return p;
  }

  it('by SMTP: past per_client accepted and frozen, not at the hub; one log line and one metric for the episode; -Mwhy, mailq; qgrep --thaw releases them', async () => {
    const inst = await setup();
    await inst.start();
    // Under the limit (exactly at it): relayed, nothing frozen.
    const relayed = await smtp(inst, 3, 'under');
    await sink!.waitFor(3);
    expect(inst.log()).not.toMatch(/frozen/);
    expect((await scrape(inst)).get('postern_limit_episodes_total{limit="per_client"}')).toBe(0);

    const held = await smtp(inst, 5, 'over');
    // Another sender (root's sendmail, under per_user) still flows; the held ones never do.
    expect(await inst.run('sendmail', ['ops@example.org'], { input: 'Subject: other\n\nx\n' })).toEqual({ code: 0, stdout: '', stderr: '' });
    await sink!.waitFor(4);
    await inst.waitForLog(/ <= app@example\.org H=/, 8);
    expect(subjects(sink!).sort()).toEqual(['other', 'under 0', 'under 1', 'under 2']);
    const log = inst.log();
    for (const id of held) expect(log).not.toMatch(new RegExp(`${id} =>`));
    for (const id of relayed) expect(log).toMatch(new RegExp(`${id} =>`));
    // One line for the episode, on its first message, not one per message.
    expect(count(log, /frozen: sender over limits\.per_client/)).toBe(1);
    expect(log).toMatch(new RegExp(`${held[0]} frozen: sender over limits\\.per_client \\(127\\.0\\.0\\.1: 3/1h\\); its mail is accepted and frozen while over the limit, logged again only after 1h under it \\(review, then postern-qgrep -z --thaw\\)\\n`));
    const metrics = await scrape(inst);
    expect(metrics.get('postern_limit_episodes_total{limit="per_client"}')).toBe(1);
    expect(metrics.get('postern_limit_episodes_total{limit="per_user"}')).toBe(0);
    expect(metrics.get('postern_queue_messages{state="frozen"}')).toBe(5);

    // mailq shows them frozen, as Exim's does.
    const q = await inst.run('mailq', []);
    for (const id of held) expect(q.stdout).toMatch(new RegExp(`${id} <app@example\\.org> \\*\\*\\* frozen \\*\\*\\*`));
    // -Mwhy says why.
    const why = await inst.run('postern', ['-Mwhy', held[2]!]);
    expect(why.code).toBe(0);
    expect(why.stdout).toMatch(new RegExp(`^${held[2]} <app@example\\.org> \\*\\*\\* frozen \\*\\*\\*\\n` +
      '  \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d frozen: sender over limits\\.per_client \\(127\\.0\\.0\\.1: 3/1h\\)\\n' +
      '  ops@example\\.org: frozen, 0 tries\\n    not tried yet\\n' +
      '    if nothing changes: stays frozen until thawed \\(postern -Mt ID, postern-qgrep --thaw\\) or removed \\(held for review: limits\\.per_client froze it on arrival\\)\\n'));
    const json = JSON.parse((await inst.run('postern', ['-Mwhy', '--json', held[2]!])).stdout) as { frozen: boolean; changes: unknown[] };
    expect(json.frozen).toBe(true);
    expect(json.changes).toEqual([expect.objectContaining({ type: 'limit', limit: 'per_client', key: '127.0.0.1', rate: '3/1h',
      text: 'frozen: sender over limits.per_client (127.0.0.1: 3/1h)' })]);
    // -Mvl (the message's log) has it too.
    expect((await inst.run('postern', ['-Mvl', held[0]!])).stdout).toMatch(/frozen: sender over limits\.per_client \(127\.0\.0\.1: 3\/1h\)\n/);

    // After review: released, and they arrive.
    const thaw = await inst.run('postern-qgrep', ['-z', '--thaw']);
    expect(thaw).toEqual({ code: 0, stdout: held.map((id) => `Message ${id} is no longer frozen\n`).join(''), stderr: '' });
    await sink!.waitFor(9);
    expect(subjects(sink!).filter((s) => s?.startsWith('over')).sort()).toEqual(['over 0', 'over 1', 'over 2', 'over 3', 'over 4']);
    await inst.waitForLog(/ Completed$/, 9);
    expect((await inst.run('postern', ['-bpc'])).stdout).toBe('0\n');
  });

  it('by sendmail: past per_user (the maildrop file\'s owner) exit 0 and frozen, not at the hub; one log line; other senders flow', async () => {
    const inst = await setup();
    let u: TestUser | undefined;
    if (isRoot) {
      // A user of its own, through the setgid helper, as on a real machine.
      chmodSync(inst.dir, 0o711);
      installHelper(inst, makeGroup().gid);
      u = makeUser();
    }
    const login = u?.name ?? (await import('node:os')).userInfo().username;
    const sendmail = (input: string): Promise<RunResult> => (u ? runAs(u, 'sendmail', ['-C', inst.config, 'ops@example.org'], input)
      : inst.run('sendmail', ['ops@example.org'], { input }));
    await inst.start();
    for (let i = 0; i < 2; i++) expect(await sendmail(`Subject: under ${i}\n\nx\n`)).toEqual({ code: 0, stdout: '', stderr: '' });
    await sink!.waitFor(2);
    for (let i = 0; i < 4; i++) expect(await sendmail(`Subject: over ${i}\n\nx\n`)).toEqual({ code: 0, stdout: '', stderr: '' });
    await inst.waitForLog(new RegExp(` <= ${login}@example\\.org U=${login} P=local `), 6);
    // An SMTP client (under per_client) still flows.
    await smtp(inst, 1, 'by smtp');
    await sink!.waitFor(3);
    expect(subjects(sink!).sort()).toEqual(['by smtp 0', 'under 0', 'under 1']);
    const log = inst.log();
    expect(count(log, /frozen: sender over limits\.per_user/)).toBe(1);
    expect(log).toMatch(new RegExp(` frozen: sender over limits\\.per_user \\(${login}: 2/1h\\); `));
    const q = await inst.run('mailq', []);
    expect(count(q.stdout, new RegExp(`<${login}@example\\.org> \\*\\*\\* frozen \\*\\*\\*`))).toBe(4);
    const id = /^\s*\S+\s+\S+ (\S+) </m.exec(q.stdout)![1]!;
    expect((await inst.run('postern', ['-Mwhy', id])).stdout).toContain(`frozen: sender over limits.per_user (${login}: 2/1h)\n`);
    expect((await scrape(inst)).get('postern_limit_episodes_total{limit="per_user"}')).toBe(1);
    // Released by sender: they arrive.
    expect((await inst.run('postern-qgrep', ['-z', '-f', `<${login}@`, '--thaw'])).stdout.split('\n').filter(Boolean)).toHaveLength(4);
    await sink!.waitFor(7);
  });

  it('on by default and generous: a burst of 30 by SMTP and 10 by sendmail is relayed, nothing frozen', async () => {
    const inst = await setup('');
    await inst.start();
    await smtp(inst, 30, 'burst');
    for (let i = 0; i < 10; i++) expect((await inst.run('sendmail', ['ops@example.org'], { input: `Subject: sm ${i}\n\nx\n` })).code).toBe(0);
    await sink!.waitFor(40);
    expect(inst.log()).not.toMatch(/frozen/);
  });
});
