// The transport's error mapping as a table, one row per error shape nodemailer gives
// (code, command, reply, system error) → scope, cause, phase, permanence. The rows read
// as the policy: host trouble never fails a recipient, a message refusal is shared by
// all its recipients, replies keep their enhanced code.
import { describe, expect, it } from 'vitest';
import { classifyError, classifyRejection, parseReply, type SmtpClientError } from '../../src/transports/smtp-errors.js';

function err(message: string, fields: Partial<SmtpClientError> = {}): SmtpClientError {
  return Object.assign(new Error(message), fields);
}
const reply = (code: number, text: string, command: string, type: string) =>
  err(`${type} failed: ${code} ${text}`, { code: type, response: `${code} ${text}`, responseCode: code, command });

const ROWS: [string, SmtpClientError, Record<string, unknown>][] = [
  ['connection refused', err('connect ECONNREFUSED 127.0.0.1:25', { code: 'ESOCKET', command: 'CONN' }),
    { scope: 'host', trouble: { cause: 'refused', phase: 'connect' } }],
  ['connect timeout', err('Connection timeout', { code: 'ETIMEDOUT', command: 'CONN', timeoutType: 'CONNECT_TIMEOUT' }),
    { scope: 'host', trouble: { cause: 'timeout', phase: 'connect' } }],
  ['greeting never came', err('Greeting never received', { code: 'ETIMEDOUT', command: 'CONN', timeoutType: 'GREETING_TIMEOUT' }),
    { scope: 'host', trouble: { cause: 'timeout', phase: 'greeting' } }],
  ['a silent hub mid-session', err('Timeout', { code: 'ETIMEDOUT', command: 'CONN', timeoutType: 'SOCKET_TIMEOUT' }),
    { scope: 'host', trouble: { cause: 'timeout' } }],
  ['no route to host', err('connect EHOSTUNREACH 10.9.9.9:25', { code: 'ESOCKET', command: 'CONN' }),
    { scope: 'host', trouble: { cause: 'unreachable', phase: 'connect' } }],
  ['connection closed', err('Connection closed unexpectedly', { code: 'ECONNECTION', command: 'CONN' }),
    { scope: 'host', trouble: { cause: 'lost_connection' } }],
  ['connection reset', err('read ECONNRESET', { code: 'ESOCKET', command: 'CONN' }),
    { scope: 'host', trouble: { cause: 'lost_connection' } }],
  ['an unknown library error', err('Something odd', { code: 'EPROTOCOL' }),
    { scope: 'host', trouble: { cause: 'lost_connection', note: 'Something odd' } }],
  ['greeting 554', reply(554, 'go away', 'CONN', 'EPROTOCOL'),
    { scope: 'host', trouble: { cause: 'reply', phase: 'greeting', reply: { code: 554, enhanced: '5.0.0', text: 'go away', derived: true } } }],
  ['EHLO 421', reply(421, '4.3.2 shutting down', 'EHLO', 'EPROTOCOL'),
    { scope: 'host', trouble: { cause: 'reply', phase: 'ehlo', reply: { code: 421, enhanced: '4.3.2', text: 'shutting down' } } }],
  ['STARTTLS refused', err('Error upgrading connection with STARTTLS: 454 TLS not available', { code: 'ETLS', response: '454 TLS not available', responseCode: 454, command: 'STARTTLS' }),
    { scope: 'host', trouble: { cause: 'tls', phase: 'starttls', note: 'Error upgrading connection with STARTTLS: 454 TLS not available' } }],
  ['certificate rejected', err('self-signed certificate', { code: 'ESOCKET' }),
    { scope: 'host', trouble: { cause: 'tls', phase: 'starttls', note: 'self-signed certificate' } }],
  ['AUTH 535', reply(535, '5.7.8 bad credentials', 'AUTH PLAIN', 'EAUTH'),
    { scope: 'host', trouble: { cause: 'auth', phase: 'auth', reply: { code: 535, enhanced: '5.7.8', text: 'bad credentials' } } }],
  ['connection lost during AUTH', err('Connection closed unexpectedly during AUTH', { code: 'EAUTH' }),
    { scope: 'host', trouble: { cause: 'auth', phase: 'auth', note: 'Connection closed unexpectedly during AUTH' } }],
  ['MAIL 452', reply(452, '4.3.1 full', 'MAIL FROM', 'EENVELOPE'),
    { scope: 'message', permanent: false, trouble: { cause: 'reply', phase: 'mail', reply: { code: 452, enhanced: '4.3.1', text: 'full' } } }],
  ['MAIL 553', reply(553, '5.7.1 sender refused', 'MAIL FROM', 'EENVELOPE'),
    { scope: 'message', permanent: true, trouble: { cause: 'reply', phase: 'mail' } }],
  ['DATA 554', reply(554, 'no valid recipients', 'DATA', 'EENVELOPE'),
    { scope: 'message', permanent: true, trouble: { cause: 'reply', phase: 'data' } }],
  ['after the dot 451', reply(451, '4.7.1 greylisted', 'DATA', 'EMESSAGE'),
    { scope: 'message', permanent: false, trouble: { cause: 'reply', phase: 'dot', reply: { code: 451, enhanced: '4.7.1', text: 'greylisted' } } }],
  ['after the dot 552', reply(552, '5.3.4 too big', 'DATA', 'EMESSAGE'),
    { scope: 'message', permanent: true, trouble: { cause: 'reply', phase: 'dot' } }],
  ['larger than the hub\'s SIZE', err('Message size larger than allowed 1000', { code: 'EMESSAGE', command: 'MAIL FROM' }),
    { scope: 'message', permanent: true, trouble: { cause: 'local', note: 'message refused before sending: Message size larger than allowed 1000' } }],
  ['our spool stream failed', err('body of X is missing chunk 0', { code: 'ESTREAM', command: 'API' }),
    { scope: 'message', permanent: false, trouble: { cause: 'local', note: 'spool read error: body of X is missing chunk 0' } }],
  ['every recipient refused', err("Can't send mail - all recipients were rejected", { code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550,
    rejectedErrors: [err('x', { recipient: 'a@b' })] }), { scope: 'recipients' }],
];

describe('nodemailer errors → scope, cause, phase', () => {
  for (const [name, e, want] of ROWS) {
    it(name, () => {
      expect(classifyError(e)).toMatchObject(want);
    });
  }
});

describe('RCPT rejections', () => {
  it.each([
    [550, '550 5.1.1 <a@b>: no such user', true, { code: 550, enhanced: '5.1.1', text: '<a@b>: no such user' }],
    [451, '451 try again later', false, { code: 451, enhanced: '4.0.0', text: 'try again later', derived: true }],
  ])('%i: permanent %s', (code, response, permanent, r) => {
    expect(classifyRejection(err('rejected', { response, responseCode: code, recipient: 'a@b' })))
      .toEqual({ permanent, trouble: { cause: 'reply', phase: 'rcpt', reply: r } });
  });
});

describe('parseReply', () => {
  it.each([
    ['250 2.0.0 Ok: queued as 1234', { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 1234' }],
    ['250 OK', { code: 250, enhanced: '2.0.0', text: 'OK', derived: true }],
    ['550-5.1.1 first line\r\n550 5.1.1 second line', { code: 550, enhanced: '5.1.1', text: 'first line second line' }],
    ['421-one\n421 two', { code: 421, enhanced: '4.0.0', text: 'one two', derived: true }],
    ['554', { code: 554, enhanced: '5.0.0', text: '', derived: true }],
  ])('%j', (text, want) => {
    expect(parseReply(text)).toEqual(want);
  });
});
