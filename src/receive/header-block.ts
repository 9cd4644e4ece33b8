// receive/header-block.ts: a message's bytes as the receivers get them: line ends to
// LF across chunks (LineEnds), the header block split from the body as it streams
// (HeaderSplitter, at most 1 MB held), and the block parsed into header fields. Bytes
// only: what the fields mean, and what is added or fixed, is cleanup.ts's.
/** CRLF to LF, across chunk boundaries. */
const CR = 13;
const LF = 10;

export class LineEnds {
  private carry = false;
  /** One pass over the bytes, at most one copy; a chunk without CR is passed through. */
  push(chunk: Buffer): Buffer {
    return this.convert(chunk, false);
  }
  /** As push(), but converts in the chunk's own memory (the caller gives it up): no copy at all. */
  pushInPlace(chunk: Buffer): Buffer {
    return this.convert(chunk, true);
  }
  private convert(chunk: Buffer, inPlace: boolean): Buffer {
    let buf = this.carry ? Buffer.concat([Buffer.of(CR), chunk]) : chunk;
    this.carry = buf.length > 0 && buf[buf.length - 1] === CR;
    if (this.carry) buf = buf.subarray(0, -1);
    let cr = buf.indexOf(CR);
    if (cr < 0) return buf;
    // In place is safe: the output never gets ahead of the input (copyWithin is a
    // memmove, and a builtin: cheaper per line than Buffer#copy).
    const out = inPlace ? buf : Buffer.from(buf);
    let o = 0;
    let start = 0;
    for (; cr >= 0; cr = out.indexOf(CR, cr + 1)) {
      if (out[cr + 1] !== LF) continue; // a bare CR stays
      out.copyWithin(o, start, cr);
      o += cr - start;
      start = cr + 1;
    }
    out.copyWithin(o, start);
    o += out.length - start;
    return out.subarray(0, o);
  }
  end(): Buffer {
    return this.carry ? Buffer.from('\r', 'latin1') : Buffer.alloc(0);
  }
}

export interface Header {
  /** Name as written. */
  name: string;
  /** Whole header, folded lines included, ending with LF. */
  raw: string;
}

export interface ParsedMessage {
  headers: Header[];
  body: Buffer;
}

/** Exim's header_maxsize: a header block larger than this is refused (552 5.3.4). */
const MAX_HEADER_SIZE = 1024 * 1024;

/** The header block of a message being received is over MAX_HEADER_SIZE. */
export class HeaderTooLong extends Error {}

const SP = 32;
const TAB = 9;
const COLON = 58;
const isNameByte = (c: number) => c >= 0x21 && c <= 0x7e && c !== COLON;

/**
 * Where the header block ends, for a message arriving in pieces (LF line ends): holds
 * the header lines (at most `limit` bytes), passes everything after them on. Splits
 * exactly as parseMessage does: at the blank line (which belongs to neither part), or
 * at the first line that is neither a header nor a continuation (the body starts there).
 */
export class HeaderSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  /** `buf` is the caller's chunk (not copied until more must be held). */
  private borrowed = false;
  /** Start of the first line not yet read as a header line. */
  private scanned = 0;
  private sawHeader = false;
  private block: Buffer | undefined;
  /** The partial last line starting at namesFrom is known to be name bytes up to namesTo (or to have its colon there). */
  private namesFrom = -1;
  private namesTo = 0;

  constructor(private readonly limit = MAX_HEADER_SIZE) {}

  /** The header lines (LF-terminated except perhaps the last), once the split is known. */
  get head(): Buffer | undefined {
    return this.block;
  }

  /** Body bytes in this piece: none while the headers are still coming. Throws HeaderTooLong. */
  push(chunk: Buffer): Buffer {
    if (this.block) return chunk;
    const searched = this.len; // no LF before this but the lines already read
    this.append(chunk);
    const held = this.buf.subarray(0, this.len);
    for (let nl = held.indexOf(LF, Math.max(this.scanned, searched)); nl >= 0; nl = held.indexOf(LF, this.scanned)) {
      if (nl === this.scanned) return this.finish(this.scanned, nl + 1);
      if (!this.isHeaderLine(this.scanned, nl, true)) return this.finish(this.scanned, this.scanned);
      this.sawHeader = true;
      this.scanned = nl + 1;
    }
    // A partial last line: wait for its end unless its first bytes already say it is body.
    if (this.scanned < this.len) {
      if (!this.isHeaderLine(this.scanned, this.len, false, this.namesFrom === this.scanned ? this.namesTo : this.scanned)) return this.finish(this.scanned, this.scanned);
      this.namesFrom = this.scanned;
    }
    if (this.len > this.limit) throw new HeaderTooLong('message header too long');
    return Buffer.alloc(0);
  }

  /** At the end of the message: the body bytes still held (a message may be headers only). */
  end(): Buffer {
    if (this.block) return Buffer.alloc(0);
    // A last line without LF that reads as a header is one (parseMessage's rule).
    if (this.scanned < this.len && this.isHeaderLine(this.scanned, this.len, true)) return this.finish(this.len, this.len);
    return this.finish(this.scanned, this.scanned);
  }

  /**
   * Whether bytes [from, to) are (`complete`) or could still become (a prefix of) a
   * header line: a continuation after a header, or header-name bytes then a colon.
   */
  private isHeaderLine(from: number, to: number, complete: boolean, resume = from): boolean {
    const b = this.buf;
    const first = b[from] as number;
    if (first === SP || first === TAB) return this.sawHeader;
    for (let i = resume; i < to; i++) {
      const c = b[i] as number;
      if (c === COLON) {
        this.namesTo = i;
        return i > from;
      }
      if (!isNameByte(c)) return false;
    }
    this.namesTo = to;
    return !complete;
  }

  private append(chunk: Buffer): void {
    if (this.len === 0) {
      this.buf = chunk;
      this.len = chunk.length;
      this.borrowed = true;
      return;
    }
    if (this.borrowed || this.len + chunk.length > this.buf.length) {
      // Doubling keeps many small pieces linear; bounded by the limit plus one piece.
      const grown = Buffer.allocUnsafe(Math.max(this.len + chunk.length, this.buf.length * 2, 4096));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
      this.borrowed = false;
    }
    chunk.copy(this.buf, this.len);
    this.len += chunk.length;
  }

  private finish(headEnd: number, bodyStart: number): Buffer {
    if (headEnd > this.limit) throw new HeaderTooLong('message header too long');
    this.block = Buffer.from(this.buf.subarray(0, headEnd));
    const body = this.buf.subarray(bodyStart, this.len);
    this.buf = Buffer.alloc(0);
    this.len = 0;
    return body;
  }
}

/** The headers of a header block as HeaderSplitter delimits it (every line is a header line). */
export function parseHeaderBlock(head: Buffer): Header[] {
  const headers: Header[] = [];
  let pos = 0;
  while (pos < head.length) {
    let nl = head.indexOf(LF, pos);
    if (nl < 0) nl = head.length;
    const line = head.toString('latin1', pos, nl);
    const last = headers[headers.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) last.raw += line + '\n';
    else headers.push({ name: line.slice(0, line.indexOf(':')), raw: line + '\n' });
    pos = nl + 1;
  }
  return headers;
}

/** Splits an LF message into headers and body (at the blank line, or at the first non-header line). */
export function parseMessage(data: Buffer): ParsedMessage {
  const split = new HeaderSplitter(Infinity);
  const first = split.push(data);
  const rest = split.end();
  return { headers: parseHeaderBlock(split.head ?? Buffer.alloc(0)), body: rest.length ? rest : first };
}

export function headerValue(h: Header): string {
  return h.raw.slice(h.raw.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ').trim();
}

export function findHeader(headers: Header[], name: string): Header | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower);
}
