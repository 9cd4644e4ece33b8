// test/powerloss/lazyfs.ts: drives a LazyFS the developer built (not part of this
// repository): its binary is $LAZYFS, its configuration template $LAZYFS_CONFIG (optional;
// the fifo and log lines are set per mount). LazyFS keeps its own page cache and writes a
// file's data to the folder below only on fsync/fdatasync: killing its process is a power
// cut (every unsynced byte is gone); its fifo takes the crash faults (kill itself before
// or after an operation on a path matching a regex) and torn writes.
// Loopback only: LazyFS serves one mount point on this machine, nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Why the power-loss harness cannot run here, or undefined when it can. */
export function lazyfsUnavailable(): string | undefined {
  const bin = process.env.LAZYFS;
  if (!bin) return 'LAZYFS is not set (the path of a LazyFS binary you built; see README, Power-loss harness)';
  if (!existsSync(bin)) return `LAZYFS=${bin} does not exist`;
  if (process.getuid?.() !== 0) return 'needs root (FUSE mount with allow_other, a throwaway user for sendmail)';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  if (process.env.LAZYFS_CONFIG && !existsSync(process.env.LAZYFS_CONFIG)) return `LAZYFS_CONFIG=${process.env.LAZYFS_CONFIG} does not exist`;
  return undefined;
}

const DEFAULT_CONFIG = `[faults]
fifo_path="@FIFO@"
[cache]
apply_eviction=false
[cache.simple]
custom_size="512mb"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile="@LOG@"
`;

export class LazyFs {
  readonly root: string;
  readonly mnt: string;
  readonly fifo: string;
  readonly logFile: string;
  private readonly config: string;
  private readonly baseConfig: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** How the last mount ended: 'killed' (a power cut we made), 'fault' (LazyFS killed itself), or still 'up'. */
  state: 'down' | 'up' | 'exited' = 'down';

  /** `dir`: no "-o" in its path (LazyFS takes a --config-path holding "-o", any case, for a missing one). */
  constructor(readonly dir: string) {
    if (/-o/i.test(dir)) throw new Error(`LazyFS would not read a configuration under ${dir} ("-o" in the path)`);
    this.root = join(dir, 'root');
    this.mnt = join(dir, 'mnt');
    this.fifo = join(dir, 'faults.fifo');
    this.logFile = join(dir, 'lazyfs.log');
    this.config = join(dir, 'lazyfs.toml');
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.mnt, { recursive: true });
    const template = process.env.LAZYFS_CONFIG ? readFileSync(process.env.LAZYFS_CONFIG, 'utf8') : DEFAULT_CONFIG;
    const text = template
      .replace(/@FIFO@/g, this.fifo).replace(/@LOG@/g, this.logFile)
      .replace(/^fifo_path\s*=.*$/m, `fifo_path="${this.fifo}"`)
      .replace(/^#?\s*fifo_path_completed\s*=.*$/m, '')
      .replace(/^logfile\s*=.*$/m, `logfile="${this.logFile}"`);
    this.baseConfig = text;
  }

  /**
   * Mounts (root → mnt) and resolves once the mount is there. `injection`: TOML lines for
   * this mount only (a torn write: LazyFS's fifo takes torn-op commands but, in the version
   * tried, never fires them; its configuration file does).
   */
  async mount(injection = ''): Promise<void> {
    if (this.state === 'up') throw new Error('LazyFS is mounted already');
    writeFileSync(this.config, this.baseConfig + (injection ? `\n${injection}\n` : ''));
    // A fresh log per mount (LazyFS may append or not); the last one's kept as .prev.
    if (existsSync(this.logFile)) renameSync(this.logFile, `${this.logFile}.prev`);
    const child = spawn(process.env.LAZYFS!, [this.mnt, '--config-path', this.config, '-o', 'allow_other',
      '-o', 'modules=subdir', '-o', `subdir=${this.root}`, '-f'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    this.proc = child;
    this.exited = new Promise((res) => child.once('exit', () => { this.state = 'exited'; res(); }));
    const deadline = Date.now() + 30_000;
    while (!this.mounted()) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`LazyFS exited at mount: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`LazyFS did not mount in 30 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The fault worker opens its fifo once the cache is allocated: wait for that line.
    while (!/waiting for fault commands/.test(this.log())) {
      if (Date.now() > deadline) throw new Error('LazyFS fault worker not ready in 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    chmodSync(this.mnt, 0o755);
    this.state = 'up';
  }

  mounted(): boolean {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === this.mnt);
  }

  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  /** What LazyFS said of the fault it injected (the trigger, the bytes a torn write kept). */
  faultNote(): string {
    return this.log().split('\n').filter((l) => /Triggered fault|will persist|Killing LazyFS/.test(l))
      .map((l) => l.replace(/^\[[^\]]*\] \[[^\]]*\] \[[^\]]*\] /, '')).join('; ');
  }

  /** When LazyFS logged the fault that killed it (its log's local time, as this process reads it). */
  faultTime(): number | undefined {
    const m = /^\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\][^\n]*(?:Triggered fault|Killing LazyFS)/m.exec(this.log());
    return m ? new Date(`${m[1]}T${m[2]}`).getTime() : undefined;
  }

  /** Whether LazyFS is still serving (a crash fault makes it kill itself). */
  get alive(): boolean {
    return this.state === 'up';
  }

  whenExited(): Promise<void> {
    return this.exited;
  }

  /** One command on the fifo (LazyFS reads lines). */
  command(line: string): void {
    writeFileSync(this.fifo, line + '\n');
  }

  /** Kill LazyFS before/after the first `op` on a path matching `fromRgx` (or, for rename/link/symlink, `toRgx`). */
  crashAt(timing: 'before' | 'after', op: string, rgx: { from?: string; to?: string }): void {
    let line = `lazyfs::crash::timing=${timing}::op=${op}`;
    if (rgx.from) line += `::from_rgx=${rgx.from}`;
    if (rgx.to) line += `::to_rgx=${rgx.to}`;
    this.command(line);
  }

  /** Writes every cached byte to the folder below without a sync (the kernel's periodic writeback). */
  async checkpoint(): Promise<void> {
    const before = (this.log().match(/checkpoint is done/g) ?? []).length;
    this.command('lazyfs::cache-checkpoint');
    const deadline = Date.now() + 30_000;
    while ((this.log().match(/checkpoint is done/g) ?? []).length <= before && this.alive && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * The power cut: LazyFS dies with its cache (as its own crash faults do); `whileDead`
   * runs with the dead mount still in place (every operation on it fails), then the
   * mount is taken down.
   */
  async cut(whileDead?: () => Promise<void>): Promise<void> {
    if (this.state === 'up') this.proc?.kill('SIGKILL');
    await this.exited;
    await whileDead?.();
    this.unmountDead();
  }

  /** A clean stop: its cache written below first (so the next mount starts from everything), then unmounted. */
  async stop(): Promise<void> {
    if (this.state === 'up') {
      await this.checkpoint();
      spawnSync('fusermount3', ['-u', this.mnt], { stdio: 'ignore' });
      const t = setTimeout(() => this.proc?.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(t);
    }
    this.unmountDead();
  }

  private unmountDead(): void {
    if (this.mounted()) spawnSync('umount', ['-l', this.mnt], { stdio: 'ignore' });
    this.state = 'down';
  }
}
