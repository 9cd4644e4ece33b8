// bench/maildrop-flood.ts: what a flood of junk in the maildrop costs (issue 18, item 6).
// As root: starts `postern -bd` (of ROOT, default this checkout) with a sink, times an
// SMTP session (connect to QUIT), a sendmail run by root and one by a throwaway user
// (through the setgid helper, where ROOT has one) idle, then makes N empty 0600 files
// owned by a throwaway user (half with an mtime a year ahead) in the maildrop while the
// daemon runs, times the same again during the flood, and how long until the junk is
// gone; prints one JSON line. sendmail is the C front end (dist/sendmail) where it is
// built, as /usr/sbin/sendmail is; node's bin/sendmail otherwise. Not part of npm test.
//
//   npx tsc -p bench && node dist/bench/maildrop-flood.js [--files 20000] [--root DIR] [--runs 5] [--wait 300]
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { ROOT as HOME } from './root.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? def : def;
};
const ROOT = resolve(arg('root', HOME));
const FILES = Number(arg('files', '20000'));
const RUNS = Number(arg('runs', '5'));
const WAIT = Number(arg('wait', '300')) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FRONT = join(ROOT, 'dist/sendmail');
const SENDMAIL = existsSync(FRONT) ? [FRONT] : [process.execPath, join(ROOT, 'bin/sendmail')];
type Timed = number | { error: string };

// A sink that takes everything.
const sink = createServer((s) => {
  s.write('220 sink\r\n');
  let data = false;
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      if (data) {
        if (line === '.') { data = false; s.write('250 ok\r\n'); }
        continue;
      }
      const cmd = line.slice(0, 4).toUpperCase();
      if (cmd === 'DATA') { data = true; s.write('354 go\r\n'); } else if (cmd === 'QUIT') { s.end('221 bye\r\n'); } else if (cmd === 'EHLO') s.write('250 sink\r\n');
      else s.write('250 ok\r\n');
    }
  });
  s.on('error', () => {});
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));

const dir = mkdtempSync(join(tmpdir(), 'postern-flood-'));
chmodSync(dir, 0o711);
const config = join(dir, 'postern.toml');
writeFileSync(config, `hostname = "web1.example.org"\nqualify_domain = "example.org"\n[listen]\nsmtp = ["127.0.0.1:0"]\n[spool]\ndirectory = "spool"\n[smarthost]\nhosts = ["127.0.0.1:${(sink.address() as AddressInfo).port}"]\ntls = "none"\n[log]\nfile = "log/mainlog"\n`);
const user = `ptflood${process.pid}`;
execFileSync('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', user]);
const uid = Number(execFileSync('id', ['-u', user]).toString());
const group = `ptfloodg${process.pid}`;
if (existsSync(join(ROOT, 'dist/postdrop'))) {
  execFileSync('groupadd', [group]);
  const helper = join(dir, 'postdrop');
  copyFileSync(join(ROOT, 'dist/postdrop'), helper);
  chownSync(helper, 0, Number(execFileSync('getent', ['group', group]).toString().split(':')[2]));
  chmodSync(helper, 0o2755);
  writeFileSync(config, readFileSync(config, 'utf8').replace('[spool]\n', `[spool]\npostdrop = "${helper}"\n`));
}
let daemon: ChildProcess | undefined;
try {
  const d0 = spawn(process.execPath, [join(ROOT, 'bin/postern'), '-C', config, '-bd', '-q1m'], { stdio: ['ignore', 'ignore', 'pipe'] });
  daemon = d0;
  let said = '';
  const port = await new Promise<number>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`not ready: ${said}`)), 30_000);
    d0.stderr.on('data', (d) => {
      said += d;
      const m = /listening for SMTP on \S+:(\d+)/.exec(said);
      if (m) { clearTimeout(t); res(Number(m[1])); }
    });
  });
  const drop = join(dir, 'spool-maildrop');

  /** One SMTP session, connect to 221: ms (or the error). */
  const session = () => new Promise<Timed>((res) => {
    const t0 = performance.now();
    const s = createConnection({ port, host: '127.0.0.1' });
    const steps = ['EHLO c', 'MAIL FROM:<a@example.org>', 'RCPT TO:<ops@example.org>', 'DATA', 'Subject: s\r\n\r\nx\r\n.', 'QUIT'];
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); res({ error: 'no answer in 120 s' }); }, 120_000);
    s.on('data', (d) => {
      buf += d;
      for (;;) {
        const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
        if (!m) break;
        buf = buf.slice(m.index + m[0].length);
        const next = steps.shift();
        if (next === undefined) { clearTimeout(timer); s.destroy(); res(performance.now() - t0); return; }
        s.write(`${next}\r\n`);
      }
    });
    s.on('error', (e) => { clearTimeout(timer); res({ error: e.message }); });
  });
  const sendmail = (as?: number) => new Promise<Timed>((res) => {
    const t0 = performance.now();
    const c = spawn(SENDMAIL[0] as string, [...SENDMAIL.slice(1), '-C', config, 'ops@example.org'],
      { stdio: ['pipe', 'ignore', 'ignore'], cwd: '/', ...(as ? { uid: as, gid: as, env: { ...process.env, USER: user, LOGNAME: user, HOME: '/' } } : {}) });
    c.stdin.end('Subject: sm\n\nx\n');
    c.on('close', (code) => res(code === 0 ? performance.now() - t0 : { error: `exit ${code}` }));
  });
  const median = (xs: Timed[]): number | null => {
    const n = xs.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
    return n.length ? Math.round(n[Math.floor(n.length / 2)] as number) : null;
  };
  const measure = async () => {
    const smtp: Timed[] = [];
    const sm: Timed[] = [];
    const um: Timed[] = [];
    for (let i = 0; i < RUNS; i++) {
      smtp.push(await session());
      sm.push(await sendmail());
      um.push(await sendmail(uid));
    }
    const all = (xs: Timed[]) => xs.map((x) => (typeof x === 'number' ? Math.round(x) : x));
    return { smtpMs: median(smtp), sendmailRootMs: median(sm), sendmailUserMs: median(um), smtpAll: all(smtp), sendmailRootAll: all(sm), sendmailUserAll: all(um) };
  };
  await session(); // warm-up
  const idle = await measure();

  const junk = () => readdirSync(drop).filter((n) => n.startsWith('j')).length;
  const future = new Date(Date.now() + 365 * 86_400_000);
  const t0 = Date.now();
  for (let i = 0; i < FILES; i++) {
    const f = join(drop, `j${String(i).padStart(31, '0')}`);
    writeFileSync(f, '', { mode: 0o600 });
    chownSync(f, uid, uid);
    if (i % 2) utimesSync(f, future, future);
  }
  const made = Date.now() - t0;
  const flood = await measure();
  let goneAfter: number | null = null;
  for (const deadline = t0 + WAIT; Date.now() < deadline; await sleep(1000)) {
    if (junk() === 0) { goneAfter = Math.round((Date.now() - t0) / 1000); break; }
  }
  const after = goneAfter === null ? null : await measure();
  // The removals are logged once the user's have been quiet for a while: wait for all of them.
  const userLines = () => readFileSync(join(dir, 'log/mainlog'), 'utf8').split('\n').filter((l) => l.includes(`from ${user}`));
  const counted = () => userLines().reduce((n, l) => n + Number(/removed (\d+) files/.exec(l)?.[1] ?? 1), 0);
  for (const deadline = Date.now() + 90_000; goneAfter !== null && counted() < FILES && Date.now() < deadline;) await sleep(500);
  const lines = userLines();
  console.log(JSON.stringify({ root: ROOT, sendmail: SENDMAIL.join(' '), files: FILES, madeInMs: made, idle, flood, junkGoneAfterS: goneAfter, junkLeft: junk(), after,
    logLinesForUser: lines.length, logLine: lines[0] ?? null, daemonRss: Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d0.pid}/status`, 'utf8'))?.[1]) }));
} finally {
  daemon?.kill('SIGKILL');
  sink.close();
  try { execFileSync('userdel', [user], { stdio: 'ignore' }); } catch { /* gone */ }
  try { execFileSync('groupdel', [group], { stdio: 'ignore' }); } catch { /* none made */ }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
