// spool/message-id.ts: Exim 4.96 message IDs, `tttttt-pppppp-ss` in base 62 (0-9A-Za-z):
// arrival second, process id, and the fraction of the second in 1/2000 s. IDs from one
// generator never repeat and sort by arrival as plain strings. Also recognises the
// 23-character 4.97 shape, which is accepted wherever an ID is parsed.

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function base62(n: number, width: number): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = ALPHABET[n % 62] + s;
    n = Math.floor(n / 62);
  }
  return s;
}

export function decodeBase62(s: string): number {
  let n = 0;
  for (const c of s) n = n * 62 + ALPHABET.indexOf(c);
  return n;
}

const ID_RE = /^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$/;
const LONG_ID_RE = /^[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}$/;

export function isMessageId(s: string): boolean {
  return ID_RE.test(s) || LONG_ID_RE.test(s);
}

/** Seconds since the epoch encoded in an ID. */
export function idTime(id: string): number {
  return decodeBase62(id.slice(0, 6));
}

/** Makes IDs for one process; `pid` is the middle part. */
export class MessageIdGenerator {
  private lastSecond = 0;
  private lastFraction = -1;
  constructor(private readonly pid: number = process.pid) {}

  next(nowMs: number): string {
    let second = Math.floor(nowMs / 1000);
    let fraction = Math.floor((nowMs % 1000) * 2);
    // Exim waits for the clock to move on; we step to the next free slot instead,
    // which keeps IDs unique and in order even at thousands per second.
    if (second < this.lastSecond || (second === this.lastSecond && fraction <= this.lastFraction)) {
      second = this.lastSecond;
      fraction = this.lastFraction + 1;
      if (fraction >= 2000) {
        second += 1;
        fraction = 0;
      }
    }
    this.lastSecond = second;
    this.lastFraction = fraction;
    return `${base62(second, 6)}-${base62(this.pid, 6)}-${base62(fraction, 2)}`;
  }
}
