// cli/main.ts: the one program behind bin/: picks the personality from the command
// name (postern, sendmail, mailq, newaliases, postern-qgrep, postern-exigrep) and the mode flag, imports only that
// command, and turns errors into one sentence on stderr plus a sysexits status.
import { basename } from 'node:path';
import { CommandError, EX, usage } from '../core/exit.js';
import { quietEnds, report } from './report.js';
import { mailqArgs, modeOf, queueSelection, takeConfigFlag } from './args.js';
import type { DeliverHere } from '../admin/queue-commands.js';

/** A queue run with no daemon delivers here: the daemon's machinery, loaded only then. */
const deliverHere: DeliverHere = async (c, spool, ids) => (await import('../daemon/delivery.js')).deliverHere(c, spool, ids);

const out = (s: string | Uint8Array) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

async function config(file: string | undefined) {
  const { loadConfig } = await import('../config/load.js');
  return await loadConfig(file);
}

/** For the queries: the configuration, with nothing written (no cache, no spool folder). */
async function query(file: string | undefined) {
  const { loadConfig } = await import('../config/load.js');
  return await loadConfig(file, { keep: false });
}

/**
 * For the queue commands: admins only (exit 77 for others); root with `user` set
 * goes on as that user; what waits in the maildrop is picked up first when no daemon
 * does it, so the listing shows what sendmail took.
 */
async function openSpool(file: string | undefined, what: string) {
  const c = await config(file);
  const { becomeDaemonUser, requireAdmin } = await import('../daemon/privileges.js');
  requireAdmin(c, what);
  await becomeDaemonUser(c);
  process.umask(0o027); // a main log this command starts is 0640, as the daemon's
  const { LmdbSpool } = await import('../spool/lmdb-spool.js');
  const { MessageIdGenerator } = await import('../spool/message-id.js');
  const { pickupNow } = await import('../admin/pickup-now.js');
  const spool = LmdbSpool.open(c.spool.directory);
  const ids = new MessageIdGenerator();
  try {
    await pickupNow(c, spool, ids);
  } catch (e) {
    await spool.close();
    throw e;
  }
  return { c, spool, ids };
}

/**
 * `postern install --import-queue`: Exim's queue taken over (migrate/exim-queue.ts); its
 * `--import-queue-writer` is the child that writes the spool as the daemon's user.
 */
async function importQueue(argv: string[]): Promise<number> {
  const { file, rest } = takeConfigFlag(argv);
  const c = await config(file);
  const { requireAdmin } = await import('../daemon/privileges.js');
  const { LmdbSpool } = await import('../spool/lmdb-spool.js');
  const m = await import('../migrate/exim-queue.js');
  requireAdmin(c, 'import Exim\'s queue');
  process.umask(0o027);
  if (rest.includes('--import-queue-writer')) {
    const spool = LmdbSpool.open(c.spool.directory);
    try {
      return await m.importWriter(c, spool);
    } finally {
      await spool.close();
    }
  }
  return m.importEximQueue({ ...m.parseImportArgs(rest), ...(file ? { configFile: file } : {}) }, c, out, err,
    async () => LmdbSpool.open(c.spool.directory));
}

/** What a queue command does, for the permission message. */
function purpose(mode: string): string {
  if (mode === '--json' || mode.startsWith('-bp')) return 'list the queue';
  if (mode.startsWith('-q') || mode === '-M') return 'run the queue';
  if (mode.startsWith('-Mv') || mode === '-Mwhy') return 'read queued messages';
  return 'act on queued messages';
}

async function run(personality: string, argv: string[]): Promise<number> {
  const installing = personality === 'postern' && (argv[0] === 'install' || argv[0] === 'uninstall');
  // --help anywhere, or -h alone (sendmail's -h takes a hop count, so only alone); install's own usage for install.
  if (argv.includes('--help') || (argv.length === (installing ? 2 : 1) && argv[argv.length - 1] === '-h')) {
    const { helpText, INSTALL_PAGE, pageFor } = await import('./help.js');
    out(helpText(installing ? INSTALL_PAGE : pageFor(personality)));
    return EX.OK;
  }
  if (argv.includes('--version')) {
    const { version } = await import('../core/version.js');
    out(`postern version ${version()}\n`);
    return EX.OK;
  }
  // A satellite has no aliases to build (Exim's `-bi` with none): packages call it.
  if (personality === 'newaliases' || argv.includes('-bi')) return EX.OK;
  if (personality === 'postern' && argv.includes('install') && argv.some((a) => a === '--import-queue' || a === '--import-queue-writer')) {
    return importQueue(argv.filter((a) => a !== 'install'));
  }
  if (installing) {
    const { install, uninstall } = await import('../install/install.js');
    return (argv[0] === 'install' ? install : uninstall)(argv.slice(1), out, err);
  }
  const { file, rest } = takeConfigFlag(argv);
  if (personality === 'mailq') {
    return run('postern', [...mailqArgs(rest), ...(file ? ['-C', file] : [])]);
  }
  if (personality === 'postern-exigrep') {
    const { exigrep, logFiles, parseExigrepArgs } = await import('./exigrep.js');
    const args = parseExigrepArgs(rest);
    const files = args.files.length ? args.files : logFiles((await query(file)).log.file);
    return exigrep(args, files, out);
  }
  if (personality === 'postern-qgrep') {
    const { asksAction, qgrep } = await import('../admin/qgrep.js');
    const { c, spool, ids } = await openSpool(file, asksAction(rest) ? 'act on queued messages' : 'list the queue');
    try {
      return await qgrep(rest, spool, out, async (action, chosen, o) =>
        (await import('../admin/bulk.js')).bulkAction(action, chosen, o, c, spool, out, ids, deliverHere));
    } finally {
      await spool.close();
    }
  }
  const selection = queueSelection(rest);
  const mode = modeOf(rest, selection);
  // What args.ts's isSubmission() says; bin/ has cli/submit.ts do it alone when it can.
  if (!mode || mode === '-bm') {
    // Both at once: their modules load in parallel. stdin is read from fd 0 directly.
    const [{ sendmail }, c] = await Promise.all([import('../receive/sendmail.js'), config(file)]);
    await sendmail(rest, c, 0, async () => (await import('../daemon/privileges.js')).makeMaildrop(c));
    return EX.OK;
  }
  if (mode === '-bd' || mode === '-bdf') {
    const { daemon } = await import('../daemon/daemon.js');
    await daemon(rest, file);
    return -1; // keeps running
  }
  if (mode === '-bV') {
    const { versionCheck } = await import('./info-commands.js');
    return versionCheck(await query(file), out);
  }
  if (mode === '-bP') {
    const { printSettings } = await import('./info-commands.js');
    return printSettings(rest.filter((a) => a !== '-bP' && a !== '--json'), await query(file), out, err, rest.includes('--json'));
  }
  if (mode === '-bt') {
    const { addressTest } = await import('./info-commands.js');
    const addrs = rest.filter((a) => a !== '-bt' && a !== '--json');
    if (addrs.length === 0) throw usage('-bt needs at least one address');
    return addressTest(addrs, await query(file), out, rest.includes('--json'));
  }
  if (mode === '-brt') {
    const { retryTest } = await import('../admin/why.js');
    return retryTest(rest.filter((a) => a !== '-brt'), await query(file), out);
  }
  if (mode === '-bs') {
    const { bsmtp } = await import('../receive/bsmtp.js');
    const c = await config(file);
    const { request } = await import('../admin/control-client.js');
    await bsmtp(c, async () => (await import('../daemon/privileges.js')).makeMaildrop(c),
      () => void request(c.spool.directory, { op: 'kick' }, 2000).catch(() => undefined));
    return EX.OK;
  }
  // A user who is no admin may list (plain -bp, mailq) and remove (-Mrm) their own messages, through the daemon.
  if (mode === '-bp' || mode === '-Mrm') {
    const others = rest.filter((a) => a !== mode);
    if (mode === '-Mrm' || others.length === 0) {
      const c = await config(file);
      const { requireAdmin } = await import('../daemon/privileges.js');
      try {
        requireAdmin(c, purpose(mode));
      } catch (e) {
        if (!(e instanceof CommandError) || e.exitCode !== EX.NOPERM) throw e;
        const { ownMessages } = await import('../admin/own-commands.js');
        return ownMessages(mode, others, c, out);
      }
    }
  }
  const { c, spool, ids } = await openSpool(file, purpose(mode));
  const q = await import('../admin/queue-commands.js');
  try {
    if (selection) {
      const pick = (flag: string) => selection.find((_, i) => i % 2 === 1 && (selection[i - 1] as string).startsWith(flag));
      return await q.queueRun(c, spool, { force: true, thaw: mode === '-qff', select: { recipient: pick('-R'), sender: pick('-S') } }, ids, deliverHere);
    }
    const others = rest.filter((a) => a !== mode);
    if (mode === '--json' || mode.startsWith('-bp')) {
      const { listOptions, listQueue } = await import('../admin/list-queue.js');
      return listQueue(spool, out, listOptions(mode, rest));
    }
    if (mode === '-q' || mode === '-qf' || mode === '-qff') {
      if (others.length) throw usage(`unexpected argument ${others[0]} after ${mode}`);
      return await q.queueRun(c, spool, { force: mode !== '-q', thaw: mode === '-qff' }, ids, deliverHere);
    }
    if (mode === '-M') {
      q.checkIds('-M', others);
      return await q.queueRun(c, spool, { force: true, thaw: true, ids: others }, ids, deliverHere);
    }
    if (mode === '-Mwhy') {
      const { messageWhy } = await import('../admin/why.js');
      const targets = others.filter((a) => a !== '--json');
      q.checkIds('-Mwhy', targets);
      return messageWhy(targets, others.includes('--json'), c, spool, out);
    }
    if (mode.startsWith('-M')) return await q.messageCommand(mode, others, c, spool, out, ids);
    throw usage(`unknown option ${mode}`);
  } finally {
    await spool.close();
  }
}

export async function main(argv0: string, argv: string[]): Promise<void> {
  const personality = basename(argv0).replace(/\.js$/, '');
  quietEnds();
  try {
    const status = await run(personality, argv);
    if (status >= 0) process.exitCode = status;
  } catch (e) {
    report(personality, e);
  }
}
