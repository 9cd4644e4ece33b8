// packaging/testroot/smtp-load.mjs: a continuous SMTP load for packaging/test-systemd.sh,
// from the host's loopback (the test root shares it), and the count of what it lost.
//
//   node smtp-load.mjs load PORT ACKS [SESSIONS [MAX_SECONDS [MAX_COUNT]]]
//     SESSIONS sessions (20) one after the other on each of them, one message per
//     connection, until SIGTERM or SIGINT (or MAX_SECONDS, 120, or MAX_COUNT connections,
//     20000); then the connections under way finish (at most 60 s) and one line of JSON
//     is printed: connections, refused (ECONNREFUSED), failed (any other error or a
//     close before the message was acknowledged), rejected (a 4xx/5xx answer),
//     acknowledged, and the longest and median wait for a greeting in ms. Each
//     acknowledged message's X-Load-Id is a line of ACKS.
//   node smtp-load.mjs check SINKDIR ACKS [SECONDS]
//     waits up to SECONDS (90) for each acknowledged message to be in SINKDIR (sink.mjs's
//     files); prints one line of JSON: acknowledged, delivered, lost (and the first lost IDs).
//     Exit 0 when none is lost, 1 otherwise.
// Prints "load started" on stderr once the first greeting came.
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'load') {
  const [portArg, acksFile, sessionsArg = '20', maxSecondsArg = '120', maxCountArg = '20000'] = args;
  const port = Number(portArg);
  const sessions = Number(sessionsArg);
  const deadline = Date.now() + Number(maxSecondsArg) * 1000;
  const maxCount = Number(maxCountArg);
  const tag = `${process.pid}-${Date.now().toString(36)}`;
  writeFileSync(acksFile, '');
  const stats = { connections: 0, refused: 0, failed: 0, rejected: 0, acknowledged: 0, greetingMaxMs: 0, greetingMedianMs: 0 };
  const waits = [];
  const errors = {};
  let stopping = false;
  let started = false;
  let n = 0;
  const stop = () => { stopping = true; };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  // One connection, one message: resolves when it is over, however it ended.
  const one = () => new Promise((resolve) => {
    const id = `${tag}-${++n}`;
    stats.connections++;
    const t0 = performance.now();
    let greeted = false;
    let acked = false;
    let buf = '';
    const steps = ['EHLO load.example.org', 'MAIL FROM:<load@example.org>', 'RCPT TO:<load@example.org>', 'DATA',
      `From: load@example.org\r\nTo: load@example.org\r\nSubject: load ${id}\r\nX-Load-Id: ${id}\r\n\r\nOne message of packaging/testroot/smtp-load.mjs.\r\n.`, 'QUIT'];
    let step = 0;
    let done = false;
    const end = (what, detail) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (what === 'refused') stats.refused++;
      else if (what === 'failed' && !acked) {
        stats.failed++;
        errors[detail] = (errors[detail] ?? 0) + 1;
      } else if (what === 'rejected') {
        stats.rejected++;
        errors[detail] = (errors[detail] ?? 0) + 1;
      }
      s.destroy();
      resolve();
    };
    const timer = setTimeout(() => end('failed', greeted ? 'timeout in the session' : 'no greeting in 60 s'), 60_000);
    const s = connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.on('error', (e) => end(e.code === 'ECONNREFUSED' ? 'refused' : 'failed', e.code ?? e.message));
    s.on('close', () => end('failed', greeted ? 'closed in the session' : 'closed before the greeting'));
    s.on('data', (d) => {
      buf += d;
      for (let nl; (nl = buf.indexOf('\n')) >= 0;) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (!/^\d{3} /.test(line)) continue;
        if (!greeted) {
          greeted = true;
          const w = performance.now() - t0;
          waits.push(w);
          if (!started) {
            started = true;
            process.stderr.write('load started\n');
          }
        }
        if (!/^[23]/.test(line)) return end('rejected', line.slice(0, 60));
        if (step === 5) { // the answer to the message itself
          acked = true;
          stats.acknowledged++;
          appendFileSync(acksFile, `${id}\n`);
        }
        if (step === steps.length) return end('ok');
        s.write(`${steps[step++]}\r\n`);
      }
    });
  });

  const session = async () => {
    while (!stopping && Date.now() < deadline && stats.connections < maxCount) await one();
  };
  await Promise.all(Array.from({ length: sessions }, session));
  waits.sort((a, b) => a - b);
  stats.greetingMaxMs = Math.round(waits.at(-1) ?? 0);
  stats.greetingMedianMs = Math.round(waits[Math.floor(waits.length / 2)] ?? 0);
  process.stdout.write(`${JSON.stringify({ ...stats, errors })}\n`);
} else if (mode === 'check') {
  const [dir, acksFile, secondsArg = '90'] = args;
  const acked = readFileSync(acksFile, 'utf8').split('\n').filter(Boolean);
  const until = Date.now() + Number(secondsArg) * 1000;
  const seen = new Set();
  const read = new Set();
  let missing = acked;
  for (;;) {
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.eml') || f.startsWith('.') || read.has(f)) continue; // .N.eml: being written
      read.add(f);
      const m = /^X-Load-Id: (\S+)/m.exec(readFileSync(join(dir, f), 'utf8'));
      if (m) seen.add(m[1]);
    }
    missing = acked.filter((id) => !seen.has(id));
    if (missing.length === 0 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  process.stdout.write(`${JSON.stringify({ acknowledged: acked.length, delivered: acked.length - missing.length, lost: missing.length, firstLost: missing.slice(0, 5) })}\n`);
  process.exit(missing.length ? 1 : 0);
} else {
  process.stderr.write('usage: node smtp-load.mjs load PORT ACKS [SESSIONS [MAX_SECONDS [MAX_COUNT]]] | check SINKDIR ACKS [SECONDS]\n');
  process.exit(64);
}
