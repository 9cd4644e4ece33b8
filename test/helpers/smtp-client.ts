// test/helpers/smtp-client.ts: a byte-exact SMTP client for tests: sends commands one
// at a time (or a pipelined group) and returns the server's replies verbatim.
import { createConnection, type Socket } from 'node:net';

export class RawSmtp {
  private buf = '';
  private waiting: (() => void) | undefined;
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { this.buf += d; this.waiting?.(); });
    sock.on('close', () => this.waiting?.());
  }

  static async open(port: number, host = '127.0.0.1'): Promise<{ client: RawSmtp; greeting: string }> {
    const sock = createConnection({ port, host });
    await new Promise<void>((res, rej) => { sock.once('connect', () => res()); sock.once('error', rej); });
    const client = new RawSmtp(sock);
    return { client, greeting: await client.reply() };
  }

  /** Reads one complete (possibly multi-line) reply. */
  async reply(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].replace(/\r\n/g, '\n').trimEnd();
      }
      if (this.sock.destroyed) throw new Error(`connection closed; unread: ${this.buf}`);
      if (Date.now() > deadline) throw new Error(`no reply; have: ${this.buf}`);
      await new Promise<void>((r) => { this.waiting = r; setTimeout(r, 100); });
      this.waiting = undefined;
    }
  }

  async cmd(line: string): Promise<string> {
    this.sock.write(line + '\r\n');
    return this.reply();
  }

  /** Sends a message body after a 354 and returns the final reply. */
  async data(body: string): Promise<string> {
    const go = await this.cmd('DATA');
    if (!go.startsWith('354')) return go;
    this.sock.write(body.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '\r\n.\r\n');
    return this.reply();
  }

  close(): void {
    this.sock.end('QUIT\r\n');
  }
}

/** One complete transaction; returns the final reply to the data. */
export async function sendOne(port: number, from: string, to: string[], body: string): Promise<string> {
  const { client } = await RawSmtp.open(port);
  try {
    await client.cmd('EHLO client.test');
    const m = await client.cmd(`MAIL FROM:<${from}>`);
    if (!m.startsWith('250')) return m;
    for (const t of to) await client.cmd(`RCPT TO:<${t}>`);
    return await client.data(body);
  } finally {
    client.close();
  }
}
