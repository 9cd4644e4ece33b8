// cli/help.ts: the one source of postern's help: each page (a personality's usage, or
// the configuration file's keys) as data, rendered as plain text for `--help` and as
// roff for the man pages (man/generate.mjs writes man/*.5 and man/*.8 from it). Over
// 400 lines because the first 380 are the pages' words; the code is the renderers below.
import { version } from '../core/version.js';

interface HelpSection {
  title: string;
  paras?: string[];
  /** term, text: an option or a key and what it does */
  items?: [string, string][];
}

export interface HelpPage {
  name: string;
  section: 5 | 8;
  summary: string;
  synopsis: string[];
  sections: HelpSection[];
}


const FILES: HelpSection = {
  title: 'Files',
  items: [
    ['/etc/postern/postern.toml', 'the configuration (see postern.toml(5)); -C FILE or $POSTERN_CONFIG name another'],
    ['/var/spool/postern', 'the spool (LMDB), the delivery lock and the control socket; mode 0700, the daemon user\'s'],
    ['/var/spool/postern-maildrop', 'where sendmail leaves each message for the daemon to pick up (mode 1731, group postern-drop: users write through the setgid helper /usr/lib/postern/dist/postdrop)'],
    ['/var/log/postern/mainlog', 'the main log, in Exim\'s format (mode 0640)'],
  ],
};

const EXIT: HelpSection = {
  title: 'Exit status',
  items: [
    ['0', 'success'],
    ['1', 'an operation failed (an unknown message ID, a bad configuration)'],
    ['64', 'a bad command line (EX_USAGE)'],
    ['65', 'bad input, such as no recipients (EX_DATAERR)'],
    ['75', 'the spool is unavailable: try again later (EX_TEMPFAIL)'],
    ['77', 'not allowed: a queue command run by someone other than root and the daemon\'s user (EX_NOPERM)'],
  ],
};

const SENDMAIL_OPTIONS: [string, string][] = [
  ['-t', 'take the recipients from To:, Cc: and Bcc: (Bcc: is removed); addresses also named on the command line are removed from that list'],
  ['-i, -oi', 'a line holding a single "." does not end the message'],
  ['-f ADDR, -r ADDR', 'the envelope sender ("-f \'<>\'" for the null sender)'],
  ['-F NAME', 'the full name for a generated From:'],
  ['-odq', 'queue only: no delivery until a queue run'],
  ['-bs', 'an SMTP session on stdin and stdout'],
  ['-bp', 'list the queue, as mailq'],
  ['-bi', 'rebuild the aliases: nothing to do (a satellite has none), exit 0'],
  ['-odi, -odb, -bm, -oem, -oee, -oep, -oeq, -oew, -v, -U, -Am, -Ac, -B 8BITMIME', 'accepted, as other sendmail-compatible MTAs accept them'],
];

/** `postern install` / `uninstall`: a section of postern(8), and install's own --help. */
const INSTALL: HelpSection = {
  title: 'Installing over Exim',
  paras: [
    'postern install writes /etc/postern/postern.toml (kept if it exists), importing Debian\'s Exim satellite settings (/etc/exim4/update-exim4.conf.conf, the macros and main options of exim4.conf.localmacros and of the admin\'s own files in conf.d/main, /etc/mailname, the host name, /etc/email-addresses, /etc/aliases, /etc/exim4/passwd.client) with a report of one line per setting found: mapped (printed, with the postern key it became), not needed on postern (printed, with why), or not mapped (on stderr, with what that changes); creates the postern user and group, the spool and log folders; ships /etc/systemd/system/postern.service, postern.socket (the SMTP sockets systemd holds across restarts) and /etc/logrotate.d/postern; and links /usr/sbin/sendmail, /usr/lib/sendmail, /usr/bin/mailq and /usr/bin/newaliases to postern, keeping what they pointed to. Mail still in Exim\'s queue is counted. postern uninstall puts the links back as they were and removes what install shipped, keeping the configuration, the spool and the log.',
  ],
  items: [
    ['--root DIR', 'every path is taken inside DIR, and no user or group is created'],
    ['--dry-run, -n', 'print every step and change nothing'],
    ['--import-queue', 'take the messages of Exim\'s queue over into postern\'s (with postern stopped; --dry-run lists them)'],
    ['--exim-spool DIR', 'Exim\'s spool folder for --import-queue; default /var/spool/exim4'],
    ['--help, -h', 'print this usage'],
  ],
};

export const PAGES: Record<string, HelpPage> = {
  postern: {
    name: 'postern',
    section: 8,
    summary: 'satellite mail transfer agent: relays local mail to the smarthost, with Exim\'s commands',
    synopsis: [
      'postern [-C FILE] -bd [-qINTERVAL]',
      'postern [-C FILE] -bp | -bpa | -bpc | -bpr | -bpu [--json]',
      'postern [-C FILE] -Mvh | -Mvb | -Mvc | -Mvl | -Mrm | -Mf | -Mt | -M | -Mg | -Mmad ID... [--json]',
      'postern [-C FILE] -Mar ID ADDR... | -Mes ID ADDR | -Mmd ID ADDR... [--json]',
      'postern [-C FILE] -q | -qf | -qff | -R STRING | -S STRING',
      'postern [-C FILE] -Mwhy ID... [--json]',
      'postern [-C FILE] -bt ADDR... | -brt ADDR [ERROR] | -bV | -bP [NAME...]',
      'postern install | uninstall [--root DIR] [--dry-run]',
      'postern [-C FILE] [sendmail options] [RECIPIENT...]',
    ],
    sections: [
      {
        title: 'Description',
        paras: [
          'postern is the small MTA each machine of a site runs: it takes mail from local programs (SMTP on loopback, and the sendmail command that cron, scripts and PHP call), keeps each message on disk until the smarthost has accepted it, and relays all of it there. It replaces Exim in Debian\'s satellite mode and keeps Exim\'s flags, queue listing and log lines.',
          'One program answers to several names, picking its personality from the name it was called by: postern (Exim\'s flags), sendmail, mailq (postern -bp), newaliases (nothing to do), postern-qgrep (exiqgrep, see postern-qgrep(8)) and postern-exigrep (exigrep). With no mode flag, postern behaves as sendmail.',
          'Every command finds its configuration at -C FILE, else $POSTERN_CONFIG, else /etc/postern/postern.toml, else the package\'s config/postern.toml. Every command works on the spool whether or not the daemon runs.',
        ],
      },
      {
        title: 'Daemon',
        items: [
          ['-bd', 'run the daemon in the foreground: the SMTP listeners of listen.smtp and the deliveries. It prints one line on stderr once it is ready. SIGHUP re-reads the configuration and reopens the main log, SIGUSR1 reopens the main log, SIGTERM stops (in-flight deliveries finish)'],
          ['-qINTERVAL', 'with -bd: the longest a deferred message waits past its retry time for a look (-q15m); new mail goes out at once'],
        ],
      },
      {
        title: 'Queue commands',
        paras: ['For root and the daemon\'s user only (others: exit 77). Per-message results go to stdout, as Exim prints them.'],
        items: [
          ['-bp', 'list the queue in Exim\'s format (as mailq); -bpa the same, -bpc the number of messages, -bpr unsorted, -bpu undelivered recipients only; --json one object per line'],
          ['-Mvh ID, -Mvb ID, -Mvc ID, -Mvl ID', 'print the message\'s headers, body, the whole message, or its own delivery log'],
          ['-Mrm ID...', 'remove, with no bounce (a malformed ID among several is reported and the others removed)'],
          ['-Mar ID ADDR..., -Mes ID ADDR', 'add recipients; change the sender (<> allowed)'],
          ['-Mmd ID ADDR..., -Mmad ID...', 'mark recipients delivered; mark all delivered (the message then completes)'],
          ['-Mf ID..., -Mt ID...', 'freeze, thaw'],
          ['-M ID...', 'deliver now, ignoring retry times and the frozen state'],
          ['-Mg ID...', 'give up: every undelivered recipient fails and the sender gets one bounce'],
          ['-Mwhy ID...', 'why it is still here: per undelivered recipient its state, each attempt (time, host, reply), the retry rule that applied, the next attempt and when it freezes if nothing changes; --json one object per message'],
          ['-q, -qf, -qff', 'one queue run: the due messages; every unfrozen one; frozen ones too'],
          ['-R STRING, -S STRING', 'a queue run over the messages with an undelivered recipient (-R) or a sender (-S) containing STRING, in any case; -Rff, -Sff thaw too'],
        ],
      },
      {
        title: 'Information',
        items: [
          ['-bt ADDR...', 'how each address routes: router, transport and hosts in failover order'],
          ['-brt ADDR [ERROR]', 'the retry rule that applies to the address (and error type: refused, timeout, rcpt_452...), as Exim prints it; without ERROR only rules whose error is *'],
          ['-bV', 'print the version and check the configuration'],
          ['-bP [NAME...]', 'print the effective configuration, or the named settings (credentials never shown)'],
          ['--help, -h', 'print this usage'],
          ['--version', 'print the version'],
        ],
      },
      INSTALL,
      { title: 'Sendmail options', paras: ['With no mode flag postern reads one message from stdin, as sendmail(8) does:'], items: SENDMAIL_OPTIONS },
      FILES,
      EXIT,
      { title: 'See also', paras: ['postern.toml(5), postern-qgrep(8), postern-exigrep(8), exim(8)'] },
    ],
  },

  sendmail: {
    name: 'sendmail',
    section: 8,
    summary: 'submit one message to postern',
    synopsis: ['sendmail [-C FILE] [options] [RECIPIENT...] < message'],
    sections: [
      {
        title: 'Description',
        paras: [
          'Reads one message from stdin and leaves it in the maildrop for the postern daemon, synced to disk before it exits 0; it works whether or not the daemon runs. Without -f the sender is the caller\'s login at qualify_domain. Date:, Message-ID:, From: and a Received: line are added as Exim adds them.',
        ],
        items: SENDMAIL_OPTIONS,
      },
      EXIT,
      { title: 'See also', paras: ['postern(8)'] },
    ],
  },

  mailq: {
    name: 'mailq',
    section: 8,
    summary: 'list postern\'s queue',
    synopsis: ['mailq [-C FILE] [-bpc | -bpr | -bpu] [--json]'],
    sections: [
      {
        title: 'Description',
        paras: ['The same as postern -bp: the queue in Exim\'s format, oldest first: age, size, message ID, sender (and *** frozen ***), then one line per recipient, D marking the delivered ones.'],
        items: [
          ['-bpc', 'print the number of messages'],
          ['-bpr', 'unsorted'],
          ['-bpu', 'undelivered recipients only'],
          ['--json', 'one JSON object per message'],
        ],
      },
      EXIT,
    ],
  },

  newaliases: {
    name: 'newaliases',
    section: 8,
    summary: 'rebuild the aliases database (nothing to do for postern)',
    synopsis: ['newaliases'],
    sections: [{ title: 'Description', paras: ['A satellite builds no aliases database: the daemon reads rewrite.aliases (one-address aliases, as Debian\'s system_aliases) at start and on SIGHUP, and the smarthost\'s aliases apply to the rest. newaliases (and sendmail -bi) does nothing and exits 0, so packages that call it after editing /etc/aliases keep working; reload the daemon (systemctl reload postern) for it to see the edit.'] }],
  },

  'postern-qgrep': {
    name: 'postern-qgrep',
    section: 8,
    summary: 'select messages in postern\'s queue, as exiqgrep does',
    synopsis: ['postern-qgrep [-C FILE] [selectors] [-c | -i | -b | --summary | --shape] [-R] [--json]',
      'postern-qgrep [-C FILE] [selectors] --remove | --freeze | --thaw | --deliver | --giveup [--dry-run] [--json]'],
    sections: [
      {
        title: 'Description',
        paras: [
          'Prints the queued messages that match every selector given, oldest first, in the format of postern -bp unless -c, -i or -b is given. With no selector every message matches, so "postern-qgrep -i | xargs postern -Mrm" empties the queue and "postern-qgrep -i -f \'<spam@\' | xargs postern -Mrm" removes one sender\'s mail. For root and the daemon\'s user only.',
        ],
      },
      {
        title: 'Selectors',
        items: [
          ['-f REGEX', 'the sender, matched case-insensitively against <address> with its angle brackets (so -f \'^<>$\' selects bounces)'],
          ['-r REGEX', 'any undelivered recipient'],
          ['-s REGEX', 'the size as -bp prints it'],
          ['-y SECONDS', 'younger than (the age of the ID\'s time, as exiqgrep takes it)'],
          ['-o SECONDS', 'older than'],
          ['-z', 'frozen only'],
          ['-x', 'unfrozen only'],
          ['-a', 'include delivered recipients'],
        ],
      },
      {
        title: 'Display',
        items: [
          ['-c', 'count only: "3 matches out of 7 messages"'],
          ['-i', 'message IDs only, one a line'],
          ['-b', 'brief: ID From: <sender> To: rcpt1;rcpt2'],
          ['-R', 'newest first'],
          ['--summary', 'exiqsumm\'s table: per recipient domain the undelivered addresses\' count, volume, oldest and newest, then TOTAL'],
          ['--shape', 'qshape\'s table: undelivered recipients per domain and age (T 5 10 20 40 80 160 320 640 1280 1280+ minutes)'],
          ['--json', 'one JSON object per message (or per table line)'],
          ['--help', 'print this usage'],
        ],
      },
      {
        title: 'Bulk actions',
        paras: ['On every matching message, printing the line of the single action for each: --remove, --freeze and --thaw in one spool transaction (as -Mrm, -Mf, -Mt; the running daemon does them and leaves a message it is delivering alone: "Message ID is locked"), --deliver as -M, --giveup as -Mg. With --dry-run nothing changes and each line says what would be done ("Message ID would be removed").'],
      },
      EXIT,
      { title: 'See also', paras: ['postern(8), exiqgrep(8)'] },
    ],
  },

  'postern-exigrep': {
    name: 'postern-exigrep',
    section: 8,
    summary: 'every main-log line of the messages that match, as exigrep does',
    synopsis: ['postern-exigrep [-C FILE] [-l] [-I] [-v] PATTERN [FILE...]'],
    sections: [
      {
        title: 'Description',
        paras: [
          'Searches postern\'s main log for lines matching PATTERN (a regular expression, case-insensitive) and prints every line of each message that has one, grouped per message, in the order the messages ended. Lines that belong to no message are printed when they match. Gzipped files (.gz) are read as they are. With no FILE it reads log.file and its rotations (mainlog.N, mainlog.N.gz and logrotate\'s dated names), oldest first. Answers "what happened to the mail I sent yesterday": postern-exigrep bob@example.org.',
        ],
        items: [
          ['-l', 'PATTERN is a literal string, not a regular expression'],
          ['-I', 'match case-sensitively'],
          ['-v', 'print the messages that have no line matching'],
          ['--help', 'print this usage'],
        ],
      },
      {
        title: 'Exit status',
        items: [['0', 'something matched'], ['1', 'nothing matched, or a file could not be read'], ['64', 'a bad command line']],
      },
      { title: 'See also', paras: ['postern(8), exigrep(8)'] },
    ],
  },

  'postern.toml': {
    name: 'postern.toml',
    section: 5,
    summary: 'postern\'s configuration file',
    synopsis: ['/etc/postern/postern.toml'],
    sections: [
      {
        title: 'Description',
        paras: [
          'TOML, validated when read: an unknown key, a wrong type or a bad value is refused with the file, line and key named, and the daemon does not start. Relative paths are relative to the file\'s folder. Sizes take K, M or G ("50M"), durations s, m, h, d or w ("15m"). SIGHUP makes a running daemon read the file again; listeners, spool and log location change on restart.',
        ],
      },
      {
        title: 'Top-level keys',
        items: [
          ['hostname', 'the HELO name, used in Received: and Message-ID:; default: the machine\'s name'],
          ['qualify_domain', 'appended to unqualified addresses (root becomes root@qualify_domain); default: hostname'],
          ['user', 'the daemon\'s own user ("postern"): a daemon started as root binds its listeners, sets up the spool, maildrop and log for this user, then runs as it'],
        ],
      },
      {
        title: '[listen]',
        items: [
          ['smtp', 'SMTP listeners, "host:port" or "[v6]:port"; default ["127.0.0.1:25", "[::1]:25"]'],
          ['relay_from', 'client networks that may relay; others get 550 5.7.1; default ["127.0.0.0/8", "::1/128"]'],
          ['max_message_size', 'advertised as SIZE, larger messages get 552 5.3.4; default "50M"'],
          ['max_recipients', 'more RCPTs get 452 4.5.3; default 1000'],
          ['max_connections', 'more connections get 421; default 100'],
          ['idle_timeout', 'a client silent this long gets 421 4.4.2; default "5m"'],
          ['max_errors', '5xx replies in one session before 421 4.7.0 and the end of it; 0: no limit; default 20'],
        ],
      },
      {
        title: '[spool]',
        items: [
          ['directory', 'the LMDB spool, the delivery lock and the control socket (mode 0700); default "/var/spool/postern"'],
          ['maildrop', 'the drop folder of sendmail (mode 1731, the daemon user\'s, of the drop group); default: directory + "-maildrop"'],
          ['postdrop', 'the setgid helper through which other users write into the maildrop; its group becomes the maildrop\'s; default: the one installed with postern'],
        ],
      },
      {
        title: '[smarthost]',
        items: [
          ['hosts', 'required: "host:port" list, tried in order (failover)'],
          ['tls', '"none", "opportunistic" (STARTTLS when offered, not verified; the default), "required" (STARTTLS, verified against tls_ca_file and the host name) or "implicit" (TLS from the first byte, verified)'],
          ['tls_ca_file', 'trust anchors for "required" and "implicit"; default: the system\'s'],
          ['auth_user, auth_password_file', 'AUTH PLAIN or LOGIN when the session can (Exim\'s hosts_try_auth): only inside TLS and when the hub offers AUTH, otherwise the mail goes without; the password is the file\'s first line, read at each connection'],
          ['connections', 'parallel deliveries; default 4'],
          ['timeout', 'inactivity limit per SMTP command; default "5m"'],
          ['probe_interval', 'while a host is down, probe it (connect, EHLO, TLS/AUTH, QUIT) at most this often; when it answers, the mail held for it is due at once; default "1m"'],
        ],
      },
      {
        title: '[retry]',
        items: [
          ['rules', 'Exim retry rules "PATTERN ERROR PARAMS", first match of pattern and error wins; ERROR is *, refused, timeout, timeout_connect, lost_connection, tls_required, auth_failed, mail_4xx, rcpt_4xx, data_4xx or a digit form (rcpt_452, rcpt_45x); default ["* * F,2h,15m; G,16h,1h,1.5; F,4d,6h"]'],
          ['delay_warning', 'warn the sender after this long undelivered; [] turns warnings off; default ["24h"]'],
          ['timeout_frozen_after', 'frozen messages older than this are cancelled; "0s" never; default "7d"'],
          ['ignore_bounce_errors_after', 'a frozen bounce older than this gets one last try, then is discarded; "0s" never; default "2d"'],
        ],
      },
      {
        title: '[queue]',
        items: [['active_limit', 'messages held in memory at once, whatever the queue\'s size; default 500']],
      },
      {
        title: '[rewrite]',
        paras: ['Rewriting on the way to the smarthost, as Debian\'s Exim satellites do it: recipients that are this machine\'s users (Debian\'s hub_user router); the envelope sender and the From, Reply-To, Sender, To, Cc and Bcc headers, names and comments kept. The spool keeps the original.'],
        items: [
          ['readhost', 'Debian\'s dc_readhost: mail for a login of this machine at one of its names (user@hostname, user@qualify_domain, user@localhost, a local_domains name) goes to user@readhost, logged "=> user@readhost <user@hostname>"; with hide_hostname the sender and headers with those addresses go out as user@readhost too; default: none'],
          ['hide_hostname', 'Debian\'s dc_hide_mailname: rewrite the sender and headers to the readhost; default true'],
          ['local_domains', 'more names of this machine besides hostname, qualify_domain and localhost (Debian\'s dc_other_hostnames); default: none'],
          ['aliases', 'an aliases file (Debian\'s /etc/aliases), read at start and SIGHUP: with readhost, a recipient at this machine\'s names whose alias is one address goes there (then hub_user), as Debian\'s system_aliases router; an alias of several targets, a pipe or a file is left to the hub; default: none'],
          ['email_addresses', 'a file of "user: address" lines (Debian\'s /etc/email-addresses), read at start, SIGHUP and -bV; a listed user\'s local address goes out as that address; default: none'],
        ],
      },
      {
        title: '[limits]',
        paras: ['A runaway sender (a looping cron job or script) is held, not relayed: past its rate, each new message is still accepted (250, sendmail exits 0) but frozen on arrival, in the same commit, with a journal entry saying which limit (postern -Mwhy, -Mvl); mailq shows it frozen; postern-qgrep -z --thaw releases it after review. The main log gets one line and postern_limit_episodes_total one count per episode, not per message; an episode ends when a whole period passes with nothing over the rate. Held mail waits for the operator: timeout_frozen_after does not cancel it. The counts are the daemon\'s, in memory (a restart forgets them), at most 10,000 senders per limit (the least recently seen forgotten first). A rate is "COUNT/PERIOD" ("200/1h", "50/15m"); "off" or "0": no limit.'],
        items: [
          ['per_user', 'local submissions (sendmail, sendmail -bs), by the submitting user (the maildrop file\'s owner, as the kernel reports it); default "1000/1h"'],
          ['per_client', 'SMTP, by the client\'s IP address; default "1000/1h"'],
        ],
      },
      {
        title: '[daemon]',
        items: [
          ['idle_exit', 'a daemon started by postern.socket exits after this long with no SMTP connection, nothing queued and nothing in the maildrop; systemd starts it again for the next connection (postern-maildrop.path: for a sendmail file); off unless set, e.g. "10m"'],
        ],
      },
      {
        title: '[log]',
        items: [
          ['file', 'the main log; default "/var/log/postern/mainlog"'],
          ['format', '"exim" (Exim\'s line formats, the default) or "json" (the same events as JSON lines)'],
        ],
      },
      {
        title: '[metrics]',
        items: [
          ['listen', 'host:port (or a port: 127.0.0.1 only) where the daemon serves Prometheus text at /metrics: postern_queue_messages{state}, postern_queue_oldest_seconds, postern_received_messages_total{protocol}, postern_recipients_total{result,cause}, postern_smarthost_up{host}, postern_smtp_rejections_total{stage}, postern_spool_commit_seconds; default: none (off)'],
        ],
      },
      {
        title: 'Example',
        paras: [
          'user = "postern"\nqualify_domain = "example.org"\n\n[smarthost]\nhosts = ["mail.example.org:587", "mail2.example.org:587"]\ntls = "required"\nauth_user = "web1"\nauth_password_file = "/etc/postern/smarthost.pass"',
        ],
      },
      { title: 'See also', paras: ['postern(8)'] },
    ],
  },
};

/** The page a command name shows for --help (a personality's own, else postern's). */
/** `postern install --help`: install's own usage, not the whole of postern's. */
export const INSTALL_PAGE: HelpPage = {
  name: 'postern install',
  section: 8,
  summary: 'make postern the machine\'s MTA in place of Debian\'s Exim satellite, importing its settings; or undo it',
  synopsis: ['postern install [--root DIR] [--dry-run]', 'postern uninstall [--root DIR] [--dry-run]', 'postern [-C FILE] install --import-queue [--dry-run] [--exim-spool DIR]'],
  sections: [INSTALL, EXIT],
};

export function pageFor(personality: string): HelpPage {
  return PAGES[personality] ?? (PAGES.postern as HelpPage);
}

function wrap(text: string, indent: number, width = 79): string {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line && indent + line.length + 1 + word.length > width) {
        out.push(' '.repeat(indent) + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(' '.repeat(indent) + line);
  }
  return out.join('\n');
}

/** The plain-text usage `--help` prints. */
export function helpText(page: HelpPage): string {
  const parts = [`Usage: ${page.synopsis.join('\n       ')}`, '', wrap(`${page.name}: ${page.summary}.`, 0)];
  for (const s of page.sections) {
    parts.push('', `${s.title}:`);
    for (const p of s.paras ?? []) parts.push(p.includes('\n') ? p.replace(/^/gm, '  ') : wrap(p, 2));
    for (const [term, text] of s.items ?? []) {
      if (term.length <= 20) {
        const first = wrap(text, 24).slice(24);
        parts.push(`  ${term.padEnd(22)}${first}`);
      } else parts.push(`  ${term}`, wrap(text, 24));
    }
  }
  return parts.join('\n') + '\n';
}

/** roff text: backslashes doubled, hyphens as \-, a leading . or ' protected. */
function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

/** The man page (man(7) macros) of a page. */
export function manPage(page: HelpPage): string {
  const lines = [
    `.\\" Generated by man/generate.mjs from src/cli/help.ts: edit that, not this file.`,
    `.TH ${roff(page.name.toUpperCase())} ${page.section} "" "postern ${version()}" "postern"`,
    '.SH NAME',
    `${roff(page.name)} \\- ${roff(page.summary)}`,
    '.SH SYNOPSIS',
  ];
  page.synopsis.forEach((s, i) => {
    if (i > 0) lines.push('.br');
    lines.push(`.B ${roff(s)}`);
  });
  for (const s of page.sections) {
    lines.push(`.SH ${roff(s.title.toUpperCase())}`);
    for (const p of s.paras ?? []) {
      if (p.includes('\n')) lines.push('.PP', '.nf', ...p.split('\n').map(roff), '.fi');
      else lines.push('.PP', roff(p));
    }
    for (const [term, text] of s.items ?? []) lines.push('.TP', `.B ${roff(term)}`, roff(text));
  }
  return lines.join('\n') + '\n';
}

/** The man pages the package installs: file name and page. */
export const MAN_PAGES: [string, HelpPage][] = [
  ['postern.8', PAGES.postern as HelpPage],
  ['postern.toml.5', PAGES['postern.toml'] as HelpPage],
  ['postern-qgrep.8', PAGES['postern-qgrep'] as HelpPage],
  ['postern-exigrep.8', PAGES['postern-exigrep'] as HelpPage],
];
