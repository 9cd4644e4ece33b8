// admin/summary.ts: postern-qgrep's --summary (exiqsumm's table) and --shape (qshape's
// domain × age table), as plain or JSON text. Built one message at a time: what is kept
// is one row per recipient domain, never the messages, so a million queued costs the
// same memory as ten.
import type { Listed } from '../spool/listing.js';
import { formatAge } from './format.js';

interface Row {
  count: number;
  volume: number;
  oldest: number;
  newest: number;
}

const domainOf = (address: string): string => {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
};

/** exiqsumm: per recipient domain of the undelivered addresses, their count, the messages' volume, oldest and newest arrival. */
export class QueueSummary {
  private readonly rows = new Map<string, Row>();
  private readonly total: Row = { count: 0, volume: 0, oldest: Infinity, newest: -Infinity };

  add(m: Listed): void {
    for (const r of m.recipients) {
      if (r.state !== 'pending') continue;
      const d = domainOf(r.address);
      let row = this.rows.get(d);
      if (!row) this.rows.set(d, (row = { count: 0, volume: 0, oldest: Infinity, newest: -Infinity }));
      for (const x of [row, this.total]) {
        x.count++;
        x.volume += m.size;
        x.oldest = Math.min(x.oldest, m.arrival);
        x.newest = Math.max(x.newest, m.arrival);
      }
    }
  }

  /** exiqsumm's layout (sorted by domain), ages from `now`. */
  text(now: number): string {
    const line = (r: Row, name: string, none = '0m') =>
      `${String(r.count).padStart(5)}  ${volume(r.volume)}  ${age(now, r.oldest, '0m').padStart(6)}  ${age(now, r.newest, none).padStart(6)}  ${name.slice(0, 80)}\n`;
    let out = '\nCount  Volume  Oldest  Newest  Domain\n-----  ------  ------  ------  ------\n\n';
    for (const d of [...this.rows.keys()].sort()) out += line(this.rows.get(d) as Row, d);
    out += `${'-'.repeat(63)}\n`;
    out += line(this.total, 'TOTAL', '0000d'); // exiqsumm's words for an empty queue
    return out + '\n';
  }

  /** One object per domain, then the total (`"domain": null, "total": true`). */
  json(): string {
    const obj = (r: Row, domain: string | null) => JSON.stringify({
      domain, ...(domain === null ? { total: true } : {}), count: r.count, volume: r.volume,
      oldest: r.count ? new Date(r.oldest).toISOString() : null, newest: r.count ? new Date(r.newest).toISOString() : null,
    }) + '\n';
    let out = '';
    for (const d of [...this.rows.keys()].sort()) out += obj(this.rows.get(d) as Row, d);
    return out + obj(this.total, null);
  }
}

/** exiqsumm's volume column: bytes below 10000, then KB, then MB; 6 wide. */
function volume(n: number): string {
  if (n < 10000) return String(n).padStart(6);
  if (n < 10_000_000) return `${String(Math.floor((n + 512) / 1024)).padStart(4)}KB`;
  return `${String(Math.floor((n + 512 * 1024) / 1024 / 1024)).padStart(4)}MB`;
}

/** exiqsumm's age columns are -bp's age strings. */
function age(now: number, at: number, none: string): string {
  return Number.isFinite(at) ? formatAge(now - at).trim() : none;
}

/** qshape's buckets: upper bounds in minutes, the last one open. */
const SHAPE_BUCKETS = [5, 10, 20, 40, 80, 160, 320, 640, 1280] as const;
const SHAPE_LABELS = [...SHAPE_BUCKETS.map(String), '1280+'];

/** qshape: undelivered recipients per domain and age bucket, a TOTAL row first, domains by count. */
export class QueueShape {
  private readonly rows = new Map<string, number[]>();
  private readonly total = new Array<number>(SHAPE_LABELS.length).fill(0);

  constructor(private readonly now: number) {}

  add(m: Listed): void {
    const minutes = (this.now - m.arrival) / 60_000;
    let b = SHAPE_BUCKETS.findIndex((limit) => minutes < limit);
    if (b < 0) b = SHAPE_BUCKETS.length;
    for (const r of m.recipients) {
      if (r.state !== 'pending') continue;
      const d = domainOf(r.address);
      let row = this.rows.get(d);
      if (!row) this.rows.set(d, (row = new Array<number>(SHAPE_LABELS.length).fill(0)));
      row[b] = (row[b] as number) + 1;
      this.total[b] = (this.total[b] as number) + 1;
    }
  }

  private sorted(): [string, number[]][] {
    const sum = (r: number[]) => r.reduce((a, b) => a + b, 0);
    return [...this.rows].sort((a, b) => sum(b[1]) - sum(a[1]) || (a[0] < b[0] ? -1 : 1));
  }

  text(): string {
    const rows: [string, number[]][] = [['TOTAL', this.total], ...this.sorted()];
    const cells = rows.map(([d, r]) => [d, String(r.reduce((a, b) => a + b, 0)), ...r.map(String)]);
    const header = ['', 'T', ...SHAPE_LABELS];
    const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
    const fmt = (c: string[]) => c.map((x, i) => x.padStart(widths[i] as number)).join(' ').trimEnd() + '\n';
    return [header, ...cells].map(fmt).join('');
  }

  /** One object per domain, TOTAL first (`"domain": null`); buckets keyed by qshape's labels. */
  json(): string {
    const obj = (domain: string | null, r: number[]) => JSON.stringify({
      domain, total: r.reduce((a, b) => a + b, 0), buckets: Object.fromEntries(SHAPE_LABELS.map((l, i) => [l, r[i]])),
    }) + '\n';
    return obj(null, this.total) + this.sorted().map(([d, r]) => obj(d, r)).join('');
  }
}
