// bench/sink.ts: a throw-away SMTP sink for bench/run.ts when Postfix's smtp-sink is
// not available. Accepts everything on 127.0.0.1:PORT and prints `count N` on stdout
// whenever the number of received messages changes (at most every 100 ms), and once
// more on SIGTERM/SIGINT before exiting. Runs as its own process so it does not share
// an event loop with the load generator.
//
//   node dist/bench/sink.js PORT [MAX_SECONDS] [HOST]
import { SMTPServer } from 'smtp-server';

const port = Number(process.argv[2]);
const maxSeconds = Number(process.argv[3] ?? 600);
const host = process.argv[4] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node dist/bench/sink.js PORT [MAX_SECONDS]\n');
  process.exit(64);
}

let count = 0;
let printed = -1;
const print = () => {
  if (count !== printed) {
    process.stdout.write(`count ${count}\n`);
    printed = count;
  }
};

const server = new SMTPServer({
  name: 'sink.bench.invalid',
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  hideSTARTTLS: true,
  disableReverseLookup: true,
  logger: false,
  size: 100 * 1024 * 1024,
  maxClients: 200,
  onData(stream, _session, cb) {
    stream.on('data', () => {});
    stream.on('end', () => {
      count++;
      cb(null, 'Ok: queued by bench sink');
    });
  },
});
server.on('error', () => {});

const timer = setInterval(print, 100);
const stop = () => {
  clearInterval(timer);
  print();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Bounded in time whatever happens to the parent.
setTimeout(stop, maxSeconds * 1000).unref();

server.listen(port, host, () => process.stderr.write(`sink: ready on ${host}:${port}\n`));
