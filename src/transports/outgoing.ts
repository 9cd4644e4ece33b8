// transports/outgoing.ts: a delivery job as it leaves. The envelope sender and the
// header block are rewritten by the rules the transport was given (Debian's
// return_path and headers_rewrite on the smarthost transport: rewrite/, injected by
// the composition root, so transports/ imports nothing of it); the body streams past
// untouched, and the spool (and any bounce) keeps the original. Then headers, the
// blank line and the body, as one stream or, for a body small enough to hold, its
// pieces read at once.
import { Readable } from 'node:stream';
import type { DeliveryJob } from './transport.js';

/** Rewriting on the way out (rewrite/rewriter.ts's rewriteSender and rewriteHeaders, bound to their rules). */
export interface OutgoingRewrite {
  sender(address: string): string;
  /** The header block, a byte string (one char per byte), LF line ends. */
  headers(block: string): string;
}

/** What goes on the wire: the envelope and the whole message (headers, blank line, body), LF line ends. */
export interface OutgoingJob {
  id: string;
  sender: string;
  recipients: string[];
  /** Bytes of the message as sent (before CRLF and dot-stuffing). */
  size: number;
  /** A fresh stream of the whole message. */
  message: () => Readable;
  /** The whole message read at once, in pieces (the header block and blank line, then the body's chunks), when the job's body can be. */
  messageParts?: () => Buffer[];
}

export function outgoing(job: DeliveryJob, rw?: OutgoingRewrite): OutgoingJob {
  const headers = rw ? rw.headers(job.headers) : job.headers;
  const bodyChunks = job.bodyChunks;
  return {
    id: job.id,
    sender: rw ? rw.sender(job.sender) : job.sender,
    recipients: job.recipients,
    size: job.size + headers.length - job.headers.length,
    message: () => {
      const body = job.body();
      async function* all() {
        yield Buffer.from(headers + '\n', 'latin1'); // headers are byte strings
        for await (const chunk of body) yield chunk as Buffer;
      }
      return Readable.from(all(), { objectMode: false });
    },
    ...(bodyChunks ? { messageParts: () => [Buffer.from(headers + '\n', 'latin1'), ...bodyChunks()] } : {}),
  };
}
