#!/usr/bin/env bash
# packaging/test-systemd.sh: postern under a live systemd. Builds the .deb
# (packaging/build-deb.sh; or takes POSTERN_DEB=path), installs it with apt in a
# throwaway Debian 13 root (packaging/testroot/lib.sh), points it at a sink on the host's
# loopback and a free port (postern.toml and a postern.socket drop-in: the root shares
# the host's network), boots it with systemd-nspawn and checks, through systemd itself:
#   1. the units: postern.service and postern.socket enabled and active after boot, the
#      daemon on systemd's socket; start, stop, restart, reload and is-active; Type=notify
#      (active once it answers: a greeting at once after `systemctl start` returns); the
#      sandbox (in the service's mount namespace a write outside ReadWritePaths fails,
#      one inside works; CapEff is CAP_NET_BIND_SERVICE or nothing; run as postern);
#      journalctl -u postern has the start and stop lines; `systemctl kill -s USR1` and
#      the logrotate snippet reopen the main log, and no inspector listens (port 9229).
#   2. restarts that refuse no one: a continuous SMTP load from the host
#      (packaging/testroot/smtp-load.mjs: 20 sessions, one message per connection)
#      through `systemctl restart`, `systemctl reload`, kill -9 of the daemon
#      (Restart=on-failure) and an upgrade to the next version of the .deb (dpkg -i), first without the socket unit (the service as it was before
#      it: the daemon binds), then with it. Each prints one "measure:" line: connections,
#      refused, failed, acknowledged, lost (acknowledged but not at the sink), the longest
#      wait for a greeting. With the socket unit: 0 refused, 0 lost, 0 failed (after kill -9:
#      at most one cut session per load session, those the killed daemon was in, never
#      acknowledged), or the check fails; without it only "0 lost" is a check, the rest
#      is measured.
#   3. started on demand, gone when idle: daemon.idle_exit = "3s" and postern-maildrop.path
#      enabled: the daemon exits by itself (journal line; no process left: 0 MB), the
#      socket still listens; the first message after idle over SMTP and by sendmail is
#      accepted and relayed, the start included in its measured latency.
# Prints one "ok N - ..." or "not ok N - ..." line per check (TAP) and the time each
# stage took.
#   packaging/test-systemd.sh          (root; needs debootstrap, systemd-nspawn)
#   POSTERN_DEB=packaging/out/postern_X_amd64.deb packaging/test-systemd.sh   (no build)
# Exit: 0 all passed, 1 a check failed, 2 cannot run here (not root, a tool missing),
# 75 the Debian archive cannot be reached (nothing was tested).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "test-systemd: $*" >&2; }
# shellcheck source=packaging/testroot/lib.sh
. "$here/packaging/testroot/lib.sh"
# shellcheck source=packaging/testroot/tap.sh
. "$here/packaging/testroot/tap.sh"
tap_preflight POSTERN_TEST_SYSTEMD_NS -- "$@"

t0=$SECONDS
stage() { say "[$((SECONDS - t0)) s] $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/postern-systemd.XXXXXX")
sink_pid=''
load_pid=''
tested=''
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	set +e
	if [ -n "$tested" ] && [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then status=1; fi
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
	tap_stop_build
	droot_cleanup
	rm -rf --one-file-system "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the package and the root ---------------------------------------------------------
[ -n "${POSTERN_DEB:-}" ] || stage "building the package (packaging/build-deb.sh), and the $DROOT_SUITE root meanwhile"
tap_package_start "$work"
tested=yes
tap_package_wait "$work"
deb=$TAP_DEB
stage "the package: ${deb##*/}"

droot_new "$work/t"
droot_chroot_mount
cp "$deb" "$DROOT/tmp/"
chmod 0644 "$DROOT/tmp/${deb##*/}"
# The next two versions (the same package, version +1 and +2) for the upgrades under load.
stage "the next versions of ${deb##*/} (upgrades under load)"
dpkg-deb -R "$deb" "$work/next"
version=$(sed -n 's/^Version: //p' "$work/next/DEBIAN/control")
for i in 1 2; do
	v=${version%-*}-$((${version##*-} + i))
	sed -i "s/^Version: .*/Version: $v/" "$work/next/DEBIAN/control"
	dpkg-deb --root-owner-group -Zgzip -b "$work/next" "$DROOT/root/postern-next$i.deb" >/dev/null
	chmod 0644 "$DROOT/root/postern-next$i.deb"
done
rm -rf "$work/next"

# check DESC STATUS REGEX CMD... (tap.sh): CMD as root in the booted root.
run_as() { droot_exec root "$@"; }
in_root() { droot_exec root "$@" 2>/dev/null </dev/null; }
main_pid() { in_root systemctl show -P MainPID postern || echo 0; }
active() { [ "$(in_root systemctl is-active postern)" = active ]; }

stage "installing ${deb##*/} with apt-get in the $DROOT_SUITE root (chroot)"
status=0
out=$(droot_chroot root apt-get install -y "/tmp/${deb##*/}" 2>&1) || status=$?
if [ "$status" -ne 0 ] && grep -Eq 'unmet dependencies|is not installable|Unable to locate|Unable to fetch|apt-get update' <<<"$out"; then
	droot_chroot root apt-get update -qq >/dev/null 2>&1 || true
	status=0
	out=$(droot_chroot root apt-get install -y "/tmp/${deb##*/}" 2>&1) || status=$?
fi
verdict "apt-get install ./${deb##*/}" "$([ "$status" -eq 0 ] && echo yes || echo no)" "$out"
[ "$fails" -eq 0 ] || exit 1

mkdir "$work/sink"
node "$here/packaging/testroot/sink.mjs" "$work/sink" >"$work/sink.out" 2>&1 &
sink_pid=$!
sink_up() { grep -q '^sink ' "$work/sink.out"; }
wait_for 20 sink_up || { say "the sink did not start: $(cat "$work/sink.out")"; exit 1; }
sink_port=$(awk '/^sink /{ print $3 }' "$work/sink.out")
smtp_port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
sed -i -e "s|^hosts = .*|hosts = [\"127.0.0.1:$sink_port\"]|" -e 's|^tls = .*|tls = "none"|' \
	-e "s|^smtp = .*|smtp = [\"127.0.0.1:$smtp_port\"]|" "$DROOT/etc/postern/postern.toml"
# The load below is one client sending thousands of messages an hour: limits.per_client
# would hold most of them (accepted and frozen, never at the sink).
printf '\n[limits]\nper_client = "off"\n' >>"$DROOT/etc/postern/postern.toml"
droot_socket_listen "127.0.0.1:$smtp_port"
say "sink on 127.0.0.1:$sink_port; postern.socket and listen.smtp on 127.0.0.1:$smtp_port"

# greets [SECONDS]: a connection to the daemon's port gets a 220 within SECONDS (2).
greets() {
	node -e "
const s = require('node:net').connect($smtp_port, '127.0.0.1');
const t = setTimeout(() => { console.log('no greeting in ${1:-2} s'); process.exit(1); }, ${1:-2} * 1000);
s.on('data', (d) => { const ok = /^220 /.test(String(d)); console.log(String(d).trim()); s.end('QUIT\r\n'); clearTimeout(t); process.exit(ok ? 0 : 1); });
s.on('error', (e) => { console.log(e.code); process.exit(1); });"
}
# inspector: is anything listening on port 9229 (Node's inspector)? The root shares the host's network.
inspector() { awk 'NR > 1 && $4 == "0A" && $2 ~ /:2405$/ { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6; }

# --- 1. the units, live ---------------------------------------------------------------
stage "booting the root with systemd-nspawn"
droot_chroot_umount
if ! droot_boot; then
	verdict "the root boots (systemd-nspawn -b)" no "$(tail -n 30 "$DROOT_WORK/console.log")"
	exit 1
fi
stage "1. the units, live"
check "postern.service enabled by the package" 0 '^enabled$' systemctl is-enabled postern.service
check "postern.socket enabled by the package" 0 '^enabled$' systemctl is-enabled postern.socket
wait_for 30 active || true
check "postern.socket active after boot" 0 '^active$' systemctl is-active postern.socket
check "postern.service active after boot" 0 '^active$' systemctl is-active postern
check "  ... the socket unit listens on the test port" 0 "127\.0\.0\.1:$smtp_port" systemctl show -P Listen postern.socket
pid=$(main_pid)
check "  ... the daemon took systemd's socket (its ready line in the journal)" 0 "postern: ready, listening for SMTP on 127\.0\.0\.1:$smtp_port" journalctl -u postern --no-pager -o cat
check "the daemon runs as postern" 0 '^postern$' stat -c %U "/proc/$pid"

check "systemctl stop postern.socket postern" 0 SILENT systemctl stop postern.socket postern
check "systemctl is-active postern: inactive" 3 '^inactive$' systemctl is-active postern
check "  ... the port is closed (the socket unit stopped)" 1 '' /usr/bin/node -e \
	"require('node:net').connect($smtp_port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
check "journalctl -u postern: the stop lines" 0 'postern: SIGTERM received: stopping' journalctl -u postern --no-pager -o cat
holds "  ... the daemon's and systemd's" '^postern: stopped$' '^Stopped postern\.service'
# Type=notify: start returns once the daemon said READY=1, and it then greets at once.
check "systemctl start postern (the socket unit with it: Requires=)" 0 SILENT systemctl start postern
out=$(greets 2 2>&1) && ok=yes || ok=no
verdict "Type=notify: a greeting at once when systemctl start returns" "$ok" "$out"
check "systemctl is-active postern.socket: active" 0 '^active$' systemctl is-active postern.socket
check "journalctl -u postern: the start lines" 0 '^Started postern\.service' journalctl -u postern --no-pager -o cat
holds "  ... the daemon's ready line" 'postern: ready, listening for SMTP on '
pid=$(main_pid)
check "systemctl restart postern" 0 SILENT systemctl restart postern
pid2=$(main_pid)
verdict "  ... a new daemon ($pid -> $pid2), active" "$([ "$pid2" != "$pid" ] && [ "$pid2" != 0 ] && active && echo yes || echo no)"
check "systemctl reload postern" 0 SILENT systemctl reload postern
grep -q 'failed' <<<"$LAST" && droot_journal postern 20 | sed 's/^/#   /'
reloaded() { in_root grep -qF 'SIGHUP received: configuration reloaded' /var/log/postern/mainlog; }
wait_for 30 reloaded || true
verdict "  ... the same daemon, active" "$([ "$(main_pid)" = "$pid2" ] && active && echo yes || echo no)"
check "  ... which reloaded its configuration" 0 'SIGHUP received: configuration reloaded' grep -F SIGHUP /var/log/postern/mainlog
out=$(greets 2 2>&1) && ok=yes || ok=no
verdict "  ... and still greets" "$ok" "$out"
pid=$(main_pid)

# The sandbox, from inside the service's own mount namespace.
check "sandbox: a write to /etc fails in the service's mount namespace" 1 'Read-only file system' \
	nsenter -t "$pid" -m /bin/sh -c 'touch /etc/postern-sandbox-probe'
check "sandbox: a write to /usr fails too" 1 'Read-only file system' \
	nsenter -t "$pid" -m /bin/sh -c 'touch /usr/lib/postern/sandbox-probe'
check "sandbox: a write to the spool (ReadWritePaths) works" 0 SILENT \
	nsenter -t "$pid" -m /bin/sh -c 'touch /var/spool/postern/.sandbox-probe && rm /var/spool/postern/.sandbox-probe'
in_root touch /root/.postern-sandbox-probe
check "sandbox: /root's files are not there (ProtectHome)" 1 '' nsenter -t "$pid" -m /bin/sh -c 'test -e /root/.postern-sandbox-probe'
check "sandbox: CapEff is CAP_NET_BIND_SERVICE or nothing" 0 '^CapEff:[[:space:]]+0000000000000(400|000)$' grep '^CapEff:' "/proc/$pid/status"
check "  ... CapBnd too" 0 '^CapBnd:[[:space:]]+0000000000000(400|000)$' grep '^CapBnd:' "/proc/$pid/status"
check "  ... NoNewPrivs" 0 '^NoNewPrivs:[[:space:]]+1$' grep '^NoNewPrivs:' "/proc/$pid/status"

# The main log reopened: by SIGUSR1 through systemd, then by the logrotate snippet.
message() { printf 'To: %s\nSubject: %s\n\nfrom packaging/test-systemd.sh\n' "$1" "$1"; }
logged() { in_root grep -qF "$1" /var/log/postern/mainlog; }
check "mv mainlog mainlog.moved" 0 SILENT mv /var/log/postern/mainlog /var/log/postern/mainlog.moved
check "systemctl kill -s USR1 postern" 0 SILENT systemctl kill -s USR1 postern
sleep 0.5
printf '%s' "$(message usr1@example.org)" | droot_exec root /usr/sbin/sendmail -t
wait_for 30 logged usr1@example.org || true
verdict "  ... the daemon writes a new mainlog" "$(logged usr1@example.org && echo yes || echo no)" "$(in_root ls -l /var/log/postern/)"
verdict "  ... the same daemon, active" "$([ "$(main_pid)" = "$pid" ] && active && echo yes || echo no)"
verdict "  ... and no inspector listens (port 9229)" "$(inspector && echo no || echo yes)" "$(grep -i ':2405 ' /proc/net/tcp /proc/net/tcp6)"
check "  ... nor did one start (journal)" 1 '' sh -c 'journalctl -u postern --no-pager -o cat | grep -i "debugger listening"'
check "logrotate -f /etc/logrotate.d/postern" 0 '' logrotate -f /etc/logrotate.d/postern
printf '%s' "$(message rotated@example.org)" | droot_exec root /usr/sbin/sendmail -t
wait_for 30 logged rotated@example.org || true
verdict "  ... the daemon writes the new mainlog" "$(logged rotated@example.org && echo yes || echo no)" "$(in_root ls -l /var/log/postern/)"
check "  ... the old one is mainlog.1" 0 'usr1@example\.org' cat /var/log/postern/mainlog.1

# --- 2. restarts that refuse no one -------------------------------------------------------
SESSIONS=${POSTERN_LOAD_SESSIONS:-20}
# measure MODE EVENT: the load through EVENT (restart, reload, kill9); one "measure:" line.
measure() {
	local mode=$1 event=$2 k="$1-$2" restarts before_pid result check_out
	: >"$work/load.$k.err"
	node "$here/packaging/testroot/smtp-load.mjs" load "$smtp_port" "$work/acks.$k" "$SESSIONS" 120 20000 >"$work/load.$k.json" 2>"$work/load.$k.err" &
	load_pid=$!
	load_up() { grep -q 'load started' "$work/load.$k.err"; }
	wait_for 20 load_up || true
	sleep 3
	before_pid=$(main_pid)
	restarts=$(in_root systemctl show -P NRestarts postern)
	case $event in
	restart) in_root systemctl restart postern || true ;;
	reload) in_root systemctl reload postern || true ;;
	upgrade)
		# before: the next version; after: the one after it (postinst restarts the service).
		local which=1
		[ "$mode" = after ] && which=2
		in_root env DEBIAN_FRONTEND=noninteractive dpkg -i "/root/postern-next$which.deb" >"$work/upgrade.$k.log" 2>&1 || say "dpkg -i postern-next$which.deb failed: $(tail -n 5 "$work/upgrade.$k.log")"
		;;
	kill9)
		in_root systemctl kill -s KILL --kill-whom=main postern || true
		restarted() { [ "$(in_root systemctl show -P NRestarts postern)" != "$restarts" ] && active; }
		wait_for 60 restarted || true
		;;
	esac
	wait_for 60 active || true
	sleep 3
	kill -TERM "$load_pid" 2>/dev/null || true
	wait "$load_pid" || true
	load_pid=''
	result=$(cat "$work/load.$k.json")
	check_out=$(node "$here/packaging/testroot/smtp-load.mjs" check "$work/sink" "$work/acks.$k" 90) || true
	[ -n "$result" ] || result='{"connections":0,"refused":0,"failed":0,"rejected":0,"acknowledged":0,"greetingMaxMs":0,"greetingMedianMs":0,"errors":{"no result":1}}'
	[ -n "$check_out" ] || check_out='{"lost":-1}'
	local after_pid
	after_pid=$(main_pid)
	load_line "$result" "$check_out" "$mode" "$event" | tee -a "$work/measures"
	M_REFUSED=$(node -p "($result).refused")
	M_FAILED=$(node -p "($result).failed + ($result).rejected")
	M_LOST=$(node -p "($check_out).lost")
	M_CONN=$(node -p "($result).connections")
	M_PIDS="$before_pid -> $after_pid"
}

# Without the socket unit: the service as it was before it (no Requires=postern.socket),
# the socket unit masked; the daemon binds listen.smtp itself.
stage "2. restarts under load, without the socket unit (the daemon binds)"
in_root systemctl stop postern.socket postern || true
in_root sh -c "sed -e '/^Requires=postern.socket/d' -e 's/^After=\(.*\) postern.socket/After=\1/' -e '/^Also=/d' /usr/lib/systemd/system/postern.service >/etc/systemd/system/postern.service" || true
in_root systemctl mask postern.socket >/dev/null || true
in_root systemctl daemon-reload || true
check "without the socket unit: systemctl start postern" 0 SILENT systemctl start postern
check "  ... postern.socket masked and inactive" 3 '^inactive$' systemctl is-active postern.socket
for event in restart reload kill9 upgrade; do
	measure before "$event"
	verdict "without the socket unit, $event under load: no acknowledged message lost ($M_CONN connections, $M_REFUSED refused)" "$([ "$M_LOST" = 0 ] && echo yes || echo no)" "$(tail -n 1 "$work/measures")"
done

stage "2. restarts under load, with the socket unit"
in_root systemctl stop postern || true
in_root rm -f /etc/systemd/system/postern.service
in_root systemctl unmask postern.socket >/dev/null || true
in_root systemctl daemon-reload || true
check "with the socket unit: systemctl start postern.socket postern" 0 SILENT systemctl start postern.socket postern
for event in restart reload kill9 upgrade; do
	measure after "$event"
	# kill -9 cuts the sessions the killed daemon was in (at most one per load session):
	# those messages were never acknowledged; no connection may be refused or lost.
	cut=0
	[ "$event" = kill9 ] && cut=$SESSIONS
	verdict "with the socket unit, $event under load: 0 refused, 0 lost, $([ "$cut" = 0 ] && echo "0 failed" || echo "at most $cut sessions cut by the kill ($M_FAILED)") of $M_CONN connections (daemon $M_PIDS)" \
		"$([ "$M_REFUSED" = 0 ] && [ "$M_FAILED" -le "$cut" ] && [ "$M_LOST" = 0 ] && [ "$M_CONN" -gt 0 ] && echo yes || echo no)" \
		"$(tail -n 1 "$work/measures"; droot_journal postern 15)"
done

# --- 3. started on demand, gone when idle ---------------------------------------------
stage "3. started on demand (postern.socket, postern-maildrop.path), gone when idle (daemon.idle_exit)"
# The daemon's resident memory (the container may have no memory accounting for MemoryCurrent).
rss_kb() { in_root awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" || echo 0; }
mem_up=$(rss_kb "$(main_pid)")
in_root sh -c 'printf "\n[daemon]\nidle_exit = \"3s\"\n" >>/etc/postern/postern.toml'
check "systemctl enable --now postern-maildrop.path" 0 '' systemctl enable --now postern-maildrop.path
check "systemctl restart postern (daemon.idle_exit = \"3s\")" 0 SILENT systemctl restart postern
inactive() { [ "$(in_root systemctl is-active postern)" = inactive ]; }
postern_procs() { in_root sh -c 'for p in /proc/[0-9]*; do [ "$(stat -c %U "$p" 2>/dev/null)" = postern ] && echo "${p#/proc/}"; done; true'; }
wait_for 30 inactive || true
check "idle: the daemon exited by itself" 3 '^inactive$' systemctl is-active postern
check "  ... saying so in the journal" 0 'postern: idle for [0-9]+ s \(daemon\.idle_exit\)' journalctl -u postern --no-pager -o cat
check "  ... postern.socket still listens" 0 '^active$' systemctl is-active postern.socket
procs=$(postern_procs)
verdict "  ... no process of postern's is left" "$([ -z "$procs" ] && echo yes || echo no)" "$procs"
printf 'measure: idle memory: %s MB resident while running (after the load), %s idle\n' "$(( ${mem_up:-0} / 1024 ))" "$([ -z "$procs" ] && echo '0 MB (no process)' || echo "processes $procs")" | tee -a "$work/measures"
# The first message after idle over SMTP: the start is in its latency.
sent_at() { node -e 'const fs = require("node:fs"), p = require("node:path"); const [d, id] = process.argv.slice(1);
  for (const f of fs.readdirSync(d)) if (!f.startsWith(".") && fs.readFileSync(p.join(d, f), "utf8").includes(id)) process.exit(0); process.exit(1);' "$work/sink" "$1"; }
t=$(date +%s%N)
node "$here/packaging/testroot/smtp-load.mjs" load "$smtp_port" "$work/acks.idle" 1 60 1 >"$work/load.idle.json" 2>/dev/null || true
t_ack=$(date +%s%N)
id=$(head -n 1 "$work/acks.idle" 2>/dev/null || true)
wait_for 60 sent_at "${id:-none}" || true
t_sink=$(date +%s%N)
verdict "the first SMTP message after idle is accepted and relayed (the daemon started by the socket)" "$([ -n "$id" ] && sent_at "$id" && echo yes || echo no)" "$(cat "$work/load.idle.json")"
printf 'measure: first SMTP message after idle: greeting %s ms, accepted after %s ms, at the sink after %s ms\n' \
	"$(node -p "($(cat "$work/load.idle.json")).greetingMaxMs" 2>/dev/null || echo '?')" "$(( (t_ack - t) / 1000000 ))" "$(( (t_sink - t) / 1000000 ))" | tee -a "$work/measures"
wait_for 30 inactive || true
check "idle again: inactive" 3 '^inactive$' systemctl is-active postern
# The first sendmail message after idle: postern-maildrop.path starts the daemon.
t=$(date +%s%N)
printf '%s' "$(message ondemand@example.org)" | droot_exec root /usr/sbin/sendmail -t
t_ack=$(date +%s%N)
# grep -r on the folder: tens of thousands of files from the load, too many for one argument list.
by_sendmail() { grep -rlq --include='[0-9]*.eml' '^X-Sink-Rcpt-To: ondemand@example\.org$' "$work/sink" 2>/dev/null; }
wait_for 60 by_sendmail || true
t_sink=$(date +%s%N)
verdict "the first sendmail message after idle is relayed (postern-maildrop.path started the daemon)" "$(by_sendmail && echo yes || echo no)" \
	"$(in_root systemctl status --no-pager -n 0 postern-maildrop.path postern; in_root ls -la /var/spool/postern-maildrop; droot_journal postern 12)"
printf 'measure: first sendmail message after idle: sendmail returned after %s ms, at the sink after %s ms\n' \
	"$(( (t_ack - t) / 1000000 ))" "$(( (t_sink - t) / 1000000 ))" | tee -a "$work/measures"
cat "$work/measures" >&2

droot_poweroff
stage "done: $n checks, $fails failed"
[ "$fails" -eq 0 ]
