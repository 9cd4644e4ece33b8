// spool/record.ts: the decoder of stored message records. A record keeps its format
// version (`v`); this accepts every version this postern can read (v1: the format
// since the first release) and refuses a newer one by name rather than misread it.
import type { MessageRecord } from '../core/types.js';

/** A record written by a newer postern than this one. */
export class RecordVersionError extends Error {}

export function decodeRecord(raw: unknown): MessageRecord {
  const r = raw as Partial<MessageRecord> & { v?: unknown; id?: unknown };
  if (r === null || typeof r !== 'object') throw new RecordVersionError('malformed message record');
  if (r.v === 1) {
    // v1 records from every release so far carry these; defaults keep an odd one readable.
    return { ...r, warningsSent: r.warningsSent ?? 0, attempts: r.attempts ?? 0, frozen: r.frozen ?? false } as MessageRecord;
  }
  throw new RecordVersionError(`message ${String(r.id)} has record version ${String(r.v)}, which this postern cannot read`);
}
