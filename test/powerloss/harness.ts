// test/powerloss/harness.ts: one power-loss round. The spool folder (LMDB's files, the
// bodies/ folder, the reserve, the delivery lock), the maildrop and the main log are on
// a LazyFS mount; a mixed load runs against a real daemon (SMTP on loopback, sendmail as
// root and as a throwaway user, bodies past the 1 MB body-file threshold, deliveries to
// a sink, -Mf/-Mt/-Mrm); the cut stops every postern process, kills LazyFS (every
// unsynced byte is gone, as on power loss), kills the processes and only then takes the
// mount down (nothing runs on after the cut); then LazyFS is mounted again, postern
// restarted, and the round checks what a power cut must not break:
//   - the spool opens (a queue listing, the daemon's start, sendmail before the daemon);
//   - every message acknowledged before the cut (a 250 read by the client, a sendmail
//     exit 0) reaches the sink (duplicates counted, not lost), whole (its body exactly
//     as sent); a removal acknowledged (-Mrm exit 0) stays removed; a freeze stays;
//   - the main log and the journal agree with the spool: no surviving `<=` line of a
//     message that is neither in the spool nor delivered nor removed, no `Completed` of
//     a message still in the spool, a frozen message's journal says who froze it, every
//     delivery after the restart has its `=>` and `Completed`;
//   - nothing is left behind: no body file, no maildrop file; the reserve has its size.
//   - nothing was written past the cut (the folder under the mount point is empty), no
//     daemon died before it (a panic in the log as it stood then), and no message the
//     log said was received then is gone (the pre-cut log is evidence, never an
//     acknowledgement: acknowledgements are only the 250s and exit 0s this process saw).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, waitUntil } from '../helpers/postern.js';
import { Sink } from '../helpers/sink.js';
import { RawSmtp } from '../helpers/smtp-client.js';
import type { TestUser } from '../helpers/postdrop.js';
import { LazyFs } from './lazyfs.js';

/** A targeted cut: LazyFS kills itself before or after the first matching operation. */
export interface Target {
  name: string;
  timing: 'before' | 'after';
  op: string;
  /** Instead of a crash fault: our kill this many ms into the load. */
  killAtMs?: number;
  from?: string;
  to?: string;
  /** Armed before the daemon starts (operations of its start: the reserve, the lock, the config caches). */
  atStart?: boolean;
  /** Instead of a crash fault: a torn write of `file` (under the mount): its `occurrence`th write since the mount cut in `parts`, those in `persist` kept, then LazyFS dies. */
  torn?: { file: string; occurrence: number; parts: number; persist: number[] };
  /** The load this round needs to reach the operation (big bodies, sendmail, operator actions). */
  load?: Partial<LoadMix>;
}

export interface LoadMix {
  smtpClients: number;
  sendmailRoot: boolean;
  sendmailUser: boolean;
  operator: boolean;
  /** Share of big messages (past the 1 MB body-file threshold). */
  big: number;
}

export interface RoundSpec {
  round: number;
  seed: number;
  /** Random round: cut after this many ms of load; a targeted round: the fault's own moment (this is the limit). */
  cutAfterMs: number;
  target?: Target;
  /** A writeback of everything cached (LazyFS checkpoint) at this moment of the load, as the kernel's flusher would. */
  writebackAtMs?: number;
  user: TestUser;
  /** The drop group: the setgid helper (postdrop) an ordinary user's sendmail writes through is root:group 2755. */
  dropGroup: number;
}

export interface RoundResult {
  round: number;
  name: string;
  /** Whether the cut came from the fault (targeted), or from our kill. */
  cutBy: 'fault' | 'kill';
  offered: number;
  acknowledged: number;
  ackBySmtp: number;
  ackBySendmailRoot: number;
  ackBySendmailUser: number;
  big: number;
  operatorActions: number;
  removedAcked: number;
  expected: number;
  delivered: number;
  lost: string[];
  duplicated: number;
  resurrected: string[];
  torn: string[];
  faults: string[];
  ms: number;
  /** What LazyFS said of the fault (a targeted round). */
  note: string;
  /** Messages an -Mrm killed by the cut may have removed. */
  uncertain: string[];
  /** Pre-cut `<=` log lines of messages that are nowhere after the restart. */
  vanished: string[];
}

const rand = (seed: number) => () => {
  // mulberry32: a seeded run can be replayed
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

/** The body of a message: numbered lines naming its token, so a torn, short or mixed body shows. */
export function bodyFor(token: string, size: number): string {
  const fill = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const head = `${token} ${i} `;
    const line = head + fill.repeat(2).slice(0, Math.max(0, 76 - head.length));
    lines.push(line);
    n += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

/** The token and size a message says it is (Subject: pl TOKEN SIZE). */
const subjectOf = (data: string) => /^Subject: pl (\S+) (\d+)\r?$/m.exec(data);

function bodyOf(data: string): string {
  const text = data.replace(/\r\n/g, '\n');
  const at = text.indexOf('\n\n');
  return at < 0 ? '' : text.slice(at + 2);
}

/** A message acknowledged: `at` is when the harness read the 250 or saw the exit 0 (kept in this process, off the mount). */
interface Acked { token: string; via: 'smtp' | 'sendmail-root' | 'sendmail-user'; id?: string; size: number; at: number }
/** `done`: its outcome is known (exit 0, or the daemon's refusal); false: killed by the cut, or failed as the daemon went (it may have been done). */
interface OpRecord { id: string; token: string; op: '-Mf' | '-Mt' | '-Mrm'; ok: boolean; done: boolean; at: number }

export class Round {
  private readonly rnd: () => number;
  private readonly base: string;
  private readonly fs: LazyFs;
  private readonly configPath: string;
  private readonly helper: string;
  private sink = new Sink();
  private daemon: ChildProcess | undefined;
  private daemonErr = '';
  private port = 0;
  private readonly children = new Set<ChildProcess>();
  private cutting = false;
  private readonly acked = new Map<string, Acked>();
  private readonly ops: OpRecord[] = [];
  /** Messages an operator's command is acting on now. */
  private readonly busy = new Set<string>();
  private offered = 0;
  private bigOffered = 0;
  private readonly faults: string[] = [];
  private readonly mix: LoadMix;
  /** Whether the daemon was ready before the cut (the maildrop and caches were set up). */
  private ready = false;
  /** The sink defers hold* recipients until the restart. */
  private holding = true;
  /** When the power went (ms, this process's clock): our kill, or the moment LazyFS logged its fault. */
  private cutAt = 0;
  /**
   * The main log as the processes wrote it before the cut (read through the mount while
   * the load runs, kept here, off the mount): what the log said before the cut took the
   * unsynced part of it. Evidence only: never counted as an acknowledgement.
   */
  private logMirror = '';
  private logFd: number | undefined;
  private logPos = 0;

  constructor(private readonly spec: RoundSpec) {
    this.rnd = rand(spec.seed);
    // No "-" before the random part: LazyFS ignores a --config-path with "-o" (any case) in it.
    this.base = mkdtempSync(join(tmpdir(), 'postern_powerloss_'));
    chmodSync(this.base, 0o755);
    this.fs = new LazyFs(this.base);
    this.configPath = join(this.base, 'postern.toml');
    // The setgid helper as the package installs it (root:drop group 2755), off the mount.
    this.helper = join(this.base, 'postdrop');
    copyFileSync(join(ROOT, 'dist/postdrop'), this.helper);
    chownSync(this.helper, 0, spec.dropGroup);
    chmodSync(this.helper, 0o2755);
    this.mix = { smtpClients: 2, sendmailRoot: true, sendmailUser: true, operator: true, big: 0.12, ...spec.target?.load };
  }

  get spool(): string { return join(this.fs.mnt, 'spool'); }
  get maildrop(): string { return join(this.fs.mnt, 'spool-maildrop'); }
  get mainlog(): string { return join(this.fs.mnt, 'log', 'mainlog'); }

  private writeConfig(): void {
    writeFileSync(this.configPath, `hostname = "web1.example.org"
qualify_domain = "example.org"
[listen]
smtp = ["127.0.0.1:${this.port}"]
max_recipients = 5
max_message_size = "4M"
[spool]
directory = "${this.spool}"
postdrop = "${this.helper}"
[smarthost]
hosts = ["127.0.0.1:${this.sink.port}"]
tls = "none"
timeout = "10s"
[log]
file = "${this.mainlog}"
`, { mode: 0o644 });
  }

  /** A bin/ command, as root or as the round's user, killed at the cut. */
  private run(name: string, args: string[], input: string | Buffer = '', as?: TestUser, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      // Its own process group (detached), so that the cut stops it with any helper it runs.
      const child = spawn(process.execPath, [BIN(name), '-C', this.configPath, ...args], {
        stdio: 'pipe', cwd: '/', detached: true,
        ...(as ? { uid: as.uid, gid: as.gid, env: { ...process.env, HOME: '/', USER: as.name, LOGNAME: as.name } } : {}),
      });
      this.children.add(child);
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.stdin.on('error', () => {});
      child.on('error', () => {});
      child.on('close', (code) => { clearTimeout(timer); this.children.delete(child); resolve({ code, stdout, stderr }); });
      child.stdin.end(input);
    });
  }

  /** The stderr of the daemons this round started before the current one. */
  private readonly daemonErrs: string[] = [];

  private async startDaemon(): Promise<void> {
    if (this.daemonErr) this.daemonErrs.push(this.daemonErr);
    this.daemonErr = '';
    const child = spawn(process.execPath, [BIN('postern'), '-C', this.configPath, '-bd', '-q1m'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.daemon = child;
    child.stderr!.on('data', (d) => (this.daemonErr += d));
    const line = await new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`daemon not ready in 30 s: ${this.daemonErr}`)), 30_000);
      child.stderr!.on('data', () => {
        const m = /ready, listening for SMTP on (\S+)/.exec(this.daemonErr);
        if (m) { clearTimeout(t); res(m[1] as string); }
      });
      child.on('exit', (code) => { clearTimeout(t); rej(new Error(`daemon exited ${code}: ${this.daemonErr}`)); });
      // A fault that fires during the start: the daemon may hang on the dead mount.
      void this.fs.whenExited().then(() => { clearTimeout(t); rej(new Error('LazyFS died during the start')); });
    });
    this.ready = true;
    if (this.port === 0) {
      this.port = Number(line.slice(line.lastIndexOf(':') + 1));
      this.writeConfig();
    }
  }

  private killDaemon(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    if (!d || d.exitCode !== null || d.signalCode !== null) return Promise.resolve();
    return new Promise((res) => { d.once('exit', () => res()); d.kill('SIGKILL'); });
  }

  private token(kind: string, i: number, big: boolean): { token: string; size: number } {
    const size = big ? 1_100_000 + Math.floor(this.rnd() * 700_000) : 200 + Math.floor(this.rnd() * 30_000);
    if (big) this.bigOffered++;
    return { token: `r${this.spec.round}-${kind}${i}`, size };
  }

  private message(token: string, size: number): string {
    return `From: load@example.org\nSubject: pl ${token} ${size}\n\n${bodyFor(token, size)}`;
  }

  private async smtpWorker(c: number): Promise<void> {
    for (let i = 0; !this.cutting && i < 400;) {
      let client: RawSmtp | undefined;
      try {
        client = (await RawSmtp.open(this.port)).client;
        await client.cmd('EHLO load.test');
        for (let k = 0; k < 4 && !this.cutting; k++, i++) {
          // A third go to a recipient the sink defers while the load runs: they stay in the
          // spool, for the operator's -Mf/-Mt/-Mrm and for the cut to find them there.
          const hold = this.mix.operator && this.rnd() < 0.35;
          const { token, size } = this.token(`s${c}-${hold ? 'h' : ''}`, i, this.rnd() < this.mix.big);
          await client.cmd(`MAIL FROM:<load${c}@example.org>`);
          await client.cmd(`RCPT TO:<${hold ? 'hold' : 'r'}${c}@example.org>`);
          this.offered++;
          // RawSmtp ends the data with CRLF . CRLF itself: the body's own last newline is that CRLF.
          const reply = await client.data(this.message(token, size).slice(0, -1));
          const m = /^250 .*id=(\S+)$/.exec(reply);
          if (m) this.acked.set(token, { token, via: 'smtp', id: m[1] as string, size, at: Date.now() });
        }
      } catch {
        // The daemon died under this connection: nothing unacknowledged counts.
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        client?.close();
      }
    }
  }

  private async sendmailWorker(as: TestUser | undefined): Promise<void> {
    const kind = as ? 'u' : 'm';
    for (let i = 0; !this.cutting && i < 200; i++) {
      const { token, size } = this.token(kind, i, this.rnd() < this.mix.big / 2);
      this.offered++;
      const r = await this.run('sendmail', ['-i', `${kind}@example.org`], this.message(token, size), as);
      if (r.code === 0) this.acked.set(token, { token, via: as ? 'sendmail-user' : 'sendmail-root', size, at: Date.now() });
    }
  }

  /** -Mf, -Mt, -Mrm on messages acknowledged by SMTP (their ID is known), through the daemon. */
  private async operator(): Promise<void> {
    while (!this.cutting) {
      await new Promise((r) => setTimeout(r, 150 + this.rnd() * 250));
      // One action at a time on a message: two operators' -Mf and -Mrm at once finish in an
      // order that need not be the daemon's (a round counted a message frozen that the
      // daemon had frozen, then removed).
      const pool = [...this.acked.values()].filter((a) => a.id && a.token.includes('-h') && !this.busy.has(a.id)
        && !this.ops.some((o) => o.id === a.id && o.op === '-Mrm' && o.ok));
      if (pool.length === 0 || this.cutting) continue;
      const a = pool[Math.floor(this.rnd() * pool.length)]!;
      const x = this.rnd();
      const op = x < 0.45 ? '-Mf' : x < 0.8 ? '-Mt' : '-Mrm';
      const at = Date.now();
      this.busy.add(a.id!);
      const r = await this.run('postern', [op, a.id!]).finally(() => this.busy.delete(a.id!));
      // done: the daemon's answer is known (exit 0, or its refusal: gone or being delivered).
      // Anything else (killed by the cut, or failed when the daemon went) may have been done.
      const refused = /does not exist|locked/.test(r.stdout + r.stderr);
      this.ops.push({ id: a.id!, token: a.token, op, ok: r.code === 0 && !refused, done: r.code === 0 || refused, at });
      if (process.env.POWERLOSS_DEBUG) console.log(`${op} ${a.id}: ${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`);
    }
  }

  /** Signals every live postern process's group (the daemon, the commands, sendmail and its helper). */
  private signalAll(sig: NodeJS.Signals): void {
    for (const c of [this.daemon, ...this.children]) {
      if (!c?.pid || c.exitCode !== null || c.signalCode !== null) continue;
      try {
        process.kill(-c.pid, sig);
      } catch { /* gone */ }
    }
  }

  /** With the mount down, the folder under the mount point is empty: else a process wrote past the cut. */
  private checkBare(): void {
    const left = readdirSync(this.fs.mnt);
    if (left.length > 0) this.faults.push(`written past the cut into the folder under the mount point: ${left.join(' ')}`);
  }

  /** Reads what the main log gained since the last look (through the mount, before the cut). */
  private mirrorLog(): void {
    try {
      if (this.logFd === undefined) {
        if (!existsSync(this.mainlog)) return;
        this.logFd = openSync(this.mainlog, 'r');
      }
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = readSync(this.logFd, buf, 0, buf.length, this.logPos);
        if (n <= 0) break;
        this.logPos += n;
        this.logMirror += buf.toString('latin1', 0, n);
      }
    } catch { /* the mount is going */ }
  }

  private closeMirror(): void {
    if (this.logFd !== undefined) {
      try { closeSync(this.logFd); } catch { /* the mount is gone */ }
      this.logFd = undefined;
    }
  }

  /** The pre-cut log's lines about one message. */
  private mirrorLines(id: string): string {
    return this.logMirror.split('\n').filter((l) => l.includes(id)).map((l) => l.slice(11)).join(' | ');
  }

  private delivered(): Map<string, { count: number; ids: Set<string> }> {
    const got = new Map<string, { count: number; ids: Set<string> }>();
    for (const m of this.sink.messages) {
      const s = subjectOf(m.data);
      if (!s) continue;
      const e = got.get(s[1] as string) ?? { count: 0, ids: new Set<string>() };
      e.count++;
      const id = /\bid ([0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2})/.exec(m.data)?.[1];
      if (id) e.ids.add(id);
      got.set(s[1] as string, e);
    }
    return got;
  }

  async run_(): Promise<RoundResult> {
    const t0 = Date.now();
    const name = this.spec.target ? `targeted ${this.spec.target.name}` : `random cut at ${this.spec.cutAfterMs} ms`;
    await this.sink.listen();
    this.sink.behaviour = { delayMs: Math.floor(this.rnd() * 30), rcpt: (a) => (this.holding && a.startsWith('hold') ? 451 : undefined) };
    const target = this.spec.target;
    const t = target?.torn;
    await this.fs.mount(t ? `[[injection]]\ntype="torn-op"\nfile="${join(this.fs.root, t.file)}"\noccurrence=${t.occurrence}\nparts=${t.parts}\npersist=[${t.persist.join(',')}]` : '');
    this.writeConfig();
    const arm = () => {
      if (!target) return;
      if (target.torn || target.killAtMs !== undefined) return; // set at the mount; our kill
      this.fs.crashAt(target.timing, target.op, { ...(target.from ? { from: target.from } : {}), ...(target.to ? { to: target.to } : {}) });
    };
    if (target?.atStart) arm();
    try {
      await this.startDaemon();
    } catch (err) {
      if (this.fs.alive) throw err;
      // The fault fired during the daemon's start: that was the cut.
    }
    // A targeted fault is armed after some load (acknowledged mail in the spool and in
    // flight when it fires), at a moment of the round's seed.
    const armAfterMs = target && !target.atStart && target.killAtMs === undefined ? 300 + Math.floor(this.rnd() * 1500) : 0;
    const cutAfterMs = target?.killAtMs ?? this.spec.cutAfterMs;

    // The load, until the cut.
    const work: Promise<void>[] = [];
    if (this.fs.alive && this.daemon) {
      for (let c = 0; c < this.mix.smtpClients; c++) work.push(this.smtpWorker(c));
      if (this.mix.sendmailRoot) work.push(this.sendmailWorker(undefined));
      if (this.mix.sendmailUser) work.push(this.sendmailWorker(this.spec.user));
      if (this.mix.operator) work.push(this.operator(), this.operator());
    }
    const loadStart = Date.now();
    let wroteBack = false;
    let lastMirror = 0;
    let armed = !target || target.atStart === true;
    await waitUntil('the cut', () => {
      if (!this.fs.alive) return true;
      const t = Date.now() - loadStart;
      if (!armed && t >= armAfterMs) {
        armed = true;
        arm();
      }
      if (t - lastMirror >= 100) {
        lastMirror = t;
        this.mirrorLog();
      }
      if (this.spec.writebackAtMs !== undefined && !wroteBack && t >= this.spec.writebackAtMs) {
        wroteBack = true;
        this.fs.command('lazyfs::cache-checkpoint');
      }
      return t >= armAfterMs + cutAfterMs;
    }, armAfterMs + cutAfterMs + 60_000);
    // The power cut, after which nothing may run on: no new process; every postern process
    // (with any helper it runs: each leads its own process group) stopped; LazyFS killed
    // with its cache (every unsynced byte gone); then the processes killed, and the mount
    // taken down only once they are gone. (Taken down first, a process still running
    // wrote into the bare folder under the mount point, and its exit 0 counted: the
    // sendmail message "lost" in earlier runs. checkBare() looks for that.)
    this.cutting = true;
    this.signalAll('SIGSTOP');
    this.mirrorLog(); // the last of the log as the stopped processes left it
    const cutBy = this.fs.alive ? 'kill' : 'fault';
    this.cutAt = cutBy === 'kill' ? Date.now() : this.fs.faultTime() ?? Date.now();
    await this.fs.cut(async () => {
      this.closeMirror();
      this.signalAll('SIGKILL');
      await Promise.all([this.killDaemon(), ...[...this.children].map((c) => exited(c))]);
    });
    this.checkBare();
    // The spool's files as the cut left them (below the mount), for a failing round's post-mortem.
    for (const f of ['spool.mdb', 'spool.mdb-lock']) {
      const from = join(this.fs.root, 'spool', f);
      if (existsSync(from)) copyFileSync(from, join(this.base, `${f}.at-cut`));
    }
    await Promise.all(work);
    const deliveredBeforeCut = this.delivered();
    const note = cutBy === 'fault' ? this.fs.faultNote() : '';

    // Power back.
    await this.fs.mount();
    const result = await this.check(deliveredBeforeCut);
    await this.killDaemon();
    for (const c of this.children) c.kill('SIGKILL');
    await this.fs.stop();
    await this.sink.close();
    if (process.env.POWERLOSS_KEEP || result.lost.length || this.faults.length || result.torn.length || this.vanished.length) {
      // For the post-mortem: the log as it stood before the cut, the daemons' stderr.
      writeFileSync(join(this.base, 'mainlog.pre-cut'), this.logMirror);
      writeFileSync(join(this.base, 'daemon.stderr'), this.daemonErrs.join('\n--- restart ---\n') + this.daemonErr);
      console.log(`round ${this.spec.round} kept in ${this.base}`);
    }
    else rmSync(this.base, { recursive: true, force: true });
    const ackd = [...this.acked.values()];
    return {
      round: this.spec.round, name, cutBy, offered: this.offered, acknowledged: ackd.length,
      ackBySmtp: ackd.filter((a) => a.via === 'smtp').length,
      ackBySendmailRoot: ackd.filter((a) => a.via === 'sendmail-root').length,
      ackBySendmailUser: ackd.filter((a) => a.via === 'sendmail-user').length,
      big: ackd.filter((a) => a.size > 1024 * 1024).length,
      operatorActions: this.ops.filter((o) => o.ok).length,
      ...result, faults: this.faults, ms: Date.now() - t0, note, uncertain: this.uncertain, vanished: this.vanished,
    };
  }

  /** Everything after the power comes back. */
  private async check(before: Map<string, { count: number; ids: Set<string> }>): Promise<Pick<RoundResult, 'expected' | 'delivered' | 'lost' | 'duplicated' | 'resurrected' | 'torn' | 'removedAcked'>> {
    const fault = (s: string) => { this.faults.push(s); };
    // What the operator's acknowledged actions leave, per message: the last one wins.
    const lastOp = new Map<string, OpRecord>();
    for (const o of this.ops) if (o.ok) lastOp.set(o.id, o);
    // A removal is final (nothing brings a message back): any acknowledged -Mrm.
    const removed = new Set(this.ops.filter((o) => o.ok && o.op === '-Mrm').map((o) => o.token));
    // An -Mrm the cut killed before it exited: the daemon may have removed the message
    // (its commit synced) without the command's exit 0. Neither expected nor lost.
    const maybeRemoved = new Set(this.ops.filter((o) => o.op === '-Mrm' && !o.done).map((o) => o.token));
    const maybeRemovedIds = new Set(this.ops.filter((o) => o.op === '-Mrm' && !o.done).map((o) => o.id));
    const uncertain = [...maybeRemoved].filter((t) => !removed.has(t) && this.acked.has(t));
    const frozenIds = new Set([...lastOp.values()].filter((o) => o.op === '-Mf' && !removed.has(o.token)).map((o) => o.id));

    // sendmail before the daemon starts, as an ordinary user: the maildrop and the config caches are usable.
    // (A cut inside the first start, before the maildrop was made, leaves sendmail nowhere to write: exit 75, as documented.)
    const wasReady = this.ready;
    const probe = `r${this.spec.round}-probe`;
    const sm = await this.run('sendmail', ['-i', 'probe@example.org'], this.message(probe, 300), this.spec.user);
    if (sm.code === 0) this.acked.set(probe, { token: probe, via: 'sendmail-user', size: 300, at: Date.now() });
    else if (wasReady || sm.code !== 75) fault(`sendmail as a user before the daemon's start exits ${sm.code}: ${sm.stderr.trim()}`);

    // The main log as it survived, before anything writes to it.
    const survived = existsSync(this.mainlog) ? readFileSync(this.mainlog, 'latin1') : '';
    if (survived.includes('\0')) fault('the main log holds NUL bytes after the cut');

    // The spool opens: a queue listing (no daemon: it picks up the maildrop first).
    const bp = await this.run('postern', ['-bp']);
    if (bp.code !== 0) fault(`postern -bp exits ${bp.code} after the cut: ${bp.stderr.trim()}`);
    const listed = new Map<string, boolean>();
    for (const m of bp.stdout.matchAll(/^\s*\S+\s+\S+\s+(\S{6}-\S{6}-\S{2}) <[^>]*>( \*\*\* frozen \*\*\*)?$/gm)) listed.set(m[1] as string, m[2] !== undefined);

    // Freezes and removals acknowledged before the cut hold.
    for (const id of frozenIds) {
      const tok = lastOp.get(id)!.token;
      if ((before.get(tok)?.count ?? 0) > 0) continue; // delivered before it was frozen (the hub had it, the settle came later)
      if (!listed.has(id)) fault(`${id} (${tok}) frozen by an acknowledged -Mf is not in the spool after the cut`);
      else if (!listed.get(id)) fault(`${id} (${tok}): acknowledged -Mf lost (not frozen after the cut)`);
      else {
        const vl = await this.run('postern', ['-Mvl', id]);
        if (!/frozen by/.test(vl.stdout)) fault(`${id}: frozen, but its journal (-Mvl) says nothing of it: ${vl.stdout.trim()}`);
      }
    }
    for (const o of this.ops) {
      if (o.ok && o.op === '-Mrm' && listed.has(o.id)) fault(`${o.id} (${o.token}): acknowledged -Mrm lost (back in the spool)`);
    }

    // The surviving log agrees with the spool.
    const logIds = (re: RegExp) => new Set([...survived.matchAll(re)].map((m) => m[1] as string));
    const received = logIds(/^\S+ \S+ (\S{6}-\S{6}-\S{2}) <= /gm);
    const completed = logIds(/^\S+ \S+ (\S{6}-\S{6}-\S{2}) Completed/gm);
    const deliveredIds = new Set([...before.values()].flatMap((e) => [...e.ids]));
    for (const id of completed) if (listed.has(id)) fault(`log says ${id} Completed, but the spool still holds it after the cut`);
    for (const id of received) {
      if (!listed.has(id) && !completed.has(id) && !deliveredIds.has(id) && !maybeRemovedIds.has(id) && !this.ops.some((o) => o.id === id && o.op === '-Mrm' && o.ok)) {
        fault(`log has ${id} <= but the message is neither in the spool, nor delivered, nor removed`);
      }
    }

    // The daemon starts on what is left.
    try {
      await this.startDaemon();
    } catch (err) {
      fault(`the daemon does not start after the cut: ${(err as Error).message}`);
      return { expected: 0, delivered: 0, lost: [...this.acked.keys()], duplicated: 0, resurrected: [], torn: [], removedAcked: removed.size };
    }
    // Everything goes now: the held recipients are taken, frozen and deferred mail forced.
    this.holding = false;
    const qff = await this.run('postern', ['-qff']);
    if (qff.code !== 0) fault(`postern -qff exits ${qff.code} after the restart: ${qff.stderr.trim()}`);

    const expected = [...this.acked.keys()].filter((t) => !removed.has(t) && !maybeRemoved.has(t));
    await waitUntil('every acknowledged message at the sink', () => {
      const got = this.delivered();
      return expected.every((t) => got.has(t));
    }, 90_000).catch(() => undefined);
    // And the queue drains (what was not acknowledged but stored is delivered too).
    await waitUntil('an empty queue', () => this.queueEmpty(), 60_000).catch(() => fault(`the queue does not drain: -bpc says ${this.queueCount}`));
    const got = this.delivered();
    // Each lost one with what is known of it (its spool ID for SMTP, its path in).
    const lost = expected.filter((t) => !got.has(t)).map((t) => {
      const a = this.acked.get(t)!;
      const when = a.at <= this.cutAt ? `acked ${this.cutAt - a.at} ms before the cut` : `acked ${a.at - this.cutAt} ms AFTER the cut`;
      // SMTP and sendmail alike are committed by the daemon (its pickup for sendmail: it holds the delivery lock).
      const ops = this.ops.filter((o) => o.token === t).map((o) => `${o.op} ${o.ok ? 'ok' : o.done ? 'refused' : 'killed'} ${o.at - this.cutAt} ms`);
      return `${t} (${a.via}${a.id ? ` ${a.id}` : ''}, ${a.size} bytes${a.size > 1024 * 1024 ? ', big' : ''}, ${when}, committed by the daemon${ops.length ? `; operator: ${ops.join(', ')}` : ''}${a.id ? `; pre-cut log: ${this.mirrorLines(a.id) || 'nothing'}` : ''})`;
    });
    // Messages the pre-cut log says were received (logged after their synced commit) that are nowhere now.
    const gotIds = new Set([...got.values()].flatMap((e) => [...e.ids]));
    const removedIds = new Set(this.ops.filter((o) => o.op === '-Mrm').map((o) => o.id));
    const preCompleted = new Set([...this.logMirror.matchAll(/^\S+ \S+ (\S{6}-\S{6}-\S{2}) Completed/gm)].map((m) => m[1] as string));
    this.vanished = [...this.logMirror.matchAll(/^(\S+ \S+) (\S{6}-\S{6}-\S{2}) <= .*$/gm)]
      .filter((m) => !gotIds.has(m[2] as string) && !deliveredIds.has(m[2] as string) && !listed.has(m[2] as string) && !removedIds.has(m[2] as string) && !preCompleted.has(m[2] as string))
      .map((m) => `${m[0]} (cut at ${new Date(this.cutAt).toISOString().slice(11, 23)})`);
    // What the killed -Mrm did: removed (the message never comes: counted lost before this was known) or not.
    this.uncertain = uncertain.map((t) => {
      const id = this.acked.get(t)?.id ?? '';
      return `${t} ${id} (${got.has(t) ? 'delivered: not removed' : `not delivered: removed by that -Mrm; pre-cut log: ${this.mirrorLines(id) || 'nothing'}`})`;
    });
    const resurrected = [...removed].filter((t) => (got.get(t)?.count ?? 0) > (before.get(t)?.count ?? 0));
    const duplicated = [...got.values()].reduce((n, e) => n + e.count - 1, 0);

    // Whole messages only: each body exactly as sent.
    const torn: string[] = [];
    for (const m of this.sink.messages) {
      const s = subjectOf(m.data);
      if (!s) { torn.push(`a message without its subject line (${m.raw.length} bytes)`); continue; }
      const got = bodyOf(m.data);
      const want = bodyFor(s[1] as string, Number(s[2]));
      if (got !== want) {
        let at = 0;
        while (at < got.length && got[at] === want[at]) at++;
        torn.push(`${s[1]} (${got.length} of ${want.length} bytes, differs at ${at}: ${JSON.stringify(got.slice(at, at + 40))})`);
      }
    }

    // Nothing left behind once the queue is empty.
    const bodies = existsSync(join(this.spool, 'bodies')) ? readdirSync(join(this.spool, 'bodies')) : [];
    if (bodies.length > 0 && this.queueCount === 0) fault(`bodies/ keeps ${bodies.length} file(s) with an empty queue: ${bodies.join(' ')}`);
    // A file still 0600 is one whose sendmail never finished (it exited non-zero or not at
    // all): the pickup leaves it for a day (INCOMPLETE_AGE). A complete one (0644) must be gone.
    const drops = existsSync(this.maildrop) ? readdirSync(this.maildrop).filter((f) => !f.startsWith('.')) : [];
    const complete = drops.filter((f) => (statSync(join(this.maildrop, f), { throwIfNoEntry: false })?.mode ?? 0) & 0o044);
    if (complete.length > 0) fault(`the maildrop keeps ${complete.length} complete file(s): ${complete.join(' ')}`);
    this.incompleteDrops = drops.length - complete.length;
    const reserve = join(this.spool, 'reserve');
    const rs = statSync(reserve, { throwIfNoEntry: false });
    if (!rs) fault('no reserve file after the restart');
    else if (rs.size < 1024 * 1024) fault(`the reserve file has ${rs.size} bytes after the cut (1 MiB expected): it keeps no room`);

    // The log of the restart: every delivery has its => and Completed.
    const after = readFileSync(this.mainlog, 'latin1');
    // A drop file the pickup threw away after the cut (not well-formed: torn, or short).
    for (const m of after.matchAll(/^.*maildrop: (?:removed|cannot remove) .*$/gm)) fault(`after the cut: ${m[0]}`);
    // A daemon that died of an error before the cut.
    for (const m of this.logMirror.matchAll(/^.* panic: .*$/gm)) fault(`before the cut: ${m[0]}`);
    // And before it (the pre-cut log: a removal whose line the cut took).
    for (const m of this.logMirror.matchAll(/^.*maildrop: (?:removed|cannot remove) .*$/gm)) if (!after.includes(m[0])) fault(`before the cut: ${m[0]}`);
    for (const [tok, e] of got) {
      if ((before.get(tok)?.count ?? 0) >= e.count) continue;
      for (const id of e.ids) {
        if (deliveredIds.has(id)) continue;
        if (!new RegExp(`^\\S+ \\S+ ${id} => `, 'm').test(after)) fault(`${id} (${tok}) delivered after the restart without its => line`);
        if (!new RegExp(`^\\S+ \\S+ ${id} Completed`, 'm').test(after)) fault(`${id} (${tok}) delivered after the restart without its Completed line`);
      }
    }
    // Where a lost one is now: still queued (found by its subject among the queued messages' headers), or nowhere.
    if (lost.length > 0) {
      const q = await this.run('postern', ['-bp']);
      const queued = [...q.stdout.matchAll(/(\S{6}-\S{6}-\S{2}) </g)].map((m) => m[1] as string);
      for (const [n, t] of expected.filter((x) => !got.has(x)).entries()) {
        let where = 'not in the spool after the restart';
        for (const id of queued) {
          const h = await this.run('postern', ['-Mvh', id]);
          if (h.stdout.includes(`pl ${t} `)) {
            const vl = await this.run('postern', ['-Mvl', id]);
            where = `still queued as ${id}: ${vl.stdout.trim().split('\n').slice(-3).join(' | ')}`;
            break;
          }
        }
        lost[n] += ` [${where}]`;
      }
    }
    return { expected: expected.length, delivered: expected.length - lost.length, lost, duplicated, resurrected, torn, removedAcked: removed.size };
  }

  /** Maildrop files left incomplete by the cut (their sendmail never exited 0). */
  incompleteDrops = 0;
  /** Tokens an -Mrm killed by the cut may have removed (not expected, not lost). */
  uncertain: string[] = [];
  /** `<=` lines of the pre-cut log whose message is nowhere after the restart. */
  vanished: string[] = [];
  private queueCount = -1;
  private lastAsk = 0;
  private asking = false;
  /** -bpc now and then (a probe for waitUntil: never blocks). */
  private queueEmpty(): boolean {
    if (!this.asking && Date.now() - this.lastAsk > 500) {
      this.asking = true;
      this.lastAsk = Date.now();
      void this.run('postern', ['-bpc']).then((r) => {
        this.queueCount = r.code === 0 ? Number(r.stdout.trim()) : -1;
        this.asking = false;
      });
    }
    return this.queueCount === 0;
  }
}

/** Resolves once the process has exited. */
function exited(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((res) => c.once('exit', () => res()));
}

/** Runs one round and returns what it found. */
export function runRound(spec: RoundSpec): Promise<RoundResult> {
  return new Round(spec).run_();
}
