// core/replies.ts: the one table of SMTP replies postern sends. Code elsewhere names a
// reply (REPLY.relayDenied), never writes 550 inline, so codes and enhanced status
// codes stay consistent and tests can assert on the names.
import type { SmtpReply } from './types.js';

const r = (code: number, enhanced: string, text: string): SmtpReply => ({ code, enhanced, text });

export const REPLY = {
  queued: (id: string) => r(250, '2.0.0', `OK id=${id}`),
  relayDenied: r(550, '5.7.1', 'Relay not permitted'),
  tooManyRecipients: r(452, '4.5.3', 'Too many recipients'),
  messageTooBig: r(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  /** Exim's header_maxsize (1 MB): the header block alone is over it. */
  headerTooLong: r(552, '5.3.4', 'Message header too long'),
  badSender: r(553, '5.1.7', 'Bad sender address syntax'),
  badRecipient: r(553, '5.1.3', 'Bad recipient address syntax'),
  spoolUnavailable: r(452, '4.3.1', 'Insufficient system storage, try again later'),
  localError: r(451, '4.3.0', 'Local error in processing, try again later'),
  shuttingDown: r(421, '4.3.2', 'Service shutting down, try again later'),
  badHeader: r(554, '5.6.0', 'Message headers are malformed'),
} as const;

/** An Error carrying a reply, in the shape smtp-server's hooks expect (responseCode). */
export class ReplyError extends Error {
  readonly responseCode: number;
  constructor(readonly reply: SmtpReply) {
    super(`${reply.enhanced} ${reply.text}`);
    this.responseCode = reply.code;
  }
}
