// install/install.ts: `postern install` / `postern uninstall` [--root DIR] [--dry-run]: makes
// postern the machine's MTA over Exim as SPEC's "Installing over Exim" says (the
// configuration imported by exim-import.ts, the user, folders, unit, logrotate snippet,
// and the sendmail/mailq/newaliases links, what they pointed to kept in
// /var/lib/postern/install.json), and undoes it. Every step is printed; --dry-run only
// prints them. The commands run postern through /usr/sbin/postern, a shell wrapper
// naming node's absolute path, so they work under cron's PATH or `env -i`.
import { spawnSync } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../config/validate.js';
import { EX, failure, noPermission, usage } from '../core/exit.js';
import { groupByName, userById, userByName } from '../core/users.js';
import { type Answers, CONFIG_PATHS, importExim, smarthostAnswer } from '../migrate/exim-import.js';
import yargs from 'yargs';

const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRAPPER = '/usr/sbin/postern';
const WRAPPER_MARK = '# postern-wrapper';
const STATE = '/var/lib/postern/install.json';
/** dpkg's file list of the installed package: present when the .deb, not `postern install`, made postern the MTA. */
const DPKG_LIST = '/var/lib/dpkg/info/postern.list';
const UNIT = '/etc/systemd/system/postern.service';
/** The SMTP sockets systemd holds for the daemon (postern.service requires it). */
const SOCKET_UNIT = '/etc/systemd/system/postern.socket';
const LOGROTATE = '/etc/logrotate.d/postern';

/** The links install makes, and where each points (relative, so they also work inside --root). */
const LINKS: [string, string][] = [
  ['/usr/sbin/sendmail', 'postern'],
  ['/usr/lib/sendmail', '../sbin/postern'],
  ['/usr/bin/mailq', '../sbin/postern'],
  ['/usr/bin/newaliases', '../sbin/postern'],
  ['/usr/sbin/postern-qgrep', 'postern'],
  ['/usr/sbin/postern-exigrep', 'postern'],
];

type Before = { type: 'none' } | { type: 'symlink'; target: string } | { type: 'file'; saved: string };
interface State {
  links: { path: string; target: string; before: Before }[];
  created: string[];
}

interface Options {
  root: string;
  dryRun: boolean;
  /** --smarthost, --readhost: the package's debconf answers (postinst passes them) */
  answers: Answers;
}

/**
 * install's and uninstall's options, by yargs (this room is loaded only for them, so
 * its load costs no other command anything): strict, nothing positional, every value a
 * string as given; a mistake is one sentence and exit 64.
 */
function parseInstallArgs(argv: string[]): Options {
  const parsed = yargs(argv)
    .parserConfiguration({ 'dot-notation': false, 'duplicate-arguments-array': false, 'boolean-negation': false })
    .option('root', { type: 'string', requiresArg: true })
    .option('dry-run', { alias: 'n', type: 'boolean' })
    .option('smarthost', { type: 'string', requiresArg: true })
    .option('readhost', { type: 'string', requiresArg: true })
    .strict().help(false).version(false).exitProcess(false)
    .fail((msg: string | null, e: Error | null) => {
      const text = (msg ?? e?.message ?? 'bad arguments').replace(/\.$/, '');
      throw usage(`${text.charAt(0).toLowerCase()}${text.slice(1)}; see postern install --help`);
    })
    .parseSync();
  if (parsed._.length) throw usage(`unexpected argument ${String(parsed._[0])}; see postern install --help`);
  const answers: Answers = {};
  if (parsed.smarthost !== undefined) answers.smarthost = parsed.smarthost.trim();
  if (parsed.readhost !== undefined) answers.readhost = parsed.readhost.trim();
  return { root: parsed.root === undefined ? '/' : resolve(parsed.root), dryRun: parsed['dry-run'] === true, answers };
}

/**
 * The file with [smarthost] hosts and [rewrite] readhost set to the debconf answers and
 * every other line as it was (the package's postinst on `dpkg-reconfigure postern`, or a
 * preseeded upgrade). Undefined when nothing changes. An empty smarthost answer changes
 * nothing; an empty readhost removes it.
 */
export function withAnswers(text: string, current: { hosts: string[]; readhost?: string }, answers: Answers, hosts: string[] | undefined): string | undefined {
  let lines = text.split('\n');
  let changed = false;
  // Sets KEY in TABLE: the line (and an array's continuation lines) replaced, else added after the header, else a new table.
  const set = (table: string, key: string, value: string | undefined) => {
    let inTable = table === '';
    let header = -1;
    for (let i = 0; i < lines.length; i++) {
      const h = /^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$/.exec(lines[i] as string);
      if (h) {
        inTable = h[1] === table;
        if (inTable) header = i;
        continue;
      }
      if (!inTable || !new RegExp(`^\\s*${key}\\s*=`).test(lines[i] as string)) continue;
      let end = i;
      if (/=\s*\[/.test(lines[i] as string) && !/\]\s*(#.*)?$/.test(lines[i] as string)) {
        while (end + 1 < lines.length && !/\]\s*(#.*)?$/.test(lines[end] as string)) end++;
      }
      lines.splice(i, end - i + 1, ...(value === undefined ? [] : [`${key} = ${value}`]));
      changed = true;
      return;
    }
    if (value === undefined) return;
    if (header >= 0) lines.splice(header + 1, 0, `${key} = ${value}`);
    else lines = [...(lines.at(-1) === '' ? lines.slice(0, -1) : lines), '', `[${table}]`, `${key} = ${value}`, ''];
    changed = true;
  };
  if (hosts && hosts.join() !== current.hosts.join()) set('smarthost', 'hosts', `[${hosts.map((h) => JSON.stringify(h)).join(', ')}]`);
  if (answers.readhost !== undefined && answers.readhost !== (current.readhost ?? '')) set('rewrite', 'readhost', answers.readhost ? JSON.stringify(answers.readhost) : undefined);
  return changed ? lines.join('\n') : undefined;
}

/**
 * The wrapper's text: node named absolutely, io_uring off from its start (root's
 * commands become \`user\`: see bin/postern); the name called picks the personality.
 */
export function wrapperText(node = process.execPath, pkg = PACKAGE_DIR): string {
  const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh
${WRAPPER_MARK}: runs postern with an absolute interpreter, so sendmail, mailq and
# newaliases work under cron's PATH or env -i. Written by \`postern install\`; the name
# it is called by (a link to it) picks the personality. io_uring off: a node that may
# use it refuses to change identity in process (CVE-2024-22017); where one refuses
# anyway, root's command runs again as the daemon's user, in a child.
name=\${0##*/}
[ -f ${sh(pkg)}/bin/"$name" ] || name=postern
UV_USE_IO_URING=0
export UV_USE_IO_URING
exec ${sh(node)} ${sh(pkg)}/bin/"$name" "$@"
`;
}

/**
 * Why root should not run `path`: it, or a folder above it, may be written or replaced
 * by someone other than root (its owner, a group other than root's, or everyone, but
 * for sticky folders such as /tmp, where others cannot move root's entries). Undefined
 * when only root can change it. Both the name and what it resolves to are checked.
 */
export function notRootsAlone(path: string): string | undefined {
  for (const start of new Set([resolve(path), realpathSync(path)])) {
    for (let p = start; ; p = dirname(p)) {
      const st = lstatSync(p);
      if (st.uid !== 0) return `${p} belongs to ${userById(st.uid)?.name ?? `uid ${st.uid}`}`;
      // A link's own mode means nothing; its folder and what it names are checked.
      const sticky = st.isSymbolicLink() || (st.isDirectory() && (st.mode & 0o1000) !== 0);
      if ((st.mode & 0o002) !== 0 && !sticky) return `${p} may be written by every user`;
      if ((st.mode & 0o020) !== 0 && st.gid !== 0 && !sticky) return `${p} may be written by the group ${st.gid}`;
      if (p === dirname(p)) break;
    }
  }
  return undefined;
}

interface Step {
  text: string;
  run: () => void;
}

class Plan {
  readonly steps: Step[] = [];
  add(text: string, run: () => void = () => {}): void {
    this.steps.push({ text, run });
  }
  exec(dryRun: boolean, out: (s: string) => void): void {
    for (const s of this.steps) {
      out(`${dryRun ? 'would ' : ''}${s.text}\n`);
      if (!dryRun) s.run();
    }
  }
}

function lstat(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function requireRoot(o: Options, what: string): void {
  if (o.root === '/' && (process.geteuid?.() ?? 0) !== 0) throw noPermission(`only root may ${what} (or name a folder with --root DIR)`);
}

/** Files of Exim's queue (one -H file a message), as `exim -bpc` would count them. */
function eximQueue(root: string): number {
  const input = join(root, '/var/spool/exim4/input');
  let n = 0;
  const walk = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.endsWith('-H')) n++;
      else if (depth === 0 && name.length === 1) walk(join(dir, name), 1); // split_spool_directory
    }
  };
  walk(input, 0);
  return n;
}

export function install(argv: string[], out: (s: string) => void, err: (s: string) => void): number {
  const o = parseInstallArgs(argv);
  requireRoot(o, 'install postern as the machine\'s MTA');
  const at = (p: string) => join(o.root, p);
  const plan = new Plan();
  const rootDir = o.root !== '/';
  // The wrapper runs node and this tree as root: someone else who may change either
  // would get root. Refused here; named loudly for --root (a tree built for elsewhere).
  for (const [what, path] of [['node', process.execPath], ['postern', PACKAGE_DIR]] as const) {
    const why = notRootsAlone(path);
    if (why === undefined) continue;
    const sentence = `the wrapper would have root run ${what} from ${path}, but ${why}`;
    if (!rootDir) throw failure(`${sentence}: install from folders only root may change (a copy under /usr/local, or the Debian package)`);
    err(`postern install: WARNING: ${sentence}\n`);
  }
  if (rootDir) out(`installing into ${o.root}: every path below is inside it, and no user or group is created\n`);

  const installedWrapper = lstat(at(WRAPPER));
  const foreign = installedWrapper !== undefined && !readFileSync(at(WRAPPER), 'utf8').includes(WRAPPER_MARK);
  // With the Debian package, the package owns the commands, links, unit and logrotate
  // snippet: install only imports Exim's settings into its placeholder configuration.
  const packaged = foreign && existsSync(at('/var/lib/dpkg/info/postern.list'));
  if (foreign && !packaged) throw failure(`${WRAPPER} exists and is not postern install's: remove whatever installed it first`);
  if (packaged) out('the postern package is installed: it provides the commands, links, unit and logrotate snippet; importing the configuration only\n');
  const statePath = at(STATE);
  const previous: State | undefined = existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) as State : undefined;
  const state: State = previous ?? { links: [], created: [] };

  // 1. The configuration, imported from Exim's.
  const imported = importExim(o.root, o.answers);
  const conf = at(CONFIG_PATHS.conf);
  // The package's own file names no smarthost yet ("smarthost.invalid"): that one is replaced.
  const placeholder = packaged && existsSync(conf) && readFileSync(conf, 'utf8').includes('"smarthost.invalid:25"');
  const answered = o.answers.smarthost || o.answers.readhost !== undefined;
  // The debconf answers for a file already made: only they count, not a report of Exim's settings again.
  if (!(answered && existsSync(conf) && !placeholder)) {
    if (imported.found) out('importing Debian\'s Exim settings (/etc/exim4/update-exim4.conf.conf):\n');
    for (const m of imported.mapped) out(`  ${m}\n`);
    for (const u of imported.unmapped) err(`postern install: not mapped: ${u}\n`);
  }
  const queued = eximQueue(o.root);
  if (queued > 0) err(`postern install: Exim's queue still holds ${queued} message${queued === 1 ? '' : 's'}: \`postern install --import-queue\` takes ${queued === 1 ? 'it' : 'them'} over into postern's queue (with postern stopped; \`--dry-run\` lists ${queued === 1 ? 'it' : 'them'}), or deliver ${queued === 1 ? 'it' : 'them'} with \`exim4 -qff\` before switching\n`);

  // 2. The user and group.
  let owner = userByName('postern', at('/etc/passwd'));
  if (rootDir) {
    if (!owner) out('not creating the postern user and group (--root): make them in that system, and give them the spool, maildrop and log folders\n');
  } else if (!owner) {
    plan.add('create the system user and group postern (home /var/spool/postern, no login)', () => {
      const r = spawnSync('useradd', ['--system', '--user-group', '--home-dir', CONFIG_PATHS.spool, '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'postern MTA', 'postern'], { encoding: 'utf8' });
      if (r.status !== 0) throw failure(`useradd postern failed: ${(r.stderr || r.error?.message || '').trim()}`);
      owner = userByName('postern', at('/etc/passwd'));
    });
  }
  const chown = (path: string, group?: number) => {
    if (owner) chownSync(path, owner.uid, group ?? owner.gid);
  };

  if (existsSync(conf) && !placeholder && answered) {
    // The debconf answers into the file the administrator has: those two keys only.
    const text = readFileSync(conf, 'utf8');
    const now = parseConfig(text, CONFIG_PATHS.conf);
    const hosts = o.answers.smarthost ? smarthostAnswer(o.answers.smarthost) : undefined;
    if (o.answers.smarthost && !hosts) err(`postern install: --smarthost ${o.answers.smarthost}: not host, host:port, host::port or [address]::port: not used\n`);
    const edited = withAnswers(text, { hosts: now.smarthost.hosts.map((h) => (h.name.includes(':') ? `[${h.name}]:${h.port}` : `${h.name}:${h.port}`)), ...(now.rewrite?.readhost ? { readhost: now.rewrite.readhost } : {}) }, o.answers, hosts);
    if (edited === undefined) out(`keeping ${CONFIG_PATHS.conf} as it is (its smarthost and readhost are the answers given)\n`);
    else {
      parseConfig(edited, CONFIG_PATHS.conf); // never write a file postern would refuse
      plan.add(`set ${[...(hosts ? ['smarthost.hosts'] : []), ...(o.answers.readhost !== undefined ? ['rewrite.readhost'] : [])].join(' and ')} in ${CONFIG_PATHS.conf} (the rest of it as it was)`, () => {
        writeFileSync(`${conf}.postern-new`, edited, { mode: lstatSync(conf).mode & 0o7777 });
        renameSync(`${conf}.postern-new`, conf);
      });
    }
  } else if (existsSync(conf) && !placeholder) out(`keeping ${CONFIG_PATHS.conf} as it is (the imported settings above are not written)\n`);
  else {
    parseConfig(imported.toml, CONFIG_PATHS.conf); // never write a file postern would refuse
    plan.add(`write ${CONFIG_PATHS.conf}${placeholder ? ' (over the package\'s placeholder)' : ''}`, () => {
      mkdirSync(dirname(conf), { recursive: true, mode: 0o755 });
      if (placeholder) {
        writeFileSync(`${conf}.postern-new`, imported.toml, { mode: 0o644 });
        renameSync(`${conf}.postern-new`, conf);
      } else writeFileSync(conf, imported.toml, { mode: 0o644, flag: 'wx' });
    });
    if (imported.password !== undefined) {
      const pass = at(CONFIG_PATHS.password);
      plan.add(`write ${CONFIG_PATHS.password} (0600, the postern user's)`, () => {
        rmSync(pass, { force: true });
        writeFileSync(pass, `${imported.password}\n`, { mode: 0o600, flag: 'wx' });
        chown(pass);
      });
    }
  }

  // 3. The drop group and its setgid helper (the package's postinst does this for a package).
  let drop = groupByName('postern-drop', at('/etc/group'));
  if (!rootDir && !packaged) {
    const helper = join(PACKAGE_DIR, 'dist/postdrop');
    plan.add(`make ${helper} the setgid helper of the group postern-drop (root:postern-drop 2755), creating the group`, () => {
      if (drop === undefined && spawnSync('groupadd', ['--system', 'postern-drop'], { stdio: 'ignore' }).status !== 0) throw failure('groupadd postern-drop failed');
      drop = groupByName('postern-drop', at('/etc/group'));
      chownSync(helper, 0, drop!);
      chmodSync(helper, 0o2755);
    });
  }

  // 4. Folders, with their owners and modes (the privilege model).
  const adm = groupByName('adm', at('/etc/group'));
  for (const [path, mode, group] of [
    [CONFIG_PATHS.spool, 0o700, undefined], [CONFIG_PATHS.maildrop, 0o1731, 'drop'], [CONFIG_PATHS.logDir, 0o2750, adm],
  ] as const) {
    const full = at(path);
    plan.add(`make ${path} (mode ${mode.toString(8).padStart(4, '0')}${rootDir && !owner ? ', root\'s' : ', the postern user\'s'}${group === 'drop' ? ', group postern-drop' : group !== undefined ? ', group adm' : ''})`, () => {
      mkdirSync(full, { recursive: true, mode: 0o755 });
      chown(full, group === 'drop' ? drop : group);
      chmodSync(full, mode);
    });
  }

  const systemd = !rootDir && existsSync('/run/systemd/system');
  if (packaged) {
    if (systemd) plan.add('reload postern (systemctl reload postern)', () => spawnSync('systemctl', ['reload', 'postern'], { stdio: 'ignore' }));
    plan.exec(o.dryRun, out);
    return EX.OK;
  }

  // 5. The units and the logrotate snippet.
  for (const [path, source] of [[UNIT, 'config/postern.service'], [SOCKET_UNIT, 'config/postern.socket'], [LOGROTATE, 'config/postern.logrotate']] as const) {
    plan.add(`ship ${path}`, () => {
      mkdirSync(dirname(at(path)), { recursive: true, mode: 0o755 });
      writeFileSync(at(path), readFileSync(join(PACKAGE_DIR, source)), { mode: 0o644 });
      if (!state.created.includes(path)) state.created.push(path);
    });
  }

  // 6. The wrapper and the links, keeping what each pointed to.
  plan.add(`write ${WRAPPER} (runs ${process.execPath} ${join(PACKAGE_DIR, 'bin')}/NAME)`, () => {
    mkdirSync(dirname(at(WRAPPER)), { recursive: true, mode: 0o755 });
    writeFileSync(at(WRAPPER), wrapperText(), { mode: 0o755 });
    chmodSync(at(WRAPPER), 0o755);
    if (!state.created.includes(WRAPPER)) state.created.push(WRAPPER);
  });
  for (const [path, target] of LINKS) {
    const full = at(path);
    const st = lstat(full);
    const ours = st?.isSymbolicLink() && readlinkSync(full) === target;
    if (ours && state.links.some((l) => l.path === path)) {
      out(`${path} already points to postern\n`);
      continue;
    }
    const before: Before = !st ? { type: 'none' } : st.isSymbolicLink() ? { type: 'symlink', target: readlinkSync(full) }
      : { type: 'file', saved: `/var/lib/postern/saved${path}` };
    const was = before.type === 'none' ? 'new' : before.type === 'symlink' ? `was -> ${before.target}` : `the file there saved as ${before.saved}`;
    plan.add(`link ${path} -> ${target} (${was})`, () => {
      mkdirSync(dirname(full), { recursive: true, mode: 0o755 });
      if (before.type === 'file') {
        mkdirSync(dirname(at(before.saved)), { recursive: true, mode: 0o700 });
        renameSync(full, at(before.saved));
      }
      const tmp = `${full}.postern-new`;
      rmSync(tmp, { force: true });
      symlinkSync(target, tmp);
      renameSync(tmp, full); // the name is never missing: cron's sendmail keeps working
      state.links.push({ path, target, before });
    });
  }
  plan.add(`record what the links pointed to in ${STATE}`, () => {
    mkdirSync(dirname(statePath), { recursive: true, mode: 0o755 });
    writeFileSync(statePath, JSON.stringify(state, null, 2) + '\n', { mode: 0o644 });
  });

  if (systemd) plan.add('reload systemd (systemctl daemon-reload)', () => spawnSync('systemctl', ['daemon-reload'], { stdio: 'ignore' }));

  plan.exec(o.dryRun, out);
  if (!o.dryRun) {
    out(`done. Next: check ${CONFIG_PATHS.conf}, then \`systemctl disable --now exim4\` and \`systemctl enable --now postern\`\n`);
  }
  return EX.OK;
}

export function uninstall(argv: string[], out: (s: string) => void, err: (s: string) => void): number {
  const o = parseInstallArgs(argv);
  requireRoot(o, 'uninstall postern');
  const at = (p: string) => join(o.root, p);
  const statePath = at(STATE);
  if (!existsSync(statePath)) {
    if (existsSync(at(DPKG_LIST))) throw failure('postern was installed by its Debian package, not by `postern install`: remove it with `apt remove postern` (`apt purge postern` also removes its configuration and log)');
    throw failure(`postern install's record ${STATE} is missing: nothing to undo`);
  }
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as State;
  const plan = new Plan();
  if (o.root !== '/') out(`uninstalling from ${o.root}\n`);

  if (o.root === '/' && existsSync('/run/systemd/system')) {
    plan.add('stop and disable postern (systemctl disable --now postern)', () => spawnSync('systemctl', ['disable', '--now', 'postern'], { stdio: 'ignore' }));
  }
  for (const l of [...state.links].reverse()) {
    const full = at(l.path);
    const st = lstat(full);
    if (!(st?.isSymbolicLink() && readlinkSync(full) === l.target)) {
      err(`postern uninstall: ${l.path} no longer points to postern: left as it is\n`);
      continue;
    }
    const b = l.before;
    const what = b.type === 'none' ? 'remove' : b.type === 'symlink' ? `point it back to ${b.target}` : `put back the file saved as ${b.saved}`;
    plan.add(`${l.path}: ${what}`, () => {
      if (b.type === 'none') rmSync(full);
      else if (b.type === 'symlink') {
        const tmp = `${full}.postern-old`;
        rmSync(tmp, { force: true });
        symlinkSync(b.target, tmp);
        renameSync(tmp, full);
      } else renameSync(at(b.saved), full);
    });
  }
  for (const path of state.created) plan.add(`remove ${path}`, () => rmSync(at(path), { force: true }));
  plan.add(`remove ${STATE}`, () => {
    rmSync(statePath);
    rmSync(at('/var/lib/postern/saved'), { recursive: true, force: true });
    try {
      rmdirSync(dirname(statePath)); // when nothing else is kept there
    } catch { /* not empty: left */ }
  });
  plan.exec(o.dryRun, out);
  out(`kept: ${CONFIG_PATHS.conf}, the spool ${CONFIG_PATHS.spool} and ${CONFIG_PATHS.maildrop} (mail still queued there is not sent by anyone now), the log ${CONFIG_PATHS.logDir} and the postern user\n`);
  return EX.OK;
}
