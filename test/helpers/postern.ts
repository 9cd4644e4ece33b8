// test/helpers/postern.ts: runs the real bin/ commands as child processes against a
// private config, spool and log in a temp folder, and waits for events (the ready
// line, a main-log line, a process exit) with bounded timeouts, never fixed sleeps.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Sink } from './sink.js';

export const ROOT = resolve(import.meta.dirname, '../..');
/**
 * How the helpers start a command: `node bin/NAME` (the default), or bin/NAME itself,
 * as an installed command is exec'd (its first line starts node with io_uring off);
 * from the checkout, or from a copy of it (code) that other users can read.
 */
export const launch = { direct: false, code: ROOT };
export const BIN = (name: string) => join(launch.code, 'bin', name);
/**
 * sendmail as installed: the C front end (dist/sendmail, src/postdrop/sendmail.c) when
 * built, which hands what it does not do to bin/sendmail; POSTERN_TEST_SENDMAIL=node
 * runs node's alone.
 */
const FRONT = () => join(launch.code, 'dist/sendmail');
const front = (name: string) => name === 'sendmail' && process.env.POSTERN_TEST_SENDMAIL !== 'node' && existsSync(FRONT());
export const command = (name: string, args: string[]): [string, string[]] =>
  front(name) ? [FRONT(), args] : launch.direct ? [BIN(name), args] : [process.execPath, [BIN(name), ...args]];

/**
 * Code other users can run (root only): the checkout when `nobody` can read it, else a
 * copy of what runs (bin, dist, node_modules, package.json; times kept, so bin/ picks
 * the bundle as it does here) in a world-readable temporary folder, which the caller
 * removes: a clone under /root or in a 0700 folder is out of other users' reach.
 */
export function codeOthersCanRead(): string {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }));
  const probe = spawnSync(process.execPath, ['-e', 'for (const f of process.argv.slice(1)) require("fs").accessSync(f, 4)',
    join(ROOT, 'bin/postern'), join(ROOT, 'dist/cli/main.js'), join(ROOT, 'node_modules/lmdb/package.json')], { uid: id('-u'), gid: id('-g'), cwd: '/' });
  if (probe.status === 0) return ROOT;
  const stage = mkdtempSync(join(tmpdir(), 'postern-code-'));
  for (const f of ['bin', 'dist', 'node_modules', 'package.json']) cpSync(join(ROOT, f), join(stage, f), { recursive: true, preserveTimestamps: true });
  execFileSync('chmod', ['-R', 'a+rX', stage]);
  return stage;
}

/** Whether a command's NODE_DEBUG=module stderr shows it ran from `bundle` (cli/submit.cjs, cli/list.cjs) alone, never main.js. */
export const ranFromBundle = (bundle: string, stderr: string) =>
  stderr.split('\n').some((l) => l.includes('load "') && l.includes(`/dist/${bundle}"`)) && !stderr.includes('cli/main.js');

/**
 * Whether bin/ runs sendmail's submission from dist/cli/submit.cjs (or with `cli/list.cjs`
 * the queue's listings; as it does after `npm test` or `npm run build`), not main.js
 * (after `npx tsc` alone): bin/'s own test.
 */
export function bundleFresh(bundle = 'cli/submit.cjs'): boolean {
  const at = (f: string) => statSync(join(ROOT, 'dist', f), { throwIfNoEntry: false })?.mtimeMs;
  const bundled = at(bundle);
  const compiled = at('.tsbuildinfo');
  return bundled !== undefined && (compiled === undefined || bundled >= compiled);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

type RunOpts = { input?: string | Buffer; env?: Record<string, string>; timeoutMs?: number };

export function runCommand(name: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  return runProgram(...command(name, args), opts);
}

/** Any program with `input` on stdin: its exit code and output; killed after 30 s. */
export function runProgram(file: string, args: string[], opts: RunOpts = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...opts.env }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${file} ${args.join(' ')} timed out`)); }, opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolvePromise({ code, stdout, stderr }); });
    child.stdin.on('error', () => { /* a program that exits before reading its input */ });
    child.stdin.end(opts.input ?? '');
  });
}

export async function waitUntil<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Where the daemon of `p` serves /metrics, from its ready output ("metrics on HOST:PORT"). */
export const metricsAt = (p: { daemonStderr: string }): string | undefined => /metrics on ([^\s)]+)/.exec(p.daemonStderr)?.[1];

export class Instance {
  readonly dir: string;
  readonly config: string;
  daemon: ChildProcess | undefined;
  port = 0;
  daemonStderr = '';

  constructor(smarthostPorts: number[], extra = '') {
    this.dir = mkdtempSync(join(tmpdir(), 'postern-test-'));
    this.config = join(this.dir, 'postern.toml');
    this.writeConfig(smarthostPorts, extra);
  }

  writeConfig(smarthostPorts: number[], extra = ''): void {
    const hosts = smarthostPorts.map((p) => `"127.0.0.1:${p}"`).join(', ');
    writeFileSync(this.config, `hostname = "web1.example.org"
qualify_domain = "example.org"
[listen]
smtp = ["127.0.0.1:${this.port}"]
max_recipients = 5
max_message_size = "1M"
[spool]
directory = "spool"
[smarthost]
hosts = [${hosts}]
tls = "none"
timeout = "10s"
[log]
file = "log/mainlog"
${extra}`);
  }

  run(name: string, args: string[], opts: Parameters<typeof runCommand>[2] = {}): Promise<RunResult> {
    return runCommand(name, ['-C', this.config, ...args], opts);
  }

  /** Starts `postern -bd` and resolves once it prints its ready line. */
  async start(args: string[] = ['-q1m']): Promise<void> {
    this.daemonStderr = '';
    const child = spawn(...command('postern', ['-C', this.config, '-bd', ...args]), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.daemon = child;
    child.stderr!.on('data', (d) => (this.daemonStderr += d));
    const line = await new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`daemon not ready: ${this.daemonStderr}`)), 20_000);
      child.stderr!.on('data', () => {
        const m = /ready, listening for SMTP on (\S+)/.exec(this.daemonStderr);
        if (m) { clearTimeout(t); res(m[1] as string); }
      });
      child.on('exit', (code) => { clearTimeout(t); rej(new Error(`daemon exited ${code}: ${this.daemonStderr}`)); });
    });
    const port = Number(line.slice(line.lastIndexOf(':') + 1));
    if (this.port === 0) {
      // Keep the port across restarts of this instance.
      this.port = port;
      const text = readFileSync(this.config, 'utf8').replace('"127.0.0.1:0"', `"127.0.0.1:${port}"`);
      writeFileSync(this.config, text);
    }
  }

  /** Ends the daemon with a signal and resolves with its exit code. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const d = this.daemon;
    this.daemon = undefined;
    if (!d || d.exitCode !== null || d.signalCode !== null) return Promise.resolve(d?.exitCode ?? null);
    return new Promise((res) => {
      d.on('exit', (code) => res(code));
      d.kill(signal);
    });
  }

  log(): string {
    const f = join(this.dir, 'log/mainlog');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  waitForLog(re: RegExp, count = 1, timeoutMs = 20_000): Promise<string[]> {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'gm');
    return waitUntil(`${count} log line(s) matching ${re}`, () => {
      const m = this.log().match(g);
      return m && m.length >= count ? m : undefined;
    }, timeoutMs).catch((err: Error) => {
      // Show what the log did say: the quickest way to read a failure in CI.
      throw new Error(`${err.message}\n--- main log tail ---\n${this.log().split('\n').slice(-15).join('\n')}`);
    });
  }

  async cleanup(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A listening test smarthost and an Instance relaying to it (`extra`: more of its config): the usual e2e setup. */
export async function sinkAndInstance(extra = ''): Promise<[Sink, Instance]> {
  const sink = new Sink();
  await sink.listen();
  return [sink, new Instance([sink.port], extra)];
}

/** The samples of a Prometheus text page (/metrics): 'name{labels}' → value. */
export function metricSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Stops the daemon and removes its folder, then closes the sink; either may be missing (a test that failed early). */
export async function closeBoth(sink: Sink | undefined, p: Instance | undefined): Promise<void> {
  await p?.cleanup();
  await sink?.close();
}

/** A loopback port nothing listens on (bound, then closed): a smarthost that refuses connections. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}
