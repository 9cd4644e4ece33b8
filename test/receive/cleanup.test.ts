// Unit tests for src/receive/cleanup.ts: line ends, the header/body split, and the
// local-submission fix-ups (Received, Message-Id, From, Date, qualification, -t).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanup, headerAddresses, qualify, rfc5322Date, type Submission } from '../../src/receive/cleanup.js';
import { findHeader, headerValue, LineEnds, parseMessage } from '../../src/receive/header-block.js';
import { version } from '../../src/core/version.js';

const VERSION = version();

const b = (s: string) => Buffer.from(s, 'utf8');
const NOW = Date.UTC(2026, 10, 23, 5, 4, 24);
const ID = '1xVME4-0001HS-0Y';

function sub(over: Partial<Submission> = {}): Submission {
  return {
    id: ID,
    now: NOW,
    hostname: 'web1.example.org',
    qualifyDomain: 'example.org',
    sender: 'www-data@example.org',
    recipients: ['ops@example.org'],
    protocol: 'local',
    user: 'www-data',
    passwd: '/nonexistent/passwd',
    ...over,
  };
}

/** Header lines of a cleaned header block, unfolded, without the Received line. */
function headerNames(headers: string): string[] {
  return headers.split('\n').filter((l) => /^[^\s:]+:/.test(l)).map((l) => l.slice(0, l.indexOf(':')));
}

function header(headers: string, name: string): string | undefined {
  const parsed = parseMessage(b(headers + '\n'));
  const h = findHeader(parsed.headers, name);
  return h ? headerValue(h) : undefined;
}

describe('LineEnds', () => {
  function run(chunks: string[]): string {
    const le = new LineEnds();
    const out = chunks.map((c) => le.push(Buffer.from(c, 'latin1')));
    out.push(le.end());
    return Buffer.concat(out).toString('latin1');
  }

  it.each<[string, string[], string]>([
    ['one chunk', ['a\r\nb\r\n'], 'a\nb\n'],
    ['CRLF split between chunks', ['a\r', '\nb'], 'a\nb'],
    ['CRLF split, then another CRLF', ['a\r', '\nb\r', '\n'], 'a\nb\n'],
    ['lone CR kept', ['a\rb'], 'a\rb'],
    ['CR at the very end kept', ['a\r'], 'a\r'],
    ['CR chunk alone', ['a', '\r', '\n', 'b'], 'a\nb'],
    ['CR CR LF across chunks', ['a\r', '\r\nb'], 'a\r\nb'],
    ['LF only untouched', ['a\nb\n'], 'a\nb\n'],
    ['empty chunks', ['', 'a\r', '', '\n'], 'a\n'],
  ])('%s', (_name, chunks, expected) => {
    expect(run(chunks)).toBe(expected);
  });

  it('any split of a message gives what converting it whole gives', () => {
    const whole = 'Subject: x\r\n\r\nline 1\r\n\rline\r\r\n2\r\n.\r\n\r';
    const expected = whole.replace(/\r\n/g, '\n');
    for (let i = 0; i <= whole.length; i++) {
      for (let j = i; j <= whole.length; j += 3) {
        expect(run([whole.slice(0, i), whole.slice(i, j), whole.slice(j)])).toBe(expected);
      }
    }
  });

  it('keeps UTF-8 bytes intact when a character is split between chunks', () => {
    const data = Buffer.from('Grüße\r\n', 'utf8');
    const le = new LineEnds();
    const out = Buffer.concat([le.push(data.subarray(0, 3)), le.push(data.subarray(3)), le.end()]);
    expect(out.toString('utf8')).toBe('Grüße\n');
  });
});

describe('parseMessage', () => {
  it.each<[string, string, string[], string]>([
    ['split at the blank line', 'Subject: hi\nTo: a@example.org\n\nbody\n', ['Subject: hi\n', 'To: a@example.org\n'], 'body\n'],
    ['blank line kept out of both parts', 'Subject: hi\n\n\nbody\n', ['Subject: hi\n'], '\nbody\n'],
    ['no blank line before a non-header line', 'Subject: hi\nthis is the body\nmore\n', ['Subject: hi\n'], 'this is the body\nmore\n'],
    ['mbox From_ line is not a header', 'From someone Mon Nov 23\nSubject: x\n', [], 'From someone Mon Nov 23\nSubject: x\n'],
    ['header with a space before the colon is not a header', 'Subject : x\n\nb', [], 'Subject : x\n\nb'],
    ['folded headers', 'Subject: a\n b\n\tc\nTo: x@example.org\n\nB', ['Subject: a\n b\n\tc\n', 'To: x@example.org\n'], 'B'],
    ['headers only, no body', 'Subject: x\nTo: y@example.org\n', ['Subject: x\n', 'To: y@example.org\n'], ''],
    ['headers only, no final LF', 'Subject: x', ['Subject: x\n'], ''],
    ['body only, continuation first', ' indented\nSubject: x\n', [], ' indented\nSubject: x\n'],
    ['empty message', '', [], ''],
    ['empty header block', '\nbody', [], 'body'],
  ])('%s', (_name, input, raws, body) => {
    const p = parseMessage(b(input));
    expect(p.headers.map((h) => h.raw)).toEqual(raws);
    expect(p.body.toString('utf8')).toBe(body);
  });

  it('names and unfolded values', () => {
    const p = parseMessage(b('Subject: a\n b\n\tc\nX-Odd_Name.1: v\n\n'));
    expect(p.headers.map((h) => h.name)).toEqual(['Subject', 'X-Odd_Name.1']);
    expect(headerValue(p.headers[0]!)).toBe('a b c');
    expect(findHeader(p.headers, 'SUBJECT')?.raw).toBe('Subject: a\n b\n\tc\n');
    expect(findHeader(p.headers, 'Date')).toBeUndefined();
  });
});

describe('helpers', () => {
  it.each([
    ['root', 'root@example.org'],
    ['root@web1.example.org', 'root@web1.example.org'],
    ['', ''],
  ])('qualify(%j) = %j', (a, q) => {
    expect(qualify(a, 'example.org')).toBe(q);
  });

  it.each<[string, string[]]>([
    ['a@example.org, "B, Person" <b@example.org>', ['a@example.org', 'b@example.org']],
    ['team: c@example.org, d@example.org;, e', ['c@example.org', 'd@example.org', 'e']],
    ['undisclosed-recipients:;', []],
  ])('headerAddresses(%j)', (value, list) => {
    expect(headerAddresses(value)).toEqual(list);
  });

  it('rfc5322Date gives the RFC 5322 shape and the same instant', () => {
    const text = rfc5322Date(NOW + 789);
    expect(text).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
    expect(Date.parse(text)).toBe(NOW);
  });
});

describe('cleanup', () => {
  const date = rfc5322Date(NOW);

  it('local submission: Received first, then the original headers, then Message-Id, From, Date', () => {
    const c = cleanup(b('Subject: test one\n\nhello\n'), sub());
    expect(c.headers).toBe(
      `Received: from www-data by web1.example.org with local (postern ${VERSION})\n` +
      '\t(envelope-from <www-data@example.org>)\n' +
      `\tid ${ID};\n` +
      `\t${date}\n` +
      'Subject: test one\n' +
      `Message-Id: <E${ID}@web1.example.org>\n` +
      'From: www-data@example.org\n' +
      `Date: ${date}\n`,
    );
    expect(c.body.toString()).toBe('hello\n');
    expect(c.recipients).toEqual(['ops@example.org']);
    expect(c.messageIdHeader).toBeUndefined();
  });

  it('SMTP submission: Received names the client and the single recipient', () => {
    const c = cleanup(b('Subject: x\n\n'), sub({
      protocol: 'esmtp', user: undefined, client: { name: 'localhost', ip: '127.0.0.1', helo: 'web1.example.org' },
    }));
    expect(c.headers.startsWith(
      'Received: from localhost ([127.0.0.1] helo=web1.example.org)\n' +
      `\tby web1.example.org with esmtp (postern ${VERSION})\n` +
      '\t(envelope-from <www-data@example.org>)\n' +
      `\tid ${ID}\n` +
      '\tfor ops@example.org;\n' +
      `\t${date}\n`,
    )).toBe(true);
  });

  it('null sender shows as <> in Received', () => {
    const c = cleanup(b('From: x@example.org\n\n'), sub({ sender: '' }));
    expect(c.headers).toContain('\t(envelope-from <>)\n');
  });

  it('adds Message-Id, From and Date only when missing', () => {
    const input = 'From: Alice <alice@example.org>\nDate: Sun, 1 Nov 2026 00:00:00 +0000\nMessage-ID: <abc.123@mail.example.org>\nSubject: s\n\nbody';
    const c = cleanup(b(input), sub({ user: 'alice' })); // alice's own From: no Sender (see local-from.test.ts)
    expect(headerNames(c.headers)).toEqual(['Received', 'From', 'Date', 'Message-ID', 'Subject']);
    expect(c.headers.endsWith('From: Alice <alice@example.org>\nDate: Sun, 1 Nov 2026 00:00:00 +0000\nMessage-ID: <abc.123@mail.example.org>\nSubject: s\n')).toBe(true);
    expect(c.messageIdHeader).toBe('abc.123@mail.example.org');
  });

  it.each<[string, string[]]>([
    ['From: www-data@example.org\n\n', ['Received', 'From', 'Message-Id', 'Date']],
    ['Date: Sun, 1 Nov 2026 00:00:00 +0000\n\n', ['Received', 'Date', 'Message-Id', 'From']],
    ['message-id: <x@y>\n\n', ['Received', 'message-id', 'From', 'Date']],
    ['', ['Received', 'Message-Id', 'From', 'Date']],
  ])('headers for %j', (input, names) => {
    expect(headerNames(cleanup(b(input), sub()).headers)).toEqual(names);
  });

  it('reports an existing Message-ID without its angle brackets', () => {
    expect(cleanup(b('Message-ID:\n <20261123050424.abc@web1.example.org>\n\n'), sub()).messageIdHeader)
      .toBe('20261123050424.abc@web1.example.org');
  });

  it('-F gives the full name in a generated From', () => {
    expect(header(cleanup(b('\n'), sub({ fullName: 'Web Server' })).headers, 'From')).toBe('Web Server <www-data@example.org>');
    expect(header(cleanup(b('\n'), sub({ fullName: 'Doe, John' })).headers, 'From')).toBe('"Doe, John" <www-data@example.org>');
  });

  it('without -F, a generated From carries the name of the user\'s passwd entry (its first comma field), as Exim\'s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-gecos-'));
    try {
      const passwd = join(dir, 'passwd');
      writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:Web Server,Room 1,,:/var/www:/usr/sbin/nologin\n' +
        'bob:x:1000:1000:& Smith,,,:/home/bob:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n');
      const from = (over: Partial<Submission>) => header(cleanup(b('\n'), sub({ passwd, ...over })).headers, 'From');
      expect(from({ user: 'root', sender: 'root@example.org' })).toBe('root <root@example.org>');
      expect(from({})).toBe('Web Server <www-data@example.org>');
      expect(from({ user: 'bob', sender: 'bob@example.org' })).toBe('Bob Smith <bob@example.org>');
      expect(from({ user: 'nobody', sender: 'nobody@example.org' })).toBe('nobody@example.org');
      expect(from({ fullName: 'Cron Daemon' })).toBe('Cron Daemon <www-data@example.org>');
      // Another sender (-f): not the user's own address, so not the user's name.
      expect(from({ sender: 'app@example.net' })).toBe('app@example.net');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('-F does not touch an existing From', () => {
    expect(header(cleanup(b('From: x@example.org\n\n'), sub({ fullName: 'Web Server' })).headers, 'From')).toBe('x@example.org');
  });

  it('qualifies unqualified addresses in address headers and envelope recipients', () => {
    const input = 'To: root\nCc: Ops Team <ops>, dev@example.org\nReply-To: admin\nSubject: root\n\nroot\n';
    const c = cleanup(b(input), sub({ recipients: ['root'] }));
    expect(header(c.headers, 'To')).toBe('root@example.org');
    expect(header(c.headers, 'Cc')).toBe('Ops Team <ops@example.org>, dev@example.org');
    expect(header(c.headers, 'Reply-To')).toBe('admin@example.org');
    expect(header(c.headers, 'Subject')).toBe('root');
    expect(c.body.toString()).toBe('root\n');
    expect(c.recipients).toEqual(['root@example.org']);
  });

  it('leaves already qualified address headers byte for byte', () => {
    const input = 'To:   "Ops"  <ops@example.org>,\n\tdev@example.org\n\n';
    expect(cleanup(b(input), sub()).headers).toContain('To:   "Ops"  <ops@example.org>,\n\tdev@example.org\n');
  });

  it('-t takes recipients from To, Cc and Bcc, removes Bcc, qualifies, de-duplicates', () => {
    const input = 'To: a@example.org, root\nCc: "C" <c@example.net>, A@Example.org\nBcc: hidden@example.com\nSubject: s\n\nbody\n';
    const c = cleanup(b(input), sub({ recipients: [], extractRecipients: true }));
    expect(c.recipients).toEqual(['a@example.org', 'root@example.org', 'c@example.net', 'hidden@example.com']);
    expect(c.headers).not.toMatch(/^Bcc:/im);
    expect(c.headers).not.toContain('hidden@example.com');
    expect(header(c.headers, 'To')).toBe('a@example.org, root@example.org');
  });

  it('-t with command-line addresses: those are removed from the header list (Exim)', () => {
    const input = 'To: a@example.com, b@example.com\nCc: c\n\n';
    const c = cleanup(b(input), sub({ recipients: ['b@example.com', 'c'], extractRecipients: true }));
    expect(c.recipients).toEqual(['a@example.com']);
  });

  it('-t with groups and folded headers', () => {
    const input = 'To: team: x@example.org,\n y@example.org;\nBcc: z@example.org,\n\tw\n\n';
    const c = cleanup(b(input), sub({ recipients: [], extractRecipients: true }));
    expect(c.recipients).toEqual(['x@example.org', 'y@example.org', 'z@example.org', 'w@example.org']);
    expect(headerNames(c.headers)).not.toContain('Bcc');
  });

  // An unqualified address before a name-addr in the same header: Exim (with
  // unqualified addresses allowed for local submissions) reads two addresses here.
  it.each<[string, string[], string]>([
    ['root, Admin <admin@example.net>', ['root@example.org', 'admin@example.net'], 'root@example.org, Admin <admin@example.net>'],
    ['root, "Admin" <admin>', ['root@example.org', 'admin@example.org'], 'root@example.org, "Admin" <admin@example.org>'],
  ])('-t keeps a bare local part before a named address: To: %s', (to, rcpts, qualified) => {
    const c = cleanup(b(`To: ${to}\n\n`), sub({ recipients: [], extractRecipients: true }));
    expect(c.recipients).toEqual(rcpts);
    expect(header(c.headers, 'To')).toBe(qualified);
  });

  // The domain goes in where the address is; names, comments, quotes and groups stay
  // as written (cron's `From: root (Cron Daemon)` kept its comment only from here on).
  it.each<[string, string]>([
    ['From: root (Cron Daemon)', 'From: root@example.org (Cron Daemon)'],
    ['From: "Cron Daemon" <root>', 'From: "Cron Daemon" <root@example.org>'],
    ['From: Cron Daemon <root>', 'From: Cron Daemon <root@example.org>'],
    ['To: (the admins) root, ops (on call)', 'To: (the admins) root@example.org, ops@example.org (on call)'],
    ['To: team: root, x@example.net;', 'To: team: root@example.org, x@example.net;'],
    ['Cc: "a, b" <ab>', 'Cc: "a, b" <ab@example.org>'],
    ['To: root@example.net (already)', 'To: root@example.net (already)'],
    ['From: "root', 'From: "root'],
  ])('qualifies in place: %s', (input, out) => {
    const c = cleanup(b(`${input}\n\n`), sub({ recipients: ['x@example.org'] }));
    expect(header(c.headers, input.slice(0, input.indexOf(':')))).toBe(out.slice(out.indexOf(':') + 2));
  });

  it('a header that grows past 78 octets is folded between addresses', () => {
    const many = Array.from({ length: 12 }, (_, i) => `user${i}`).join(', ');
    const c = cleanup(b(`To: ${many}\n\n`), sub({ recipients: ['x@example.org'] }));
    const raw = /^To:.*(?:\n[ \t].*)*/m.exec(c.headers)?.[0] ?? '';
    for (const line of raw.split('\n')) expect(line.length).toBeLessThanOrEqual(78);
    expect(raw.replace(/\n(?=[ \t])/g, '')).toBe(`To: ${Array.from({ length: 12 }, (_, i) => `user${i}@example.org`).join(', ')}`);
  });

  it('-t with no address headers gives no recipients', () => {
    expect(cleanup(b('Subject: x\n\n'), sub({ recipients: [], extractRecipients: true })).recipients).toEqual([]);
  });

  it('without -t the Bcc header is kept and not used', () => {
    const c = cleanup(b('Bcc: hidden@example.com\n\n'), sub());
    expect(c.recipients).toEqual(['ops@example.org']);
    expect(header(c.headers, 'Bcc')).toBe('hidden@example.com');
  });
});
