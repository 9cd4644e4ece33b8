// spool/listing.ts: a message's listing entry, what -bp and postern-qgrep show and select
// on (arrival, size, sender, frozen, each recipient's address and state), written by
// store.save beside the record in the same transaction (sub-database `listing`, keyed by
// ID): a short JSON array, several times cheaper to read than the msgpack record, which
// carries its own structure definition. Versioned by its first element; an entry this
// postern cannot read, or a message without one (stored by a postern before it), is
// listed from its record (queries.ts). So a postern that writes records of a newer
// version writes entries of a newer version with them (or none), and the listing of an
// older one reads the record and refuses it by its version.
import type { MessageRecord, RecipientRecord } from '../core/types.js';

/** What a listing shows of a message: a MessageRecord is one too. */
export interface Listed extends Pick<MessageRecord, 'id' | 'arrival' | 'size' | 'sender' | 'frozen'> {
  recipients: Pick<RecipientRecord, 'address' | 'state'>[];
}

const VERSION = 1;

/** `[1, arrival, size, frozen (0/1), sender, address, state, address, state...]`. */
export function listingOf(r: MessageRecord): string {
  const a: (string | number)[] = [VERSION, r.arrival, r.size, r.frozen ? 1 : 0, r.sender];
  for (const x of r.recipients) a.push(x.address, x.state);
  return JSON.stringify(a);
}

/** The entry as written by listingOf(), or undefined when it is not one this version reads. */
export function parseListing(id: string, text: string): Listed | undefined {
  let a: unknown;
  try {
    a = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(a) || a[0] !== VERSION || a.length % 2 === 0) return undefined;
  const recipients: Listed['recipients'] = [];
  for (let i = 5; i < a.length; i += 2) recipients.push({ address: a[i] as string, state: a[i + 1] as RecipientRecord['state'] });
  return { id, arrival: a[1] as number, size: a[2] as number, frozen: a[3] === 1, sender: a[4] as string, recipients };
}
