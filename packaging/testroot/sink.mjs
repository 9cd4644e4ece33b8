// packaging/testroot/sink.mjs: the smarthost of packaging/test-debian.sh, on the host's
// loopback (the test root shares the host's network): smtp-server from this checkout,
// no TLS, no AUTH. Each accepted message becomes one file in DIR (N.eml: two lines
// "X-Sink-Mail-From:" and "X-Sink-Rcpt-To:", then the message as it arrived), written
// under a temporary name and renamed, so a reader never sees half a message. A
// recipient whose local part starts with "hold" is answered 451 (the message stays in
// the queue, for -Mvh and -Mrm). Prints "sink ADDRESS PORT" once it listens.
//   node sink.mjs DIR [ADDRESS [PORT]]     (default 127.0.0.1, a free port)
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: node sink.mjs DIR\n');
  process.exit(64);
}
let n = 0;
const fail = (code, text) => Object.assign(new Error(text), { responseCode: code });
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  disableReverseLookup: true,
  logger: false,
  onRcptTo(a, _s, cb) {
    cb(/^hold/i.test(a.address) ? fail(451, 'held by the test sink: try again later') : undefined);
  },
  onData(stream, session, cb) {
    const parts = [];
    stream.on('data', (c) => parts.push(c));
    stream.on('end', () => {
      const head = `X-Sink-Mail-From: <${session.envelope.mailFrom ? session.envelope.mailFrom.address : ''}>\n`
        + `X-Sink-Rcpt-To: ${session.envelope.rcptTo.map((r) => r.address).join(', ')}\n`;
      const name = `${String(++n).padStart(4, '0')}.eml`;
      writeFileSync(join(dir, `.${name}`), Buffer.concat([Buffer.from(head), ...parts]));
      renameSync(join(dir, `.${name}`), join(dir, name));
      cb(null, `Ok: queued as S${n}`);
    });
  },
});
server.on('error', (e) => process.stderr.write(`sink: ${e.message}\n`));
const host = process.argv[3] ?? '127.0.0.1';
server.listen(Number(process.argv[4] ?? 0), host, () => {
  process.stdout.write(`sink ${host} ${server.server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
