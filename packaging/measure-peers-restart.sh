#!/bin/bash
# packaging/measure-peers-restart.sh: Exim's and Postfix's restarts under the load that
# measured postern's (issue 21, item 2), for the README's comparison. A throwaway Debian
# root per MTA (packaging/testroot/lib.sh) with Debian's exim4-daemon-light (a satellite,
# update-exim4.conf) or postfix (relayhost), listening on a free port of the host's
# loopback and relaying to packaging/testroot/sink.mjs there, is booted with
# systemd-nspawn; packaging/testroot/smtp-load.mjs runs 20 sessions, one message per
# connection, through `systemctl restart` and `systemctl reload` of the MTA. One
# "measure:" line each: connections, refused, failed, rejected, acknowledged, lost (an
# acknowledged message not at the sink within 3 minutes), the longest wait for a greeting.
# A measurement, not a test: not in npm test.
#   packaging/measure-peers-restart.sh [exim] [postfix]     (root; needs debootstrap,
#   systemd-nspawn and the Debian archive, which apt-get reaches in the root)
# Exit: 0 measured, 1 a step failed, 2 cannot run here, 75 the archive cannot be reached.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "measure-peers: $*" >&2; }
# shellcheck source=packaging/testroot/lib.sh
. "$here/packaging/testroot/lib.sh"
# shellcheck source=packaging/testroot/tap.sh
. "$here/packaging/testroot/tap.sh"
tap_preflight POSTERN_MEASURE_NS -- "$@"
DROOT_ENV='DEBIAN_FRONTEND=noninteractive'
SESSIONS=${POSTERN_LOAD_SESSIONS:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/postern-peers.XXXXXX")
sink_pid=''
load_pid=''
cleanup() {
	trap - EXIT INT TERM
	set +e
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
	droot_cleanup
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
in_root() { droot_exec root "$@" 2>/dev/null </dev/null; }
free_port() { node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })"; }

status=0
droot_cache || status=$?
[ "$status" -eq 0 ] || exit "$status"
mkdir "$work/sink"
# On an address Exim does not take for itself (127.0.0.1 is one of its interfaces: "remote
# host address is the local host"), as packaging/test-debian-migrate.sh does.
sink_addr=127.0.0.3
node "$here/packaging/testroot/sink.mjs" "$work/sink" "$sink_addr" >"$work/sink.out" 2>&1 &
sink_pid=$!
sink_up() { grep -q '^sink ' "$work/sink.out"; }
wait_for 20 sink_up || { say "the sink did not start: $(cat "$work/sink.out")"; exit 1; }
sink_port=$(awk '/^sink /{ print $3 }' "$work/sink.out")

# setup_mta MTA PORT: the package, set up to listen on 127.0.0.1:PORT and relay to the sink.
setup_mta() {
	local mta=$1 port=$2 pkg=exim4-daemon-light
	[ "$mta" = postfix ] && pkg=postfix
	# procps: exim4.service reloads with /bin/kill, which a minimal Debian 13 lacks (203/EXEC).
	droot_chroot root apt-get update -qq >"$work/apt.log" 2>&1 || { say "apt-get update failed: $(tail -n 3 "$work/apt.log")"; return 75; }
	droot_chroot root apt-get install -y -q "$pkg" procps >>"$work/apt.log" 2>&1 || { say "apt-get install $pkg failed: $(tail -n 5 "$work/apt.log")"; return 1; }
	if [ "$mta" = exim ]; then
		cat >"$DROOT/etc/exim4/update-exim4.conf.conf" <<-EOF
			dc_eximconfig_configtype='satellite'
			dc_other_hostnames=''
			dc_local_interfaces='127.0.0.1.$port'
			dc_readhost='example.net'
			dc_relay_domains=''
			dc_minimaldns='false'
			dc_relay_nets=''
			dc_smarthost='$sink_addr::$sink_port'
			CFILEMODE='644'
			dc_use_split_config='false'
			dc_hide_mailname='true'
			dc_mailname_in_oh='true'
			dc_localdelivery='mail_spool'
		EOF
		droot_chroot root update-exim4.conf
	else
		droot_chroot root postconf -e "relayhost = [$sink_addr]:$sink_port" 'mynetworks = 127.0.0.0/8' 'inet_interfaces = 127.0.0.1' \
			'mydestination = localhost' 'myhostname = satellite.example.net' 'smtp_tls_security_level = none'
		sed -i "s/^smtp\( \+inet \)/127.0.0.1:$port\1/" "$DROOT/etc/postfix/master.cf"
		grep -q "^127.0.0.1:$port " "$DROOT/etc/postfix/master.cf" || { say "master.cf has no smtp inet line to move"; return 1; }
	fi
	say "$mta: $(droot_chroot root dpkg-query -W -f '${Package} ${Version}' "$pkg")"
}

# measure MTA UNIT EVENT PORT: the load through `systemctl EVENT UNIT`; one "measure:" line.
measure() {
	local mta=$1 unit=$2 event=$3 port=$4 k="$1-$3" result check
	# No cap on the count: refused connections come back at once, and the load must last
	# until the MTA is back (it is stopped 3 s after `is-active`, as postern's was).
	: >"$work/load.$k.err"
	node "$here/packaging/testroot/smtp-load.mjs" load "$port" "$work/acks.$k" "$SESSIONS" 120 100000000 >"$work/load.$k.json" 2>"$work/load.$k.err" &
	load_pid=$!
	load_up() { grep -q 'load started' "$work/load.$k.err"; }
	wait_for 20 load_up || true
	sleep 3
	droot_exec root systemctl "$event" "$unit" </dev/null >"$work/event.$k.log" 2>&1 || say "systemctl $event $unit failed: $(cat "$work/event.$k.log"; droot_journal "$unit" 10)"
	active() { [ "$(in_root systemctl is-active "$unit")" = active ]; }
	wait_for 60 active || true
	sleep 3
	kill -TERM "$load_pid" 2>/dev/null || true
	wait "$load_pid" || true
	load_pid=''
	result=$(cat "$work/load.$k.json")
	check=$(node "$here/packaging/testroot/smtp-load.mjs" check "$work/sink" "$work/acks.$k" 180) || true
	load_line "$result" "$check" "$mta" systemctl "$event" "$unit"
}

mtas=("$@")
[ "${#mtas[@]}" -gt 0 ] || mtas=(exim postfix)
for m in "${mtas[@]}"; do
	unit=exim4
	[ "$m" = postfix ] && unit=postfix
	port=$(free_port)
	droot_new "$work/root-$m"
	status=0
	setup_mta "$m" "$port" || status=$?
	[ "$status" -eq 0 ] || exit "$status"
	droot_boot || exit 1
	up() { [ "$(in_root systemctl is-active "$unit")" = active ] && node -e "require('node:net').connect($port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"; }
	wait_for 60 up || { say "$unit is not listening on 127.0.0.1:$port: $(droot_journal "$unit" 20)"; exit 1; }
	for event in restart reload; do measure "$m" "$unit" "$event" "$port"; done
	droot_poweroff
	droot_cleanup
done
