// Unit tests for Exim's local_from_check in src/receive/cleanup.ts: a local submission by
// an untrusted user whose From: is not their own address alone gets
// `Sender: login@qualify_domain`; a Sender: of theirs is removed; trusted users (root,
// the user this process runs as) and SMTP clients are left alone. One row per case.
import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { cleanup, type Submission } from '../../src/receive/cleanup.js';

const base: Submission = {
  id: '1xVME4-0001HS-0Y', now: Date.UTC(2026, 11, 7, 8, 0, 0), hostname: 'web1.example.org', qualifyDomain: 'example.org',
  sender: 'alice@example.org', recipients: ['ops@example.org'], protocol: 'local', user: 'alice',
};

/** The Sender: lines of the cleaned headers. */
const senders = (message: string, over: Partial<Submission> = {}) =>
  cleanup(Buffer.from(message), { ...base, ...over }).headers.split('\n').filter((l) => /^sender:/i.test(l));

describe('local_from_check', () => {
  it.each<[string, string, Partial<Submission>, string[]]>([
    ['From: someone else\'s address', 'From: root@example.org\n\nx\n', {}, ['Sender: alice@example.org']],
    ['From: their own address', 'From: alice@example.org\n\nx\n', {}, []],
    ['their own, with a name and unqualified', 'From: Alice Liddell <alice>\n\nx\n', {}, []],
    ['their own, the domain in capitals', 'From: alice@EXAMPLE.ORG\n\nx\n', {}, []],
    ['their own in another case (Exim compares without case)', 'From: Alice@Example.org\n\nx\n', {}, []],
    ['theirs at another domain', 'From: alice@example.com\n\nx\n', {}, ['Sender: alice@example.org']],
    ['two authors, one of them theirs', 'From: alice@example.org, bob@example.org\n\nx\n', {}, ['Sender: alice@example.org']],
    ['a Sender: of theirs is replaced', 'From: root@example.org\nSender: root@example.org\n\nx\n', {}, ['Sender: alice@example.org']],
    ['a Sender: of theirs goes, their own From: stays', 'From: alice@example.org\nSender: boss@example.org\n\nx\n', {}, []],
    ['no From: and -f someone else: the added From: is not theirs', 'Subject: s\n\nx\n', { sender: 'root@example.org' }, ['Sender: alice@example.org']],
    ['no From: and no -f: the added From: is theirs', 'Subject: s\n\nx\n', {}, []],
    ['root is trusted', 'From: boss@example.org\nSender: boss@example.org\n\nx\n', { user: 'root' }, ['Sender: boss@example.org']],
    ['the user this process runs as is trusted', 'From: boss@example.org\n\nx\n', { user: userInfo().username }, []],
    ['an SMTP client is not a local submission', 'From: boss@example.org\n\nx\n', { user: undefined, client: { ip: '127.0.0.1' }, protocol: 'esmtp' }, []],
  ])('%s', (_what, message, over, expected) => {
    expect(senders(message, over)).toEqual(expected);
  });
});
