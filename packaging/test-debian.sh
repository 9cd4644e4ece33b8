#!/usr/bin/env bash
# packaging/test-debian.sh: the package on the distribution it is made for. Builds the
# .deb (packaging/build-deb.sh), makes a Debian 13 root with debootstrap from the
# host's Debian mirror (cached under /var/cache/postern-test, rebuilt after 7 days; see
# packaging/testroot/lib.sh), installs the .deb in a throwaway copy of it with
# `apt-get install ./postern_*.deb` (Debian's own nodejs, never this host's node), points
# its configuration at a sink on the host's loopback as an administrator would, and runs
# the smoke list as root, www-data and postern, checking what each command prints:
#   - chrooted, the daemon never started: -bV, sendmail -t, mailq (www-data: exit 75
#     with no daemon), -bpc (www-data: exit 77);
#   - booted with systemd-nspawn, the daemon started by its unit: enabled, active, run
#     as postern; the waiting mail reaches the sink; sendmail -t reaches it; held mail
#     (the sink answers 451) is listed by mailq (www-data sees only its own), shown by
#     -Mvh, found by postern-qgrep, removed by -Mrm (www-data: its own only; exit 77 for
#     -bpc, -Mvh and postern-qgrep); `systemctl stop` (postern.socket too), sendmail -t with the daemon down,
#     `systemctl start`, and that mail arrives too;
#   - the units stopped: root's `postern install --import-queue --dry-run` and the import
#     of a real Exim queue (its writer runs as postern), then `/usr/sbin/postern -bd`
#     started as root by hand with user = "postern": ready, its root process only
#     supervising, the one holding the spool running as postern (/proc/PID/status), mail
#     taken on the listener root bound and delivered, HUP and TERM passed on, exit 0.
# Prints one "ok N - ..." or "not ok N - ..." line per check (TAP), the output of each
# failed one, and the time each stage took.
#   packaging/test-debian.sh            (root; needs debootstrap, systemd-nspawn)
# Exit: 0 all passed, 1 a check failed, 2 cannot run here (not root, a tool missing),
# 75 the Debian archive cannot be reached (nothing was tested).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "test-debian: $*" >&2; }
# shellcheck source=packaging/testroot/lib.sh
. "$here/packaging/testroot/lib.sh"
# shellcheck source=packaging/testroot/tap.sh
. "$here/packaging/testroot/tap.sh"
tap_preflight POSTERN_TEST_DEBIAN_NS -- "$@"

t0=$SECONDS
stage() { say "[$((SECONDS - t0)) s] $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/postern-debian.XXXXXX")
sink_pid=''
tested=''
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	set +e # every step of the teardown runs, whatever the one before did
	# Past the archive, no failure is a skip: 75 means the archive only.
	if [ -n "$tested" ] && [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then status=1; fi
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
	tap_stop_build
	droot_cleanup
	rm -rf --one-file-system "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the package and the root ---------------------------------------------------------
stage "building the package (packaging/build-deb.sh), and the $DROOT_SUITE root meanwhile"
tap_package_start "$work"
tested=yes
tap_package_wait "$work"
deb=$TAP_DEB
stage "built ${deb##*/}, the $DROOT_SUITE root is ready"

droot_new "$work/t"
droot_chroot_mount
cp "$deb" "$DROOT/tmp/"
chmod 0644 "$DROOT/tmp/${deb##*/}"

PHASE=chroot
run_as() {
	if [ "$PHASE" = chroot ]; then droot_chroot "$@"; else droot_exec "$@"; fi
}
message() { # message TO SUBJECT
	printf 'To: %s\nSubject: %s\n\nThe smoke test of packaging/test-debian.sh.\n' "$1" "$2"
}
# The queue ID of the message to a recipient, as the postern user finds it.
queue_id() { { run_as postern postern-qgrep -i -r "^$1\$" 2>/dev/null || true; } | head -n 1; }
in_queue() {
	local q
	q=$(run_as postern mailq 2>/dev/null) || true
	grep -q -- "$1" <<<"$q"
}
# sent_by RCPT USER: the sink has a message to RCPT whose envelope sender is USER@...
sent_by() {
	local f
	for f in "$work"/sink/*.eml; do
		[ -f "$f" ] || continue
		if grep -Eq -- "^X-Sink-Rcpt-To: $1\$" "$f" && grep -Eq -- "^X-Sink-Mail-From: <$2@" "$f"; then return 0; fi
	done
	return 1
}

# --- installed with apt, as an administrator would ---------------------------------------
stage "installing ${deb##*/} with apt-get in the $DROOT_SUITE root (chroot)"
# The cached root holds every dependency the package had when it was made; apt fetches
# one added since with the root's lists, or after apt-get update when they are stale.
status=0
out=$(droot_chroot root apt-get install -y "/tmp/${deb##*/}" 2>&1) || status=$?
if [ "$status" -ne 0 ] && grep -Eq 'unmet dependencies|is not installable|Unable to locate|Unable to fetch|apt-get update' <<<"$out"; then
	say "apt-get install failed on the cached root's lists: apt-get update, then the install again"
	droot_chroot root apt-get update -qq >/dev/null 2>&1 || true
fi
if [ "$status" -ne 0 ]; then
	check "apt-get install ./${deb##*/}: installed" 0 '' root apt-get install -y "/tmp/${deb##*/}"
else
	verdict "apt-get install ./${deb##*/}: installed" yes
fi
[ "$fails" -eq 0 ] || exit 1
node_version=$(droot_chroot root node --version)
nodejs_version=$(droot_chroot root dpkg-query -W -f '${Version}' nodejs)
say "the root's node: $node_version (nodejs $nodejs_version); the host's: $(node --version)"
check "/usr/bin/node is Debian's nodejs package" 0 '^nodejs:' root dpkg -S /usr/bin/node
upstream=${nodejs_version#*:}
upstream=${upstream%%[+~-]*}
verdict "node --version is the nodejs package's ($nodejs_version)" "$([ "$node_version" = "v$upstream" ] && echo yes || echo no)" "node --version: $node_version"
check "postern is installed (dpkg)" 0 '^install ok installed$' root dpkg-query -W -f '${Status}\n' postern
# sendmail's C front end, which hands what it does not do to /usr/lib/postern/bin/sendmail.
check "/usr/sbin/sendmail is postern's" 0 '^/usr/lib/postern/dist/sendmail$' root readlink -f /usr/sbin/sendmail

# The sink on the host's loopback, and the root's configuration edited to use it: the
# smarthost, no TLS (the sink offers none), and a free port for postern's listener (the
# root shares the host's network, where port 25 may be another MTA's).
mkdir "$work/sink"
: >"$work/sink.out"
node "$here/packaging/testroot/sink.mjs" "$work/sink" >"$work/sink.out" 2>&1 &
sink_pid=$!
sink_up() { grep -q '^sink ' "$work/sink.out"; }
wait_for 20 sink_up || { say "the sink did not start: $(cat "$work/sink.out")"; exit 1; }
sink_port=$(awk '/^sink /{ print $3 }' "$work/sink.out")
smtp_port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
conf=$DROOT/etc/postern/postern.toml
sed -i -e "s|^hosts = .*|hosts = [\"127.0.0.1:$sink_port\"]|" -e 's|^tls = .*|tls = "none"|' \
	-e "s|^smtp = .*|smtp = [\"127.0.0.1:$smtp_port\"]|" "$conf"
droot_socket_listen "127.0.0.1:$smtp_port"
say "sink on 127.0.0.1:$sink_port; postern (and postern.socket) to listen on 127.0.0.1:$smtp_port"
check "the edited configuration is valid (-bV as root)" 0 "^postern version .*\(Node.js $node_version\)" root postern -bV

# --- chrooted, no daemon ever started -----------------------------------------------------
stage "smoke list, chrooted, no daemon"
for u in root www-data postern; do
	check "-bV as $u: Debian's node, the package's configuration" 0 "^Configuration file is /etc/postern/postern.toml$" "$u" /usr/sbin/sendmail -bV
	INPUT=$(message "down-$u@example.org" "smoke: $u, no daemon") check "sendmail -t as $u, no daemon: accepted" 0 SILENT "$u" /usr/sbin/sendmail -t
done
check "mailq as www-data, no daemon: exit 75 (only the daemon lists a user's own mail)" 75 'try again later' www-data mailq
check "postern -bpc as www-data: exit 77" 77 'permission denied' www-data postern -bpc
check "mailq as root: the waiting messages (picked up from the maildrop)" 0 'down-root@example\.org' root mailq
check "mailq as postern: all three waiting messages" 0 'down-www-data@example\.org' postern mailq
holds "  ... root's and postern's too" 'down-root@example\.org' 'down-postern@example\.org'
check "postern -bpc as root: 3" 0 '^3$' root postern -bpc

# --- booted: the daemon as its unit runs it ------------------------------------------------
stage "booting the root with systemd-nspawn"
PHASE=booted
droot_chroot_umount
if ! droot_boot; then
	verdict "the root boots (systemd-nspawn -b)" no "$(tail -n 30 "$DROOT_WORK/console.log")"
	exit 1
fi
stage "smoke list, booted, the daemon under systemd"
check "postern.service enabled by the package" 0 '^enabled$' root systemctl is-enabled postern
check "postern.socket enabled by the package" 0 '^enabled$' root systemctl is-enabled postern.socket
unit_active() { [ "$(run_as root systemctl is-active postern 2>/dev/null)" = active ]; }
wait_for 30 unit_active || true
check "systemctl start postern" 0 SILENT root systemctl start postern
check "systemctl is-active postern: active" 0 '^active$' root systemctl is-active postern
if [ "$(tail -n 1 <<<"$LAST")" != active ]; then
	droot_journal postern | sed 's/^/#   /'
fi
main_pid=$(run_as root systemctl show -P MainPID postern 2>/dev/null || echo 0)
check "the daemon runs as postern" 0 '^postern$' root stat -c %U "/proc/$main_pid"
check "the daemon listens where configured" 0 '' root /usr/bin/node -e \
	"require('node:net').connect($smtp_port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
for u in root www-data postern; do
	wait_for 60 sent_by "down-$u@example\.org" "$u" || true
	verdict "the mail $u sent with no daemon reached the sink, from $u" "$(sent_by "down-$u@example\.org" "$u" && echo yes || echo no)"
done

for u in root www-data postern; do
	INPUT=$(message "up-$u@example.org" "smoke: $u, daemon up") check "sendmail -t as $u, daemon up: accepted" 0 SILENT "$u" /usr/sbin/sendmail -t
	INPUT=$(message "hold-$u@example.org" "smoke: $u, held") check "sendmail -t as $u, held by the sink: accepted" 0 SILENT "$u" /usr/sbin/sendmail -t
done
for u in root www-data postern; do
	wait_for 60 sent_by "up-$u@example\.org" "$u" || true
	verdict "$u's mail (daemon up) reached the sink, from $u" "$(sent_by "up-$u@example\.org" "$u" && echo yes || echo no)"
	wait_for 60 in_queue "hold-$u@example.org" || true
done
check "mailq as root: the held messages" 0 'hold-root@example\.org' root mailq
holds "  ... www-data's and postern's too" 'hold-www-data@example\.org' 'hold-postern@example\.org'
check "mailq as www-data: its own held message" 0 'hold-www-data@example\.org' www-data mailq
lacks "  ... and nobody else's" 'hold-(root|postern)@'
check "postern -bpc as www-data: exit 77" 77 'permission denied' www-data postern -bpc
check "postern-qgrep as www-data: exit 77" 77 'permission denied' www-data postern-qgrep -r hold
id_root=$(queue_id hold-root@example.org)
id_www=$(queue_id hold-www-data@example.org)
id_postern=$(queue_id hold-postern@example.org)
say "held: root $id_root, www-data $id_www, postern $id_postern"
check "postern -Mvh as www-data: exit 77" 77 'permission denied' www-data postern -Mvh "${id_www:-none}"
check "postern-qgrep as root finds root's held message" 0 "${id_root:-none}" root postern-qgrep -r '^hold-root@'
check "postern-qgrep -i as postern: the IDs" 0 "^${id_postern:-none}$" postern postern-qgrep -i -r hold
check "postern -Mvh as root: the headers" 0 '^Subject: smoke: root, held' root postern -Mvh "${id_root:-none}"
check "postern -Mvh as postern: the headers" 0 '^Subject: smoke: www-data, held' postern postern -Mvh "${id_www:-none}"
check "postern -Mrm as www-data, postern's message: not its own" 1 'does not exist' www-data postern -Mrm "${id_postern:-none}"
check "postern -Mrm as www-data, its own" 0 "^Message ${id_www:-none} has been removed$" www-data postern -Mrm "${id_www:-none}"
check "postern -Mrm as root" 0 "^Message ${id_root:-none} has been removed$" root postern -Mrm "${id_root:-none}"
check "postern -Mrm as postern" 0 "^Message ${id_postern:-none} has been removed$" postern postern -Mrm "${id_postern:-none}"
check "mailq as postern: the queue is empty" 0 '' postern mailq
lacks "  ... no held message left" 'hold-'

stage "the daemon stopped, mail sent, the daemon started"
# The socket unit too: while it listens, a connection would start the daemon again.
check "systemctl stop postern.socket postern" 0 SILENT root systemctl stop postern.socket postern
check "systemctl is-active postern: inactive" 3 '^inactive$' root systemctl is-active postern
for u in root www-data postern; do
	INPUT=$(message "stopped-$u@example.org" "smoke: $u, daemon stopped") check "sendmail -t as $u, daemon stopped: accepted" 0 SILENT "$u" /usr/sbin/sendmail -t
done
check "mailq as www-data, daemon stopped: exit 75" 75 'try again later' www-data mailq
check "systemctl start postern" 0 SILENT root systemctl start postern
check "systemctl is-active postern: active" 0 '^active$' root systemctl is-active postern
for u in root www-data postern; do
	wait_for 60 sent_by "stopped-$u@example\.org" "$u" || true
	verdict "the mail $u sent while the daemon was stopped reached the sink, from $u" "$(sent_by "stopped-$u@example\.org" "$u" && echo yes || echo no)"
done
check "the main log records the deliveries" 0 'stopped-root@example\.org' root grep -F ' => ' /var/log/postern/mainlog

# --- Exim's queue imported, and the daemon started as root by hand ------------------------
# Root becomes postern: Debian's node refuses setgroups/setgid/setuid in process, so the
# import's writer and the daemon run as postern in children started with its uid and gid;
# the daemon's root process binds, sets up, hands the listener over (LISTEN_FDS) and
# only supervises (signals passed on, the child's status its own).
stage "Exim's queue imported as root; the daemon started as root by hand"
# The socket unit too: it holds the port the daemon started by hand binds.
check "systemctl stop postern.socket postern (the import and the daemon by hand)" 0 SILENT root systemctl stop postern.socket postern
rm -rf "$DROOT/var/tmp/exim4" && mkdir -p "$DROOT/var/tmp/exim4"
cp -r "$here/test/fixtures/exim-spool-4.96/input" "$DROOT/var/tmp/exim4/"
check "postern install --import-queue --dry-run as root: Exim's 3 messages, nothing changed" 0 \
	"^3 messages of Exim's queue \(/var/tmp/exim4/input\) would be imported; nothing was changed$" \
	root postern install --import-queue --dry-run --exim-spool /var/tmp/exim4
holds "  ... each named" '^1xaTqu-0000bw-0s <app@example\.org> 1 recipient \(1 delivered by Exim\), .*: would be imported$'
check "postern install --import-queue as root (the spool's writer runs as postern)" 0 \
	'^imported 3 messages from Exim' root postern install --import-queue --exim-spool /var/tmp/exim4
check "the spool holds nothing of root's but the configuration's cache" 0 SILENT root \
	find /var/spool/postern -mindepth 1 ! -user postern ! -name config.cache.json
check "mailq as root: the imported messages" 0 'root@web1\.example\.org' root mailq

cat >"$DROOT/var/tmp/smtp-send.js" <<'JS'
// smtp-send.js PORT FROM TO: one message over SMTP; prints the session; exit 0 when all went well.
const [port, from, to] = process.argv.slice(2);
const lines = ['EHLO byhand.example.org', `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'DATA',
  'Subject: smoke: the daemon started by hand\r\n\r\nThrough the listener root handed over.\r\n.', 'QUIT'];
const s = require('node:net').connect(Number(port), '127.0.0.1');
let i = 0, buf = '', said = '';
const end = (code) => { process.stdout.write(said); process.exit(code); };
s.on('data', (d) => {
  buf += d;
  for (let nl; (nl = buf.indexOf('\n')) >= 0;) {
    const line = buf.slice(0, nl + 1);
    buf = buf.slice(nl + 1);
    said += `S: ${line}`;
    if (!/^\d{3} /.test(line)) continue;
    if (!/^[23]/.test(line)) end(1);
    if (i === lines.length) end(0);
    said += `C: ${lines[i]}\n`;
    s.write(`${lines[i++]}\r\n`);
  }
});
s.on('error', (e) => { said += `${e.message}\n`; end(1); });
JS
# A shell of its own waits for the daemon and keeps its status; setsid: no terminal, no group of ours.
bd_shell=$(run_as root /bin/sh -c 'setsid /bin/sh -c "/usr/sbin/postern -bd -q1m </dev/null >/var/tmp/bd.out 2>&1; echo \$? >/var/tmp/bd.status" >/dev/null 2>&1 & echo $!' 2>/dev/null || true)
bd_pid=''
bd_inner=''
bd_found() {
	bd_pid=$(run_as root cat "/proc/$bd_shell/task/$bd_shell/children" 2>/dev/null | awk '{ print $1 }')
	[ -n "$bd_pid" ] && bd_inner=$(run_as root cat "/proc/$bd_pid/task/$bd_pid/children" 2>/dev/null | awk '{ print $1 }')
	[ -n "$bd_inner" ] && run_as root grep -q 'ready, listening' /var/tmp/bd.out 2>/dev/null
}
wait_for 30 bd_found || true
check "/usr/sbin/postern -bd as root by hand: ready" 0 '^postern: ready, listening for SMTP on 127\.0\.0\.1:' root cat /var/tmp/bd.out
say "the daemon by hand: shell ${bd_shell:-?}, root's process ${bd_pid:-?}, postern's ${bd_inner:-?}"
check "  ... its first process (root's) only supervises: it holds no spool" 0 '^root$' root /bin/sh -c \
	"stat -c %U /proc/${bd_pid:-none} && ! ls -l /proc/${bd_pid:-none}/fd | grep -q /var/spool/postern"
postern_ids="$(run_as root id -u postern) $(run_as root id -g postern)"
spool_holders() { # the processes that have the spool open
	local p
	for p in /proc/[0-9]*; do ls -l "$p/fd" 2>/dev/null | grep -q '/var/spool/postern/spool\.mdb$' && echo "${p#/proc/}"; done
	return 0
}
check "the process that holds the spool is the daemon's child" 0 "^${bd_inner:-none}\$" root /bin/sh -c "$(declare -f spool_holders); spool_holders"
check "  ... and runs as postern, with postern's group only" 0 "^Uid:\s+${postern_ids% *}\s+${postern_ids% *}\s+${postern_ids% *}\s+${postern_ids% *}\$" \
	root grep -E '^(Uid|Gid|Groups):' "/proc/${bd_inner:-none}/status"
holds "  ... gid postern's" "^Gid:\\s+${postern_ids#* }\\s+${postern_ids#* }\\s+${postern_ids#* }\\s+${postern_ids#* }\$"
holds "  ... no supplementary group but postern's" "^Groups:\\s*(${postern_ids#* })?\\s*\$"
check "the daemon by hand takes mail on the listener root bound" 0 '^S: 250 2\.0\.0 OK id=' root /usr/bin/node /var/tmp/smtp-send.js "$smtp_port" byhand@example.org hand@example.org
wait_for 60 sent_by 'hand@example\.org' byhand || true
verdict "  ... and delivers it" "$(sent_by 'hand@example\.org' byhand && echo yes || echo no)"
wait_for 60 sent_by '(ops|dev)@example\.org' app || true
verdict "the messages imported from Exim reach the sink" "$(sent_by '(ops|dev)@example\.org' app && sent_by 'root@web1\.example\.org' root && echo yes || echo no)"
check "mailq as root, the daemon by hand up" 0 '' root mailq
check "kill -HUP to root's process: passed on" 0 SILENT root /bin/sh -c "kill -HUP ${bd_pid:-none}"
reloaded() { run_as root grep -q "SIGHUP received: configuration reloaded" /var/log/postern/mainlog; }
verdict "  ... the reload is logged" "$(wait_for 20 reloaded && echo yes || echo no)"
check "kill -TERM to root's process" 0 SILENT root /bin/sh -c "kill -TERM ${bd_pid:-none}"
bd_done() { run_as root test -s /var/tmp/bd.status; }
wait_for 40 bd_done || true
check "  ... both stop, and root's exits 0, postern's status" 0 '^0$' root cat /var/tmp/bd.status
check "  ... postern's process logged its stop" 0 "postern daemon stopped: pid=${bd_inner:-none}\$" root tail -n 5 /var/log/postern/mainlog
check "  ... none is left" 1 '' root test -e "/proc/${bd_inner:-none}"

droot_poweroff
stage "done: $n checks, $fails failed"
[ "$fails" -eq 0 ]
