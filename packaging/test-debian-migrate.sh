#!/usr/bin/env bash
# packaging/test-debian-migrate.sh: the switch from Debian's Exim to the postern package,
# as an administrator makes it, in a Debian 13 root (packaging/testroot/lib.sh):
#   1. Exim installed with apt and configured by debconf as a satellite (exim4-config's
#      answers preseeded: the smarthost a sink on the host's loopback, readhost
#      example.org, hide_mailname), passwd.client and email-addresses as admins write them;
#   2. a queue of Exim messages (the sink down): cron's mail to root, mailx, PHP's
#      `sendmail -t -i` as www-data, local SMTP (-bs), and one the sink will hold (451);
#   3. what Exim would have sent: a copy of its spool kept, `exim4 -qff` with the sink up
#      (sink A), the spool put back as it was;
#   4. the root booted (Exim's unit disabled: the swap is apt's), `apt-get install
#      ./postern_*.deb` under DEBIAN_FRONTEND=noninteractive: postinst imports Exim's
#      configuration and queue, postern delivers to the same sink (sink B); A and B
#      compared message by message: envelope sender, recipients, headers;
#   5. exim, exim4, exiqgrep and exiqsumm (left by exim4-base) against postern's queue;
#   6. an upgrade to the next version of the .deb (a new default configuration shipped)
#      under DEBIAN_FRONTEND=noninteractive with stdin closed: no prompt, the imported
#      configuration unchanged;
#   7. purge, then a first install with postern/smarthost preseeded in debconf.
# Prints "ok N - ..." / "not ok N - ..." (TAP) and a side-by-side of what Exim and
# postern sent. Root only; needs debootstrap, systemd-nspawn; reaches the Debian archive
# (the mirror of the host's apt sources) for Exim's packages (kept in
# /var/cache/postern-test/migrate-debs for the next run).
# Exit: 0 all passed, 1 a check failed, 2 cannot run here, 75 the archive cannot be reached.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '%s\n' "test-debian-migrate: $*" >&2; }
# shellcheck source=packaging/testroot/lib.sh
. "$here/packaging/testroot/lib.sh"
# shellcheck source=packaging/testroot/tap.sh
. "$here/packaging/testroot/tap.sh"
# Mounts and the host name (Exim's primary_hostname is uname's) in namespaces of their own.
tap_preflight POSTERN_TEST_MIGRATE_NS --uts -- "$@"
hostname web1
DROOT_HOSTNAME=web1
TAP_DETAIL_LINES=40

t0=$SECONDS
stage() { say "[$((SECONDS - t0)) s] $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/postern-migrate.XXXXXX")
sink_pid=''
tested=''
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	set +e
	if [ -n "$tested" ] && [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then status=1; fi
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
	# POSTERN_TEST_KEEP=DIR: what Exim (exim/) and postern (postern/) sent, kept for a look.
	if [ -n "${POSTERN_TEST_KEEP:-}" ]; then
		mkdir -p "$POSTERN_TEST_KEEP"
		[ -d "$work/sinkA" ] && cp -r "$work/sinkA" "$POSTERN_TEST_KEEP/exim"
		[ -d "$work/sinkB" ] && cp -r "$work/sinkB" "$POSTERN_TEST_KEEP/postern"
	fi
	tap_stop_build
	[ -n "$DROOT" ] && mountpoint -q "$DROOT/var/cache/apt/archives" && umount "$DROOT/var/cache/apt/archives"
	droot_cleanup
	rm -rf --one-file-system "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PHASE=chroot
run_as() {
	if [ "$PHASE" = chroot ]; then droot_chroot "$@"; else droot_exec "$@"; fi
}
# The sink on a loopback address Exim does not take for itself (127.0.0.1 is one of its
# interfaces: "remote host address is the local host"), in DIR; sink_port is kept.
SINK_ADDR=127.0.0.3
sink_start() {
	mkdir -p "$1"
	: >"$work/sink.out"
	node "$here/packaging/testroot/sink.mjs" "$1" "$SINK_ADDR" "${sink_port:-0}" >"$work/sink.out" 2>&1 &
	sink_pid=$!
	wait_for 20 grep -q '^sink ' "$work/sink.out" || { say "the sink did not start: $(cat "$work/sink.out")"; exit 1; }
	sink_port=$(awk '/^sink /{ print $3 }' "$work/sink.out")
}
sink_stop() {
	[ -n "$sink_pid" ] || return 0
	kill "$sink_pid" 2>/dev/null || true
	wait "$sink_pid" 2>/dev/null || true
	sink_pid=''
}
count_eml() { local f c=0; for f in "$1"/*.eml; do [ -f "$f" ] && c=$((c + 1)); done; echo "$c"; }
has_eml() { [ "$(count_eml "$1")" -ge "$2" ]; }
free_port() { node -e "const s = require('node:net').createServer().listen(0, '$1', () => { console.log(s.address().port); s.close(); })"; }

# --- the package and the root -------------------------------------------------------------
stage "building the package, and the $DROOT_SUITE root meanwhile"
tap_package_start "$work"
droot_new "$work/t"
droot_chroot_mount
# Exim's packages are kept between runs; never started in the chroot (policy-rc.d).
mkdir -p "$DROOT_CACHE_DIR/migrate-debs/partial"
mount --bind "$DROOT_CACHE_DIR/migrate-debs" "$DROOT/var/cache/apt/archives"
printf '#!/bin/sh\nexit 101\n' >"$DROOT/usr/sbin/policy-rc.d"
chmod 0755 "$DROOT/usr/sbin/policy-rc.d"
echo web1 >"$DROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.org web1\n' >"$DROOT/etc/hosts"
sink_port=$(free_port "$SINK_ADDR")
listen_port=$(free_port 127.0.0.1)

# --- 1. Exim, configured by debconf as a satellite ------------------------------------------
stage "installing Exim (exim4-daemon-light, bsd-mailx), configured by debconf as a satellite"
cat >"$DROOT/tmp/exim.preseed" <<EOF
exim4-config exim4/dc_eximconfig_configtype select mail sent by smarthost; no local mail
exim4-config exim4/dc_smarthost string $SINK_ADDR::$sink_port
exim4-config exim4/dc_readhost string example.org
exim4-config exim4/hide_mailname boolean true
exim4-config exim4/mailname string web1.example.org
exim4-config exim4/dc_local_interfaces string 127.0.0.1.$listen_port
exim4-config exim4/dc_other_hostnames string
exim4-config exim4/dc_relay_nets string
exim4-config exim4/dc_minimaldns boolean false
exim4-config exim4/use_split_config boolean false
exim4-config exim4/dc_postmaster string
EOF
droot_chroot root debconf-set-selections /tmp/exim.preseed
DROOT_ENV="DEBIAN_FRONTEND=noninteractive"
exim_install() { droot_chroot root apt-get install -y --no-install-recommends exim4-daemon-light bsd-mailx >"$work/exim-apt.log" 2>&1; }
if ! exim_install; then
	if grep -Eqi 'temporary failure|could not resolve|unable to connect|connection (refused|timed out)|network is unreachable' "$work/exim-apt.log"; then
		say "SKIP: the Debian archive cannot be reached for Exim's packages; nothing was tested"
		tail -n 5 "$work/exim-apt.log" >&2
		exit 75
	fi
	droot_chroot root apt-get update -qq >/dev/null 2>&1 || true
	exim_install || { say "apt-get install exim4-daemon-light failed:"; tail -n 20 "$work/exim-apt.log" >&2; exit 1; }
fi
tested=yes
# What an administrator adds: the hub's login (Exim sends it only over TLS: the sink has
# none) and a sender address for www-data.
printf '%s:web1:s3cret\n' "$SINK_ADDR" >>"$DROOT/etc/exim4/passwd.client"
printf 'www-data: webmaster@example.org\n' >>"$DROOT/etc/email-addresses"
check "Exim installed, satellite by debconf" 0 "^dc_eximconfig_configtype='satellite'" root cat /etc/exim4/update-exim4.conf.conf
holds "  ... smarthost the sink, readhost example.org, hide_mailname" "^dc_smarthost='$SINK_ADDR::$sink_port'" "^dc_readhost='example.org'" "^dc_hide_mailname='true'"

# --- 2. Exim's queue: the sink is down ---------------------------------------------------------
stage "queueing mail with Exim (the sink down)"
INPUT=$(printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> run-parts --report /etc/cron.daily\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\nlogrotate: ran\n') \
	check "cron's mail to root (sendmail -FCronDaemon -i -B8BITMIME -oem root)" 0 '' root /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem root
INPUT=$(printf 'the nightly report\n') check "mailx as www-data (mail -s ... root)" 0 '' www-data mail -s "mailx: nightly report" root
INPUT=$(printf 'To: customer@example.net\nSubject: PHP: your order\nX-PHP-Originating-Script: 33:shop.php\nContent-type: text/plain; charset=UTF-8\n\nThank you.\n') \
	check "PHP's mail() as www-data (sendmail -t -i)" 0 '' www-data /usr/sbin/sendmail -t -i
INPUT=$(printf 'HELO web1\r\nMAIL FROM:<app@example.org>\r\nRCPT TO:<ops@example.net>\r\nDATA\r\nFrom: app@example.org\r\nTo: ops@example.net\r\nSubject: SMTP: disk almost full\r\n\r\n91%% used\r\n.\r\nQUIT\r')$'\n' \
	check "local SMTP as root (sendmail -bs)" 0 '^250 OK id=' root /usr/sbin/sendmail -bs
INPUT=$(printf 'To: hold-1@example.net\nSubject: held by the hub\n\nstays queued\n') check "a message the hub will hold (451)" 0 '' root /usr/sbin/sendmail -t -i
# Exim's deliveries (one process a message, in the background) are over when no exim4
# process runs in the root.
exim_deferred() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$DROOT" ] && [ "$(cat "$p/comm" 2>/dev/null)" = exim4 ] && return 1
	done
	[ "$(droot_chroot root exim4 -bpc 2>/dev/null)" = 5 ]
}
wait_for 60 exim_deferred || true
check "Exim's queue: 5 messages, deferred (the sink down)" 0 '^5$' root exim4 -bpc
exim_bp=$(droot_chroot root exim4 -bp 2>&1)
printf '%s\n' "$exim_bp" | sed 's/^/# exim4 -bp: /'
exim_ids=$(awk '/^ *[0-9]+[mhd] /{ print $3 }' <<<"$exim_bp" | sort)

# --- 3. what Exim would have sent --------------------------------------------------------------
stage "what Exim would have sent: exim4 -qff with the sink up (a copy of its spool kept)"
cp -a "$DROOT/var/spool/exim4" "$work/exim-spool"
sink_start "$work/sinkA"
check "exim4 -qff" 0 '' root exim4 -qff
wait_for 30 has_eml "$work/sinkA" 4 || true
sink_stop
verdict "Exim delivered 4 messages to the sink (the held one stays)" "$([ "$(count_eml "$work/sinkA")" = 4 ] && echo yes || echo no)" "$(ls "$work/sinkA")"
rm -rf "$DROOT/var/spool/exim4"
cp -a "$work/exim-spool" "$DROOT/var/spool/exim4"
check "Exim's queue put back as it was: 5 messages" 0 '^5$' root exim4 -bpc

# --- 4. the package installed with apt --------------------------------------------------------
tap_package_wait "$work"
deb=$TAP_DEB
stage "built ${deb##*/}"
cp "$deb" "$DROOT/root/"
chmod 0644 "$DROOT/root/${deb##*/}"
# The next version: the same package, version +1, a new default configuration shipped.
next=$work/next
dpkg-deb -R "$deb" "$next"
version=$(sed -n 's/^Version: //p' "$next/DEBIAN/control")
next_version=${version%-*}-$((${version##*-} + 1))
sed -i "s/^Version: .*/Version: $next_version/" "$next/DEBIAN/control"
printf '\n# A new default of the next version.\n' >>"$next/usr/share/postern/postern.toml"
next_deb=$DROOT/root/postern_${next_version}_next.deb
dpkg-deb --root-owner-group -Zgzip -b "$next" "$next_deb" >/dev/null
chmod 0644 "$next_deb"

rm -f "$DROOT/usr/sbin/policy-rc.d"
droot_chroot root systemctl disable exim4.service >/dev/null 2>&1 || true
# postern.socket listens where Exim did (the host's port 25 may be another MTA's or test's).
droot_socket_listen "127.0.0.1:$listen_port"
stage "booting the root (host name web1)"
PHASE=booted
droot_chroot_umount
if ! droot_boot; then
	verdict "the root boots (systemd-nspawn -b)" no "$(tail -n 30 "$DROOT_WORK/console.log")"
	exit 1
fi
sink_start "$work/sinkB"
stage "apt-get install ./${deb##*/} (DEBIAN_FRONTEND=noninteractive)"
check "apt-get install ./${deb##*/}: Exim swapped out" 0 'Removing exim4-daemon-light' root apt-get install -y "/root/${deb##*/}"
apt_out=$LAST
holds "  ... postinst imported Exim's configuration" "dc_smarthost='$SINK_ADDR::$sink_port': smarthost.hosts = \[\"$SINK_ADDR:$sink_port\"\]" 'write /etc/postern/postern.toml'
holds "  ... and Exim's queue: 5 messages" '^imported 5 messages from Exim'
lacks "  ... no debconf or dpkg prompt" 'Configuration file|conffile|unable to initialize frontend'
for id in $exim_ids; do grep -q -- "^$id " <<<"$apt_out" || verdict "  ... the import names $id" no "$apt_out"; done
check "exim4-base (exiqgrep, exiqsumm) stays installed" 0 '^install ok installed$' root dpkg-query -W -f '${Status}\n' exim4-base
check "debconf's postern/smarthost is Exim's answer" 0 "smarthost: $SINK_ADDR::$sink_port" root debconf-show postern
check "/etc/postern/postern.toml is no conffile" 1 '' root grep -rx /etc/postern/postern.toml /var/lib/dpkg/info/postern.conffiles
conf_before=$(sha256sum "$DROOT/etc/postern/postern.toml" | cut -d' ' -f1)
unit_active() { [ "$(run_as root systemctl is-active postern 2>/dev/null)" = active ]; }
wait_for 30 unit_active || true
check "postern.service active" 0 '^active$' root systemctl is-active postern
wait_for 60 has_eml "$work/sinkB" 4 || true
verdict "postern delivered Exim's 4 messages to the sink" "$([ "$(count_eml "$work/sinkB")" = 4 ] && echo yes || echo no)" "$(ls "$work/sinkB"; droot_journal postern 20)"

# --- A against B -----------------------------------------------------------------------------
stage "what Exim sent (A) against what postern sent (B)"
compare=$(node - "$work/sinkA" "$work/sinkB" <<'NODE'
const { readdirSync, readFileSync } = require('node:fs');
const [a, b] = process.argv.slice(2);
const load = (dir) => readdirSync(dir).filter((f) => f.endsWith('.eml')).map((f) => {
  const text = readFileSync(`${dir}/${f}`, 'latin1').replace(/\r\n/g, '\n');
  const [head, ...body] = text.split('\n\n');
  const fields = head.replace(/\n[ \t]+/g, ' ').split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
  const get = (n) => fields.filter(([k]) => k.toLowerCase() === n.toLowerCase()).map(([, v]) => v);
  return { fields: fields.filter(([k]) => !k.startsWith('X-Sink-')), from: get('X-Sink-Mail-From')[0], to: get('X-Sink-Rcpt-To')[0], subject: get('Subject')[0], body: body.join('\n\n') };
});
const A = load(a), B = load(b);
let bad = 0;
for (const m of A) {
  const p = B.find((x) => x.subject === m.subject);
  console.log(`message "${m.subject}"`);
  console.log(`  envelope     Exim:    ${m.from} -> ${m.to}`);
  if (!p) { console.log('  NOT SENT by postern'); bad++; continue; }
  console.log(`  envelope     postern: ${p.from} -> ${p.to}`);
  if (p.from !== m.from || p.to !== m.to) { console.log('  ENVELOPE DIFFERS'); bad++; }
  // On purpose (README, "Side by side with Debian's Exim"): postern's hide_hostname also
  // rewrites To:/Cc:/Bcc: (Exim's hide_mailname only From:/Reply-To:/Sender:).
  const purpose = (k, v) => (/^(to|cc|bcc)$/i.test(k) ? v.replace(/@web1\.example\.org\b/gi, '@example.org') : v);
  const show = (fs, norm) => fs.map(([k, v]) => `${k}: ${norm ? purpose(k, v) : v}`);
  const ea = show(m.fields, true), pa = show(p.fields, false);
  for (const h of ['From', 'To', 'Cc', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type', 'Received']) {
    const x = m.fields.filter(([k]) => k.toLowerCase() === h.toLowerCase()).map(([, v]) => v).join(' | ');
    const y = p.fields.filter(([k]) => k.toLowerCase() === h.toLowerCase()).map(([, v]) => v).join(' | ');
    const meant = x !== y && purpose(h, x) === y;
    if (x || y) console.log(`  ${h.padEnd(12)} ${x === y ? 'same' : meant ? 'on purpose' : 'DIFFERS'}: ${x}${x === y ? '' : `  <>  postern: ${y}`}`);
    if (x !== y && !meant) bad++;
  }
  const onlyA = ea.filter((l) => !pa.includes(l)), onlyB = pa.filter((l) => !ea.includes(l));
  for (const l of onlyA) console.log(`  only Exim's:    ${l}`);
  for (const l of onlyB) console.log(`  only postern's: ${l}`);
  if (onlyA.length || onlyB.length) bad++;
  if (m.body !== p.body) { console.log('  BODY DIFFERS'); bad++; } else console.log(`  body         same (${m.body.length} bytes)`);
  console.log(`  every other header line: ${onlyA.length || onlyB.length ? 'DIFFERS' : 'same'} (${m.fields.length} lines)`);
}
if (B.length !== A.length) { console.log(`postern sent ${B.length} messages, Exim ${A.length}`); bad++; }
console.log(bad === 0 ? 'SAME' : `DIFFERENT (${bad})`);
NODE
) || true
printf '%s\n' "$compare" | sed 's/^/# /'
verdict "the sink got from postern exactly what Exim sent it: envelopes, headers (To:/Cc: rewritten on purpose), bodies" "$(tail -n 1 <<<"$compare" | grep -qx SAME && echo yes || echo no)"

# --- 5. exim, exim4 and Exim's helper scripts against postern's queue ---------------------------
stage "exim, exim4, exiqgrep, exiqsumm"
held=$(awk '/^ *[0-9]+[mhd] /{ id = $3 } /hold-1@example\.net/{ print id; exit }' <<<"$exim_bp")
check "/usr/sbin/exim4 is postern's (update-alternatives)" 0 '^/usr/sbin/postern$' root readlink -f /usr/sbin/exim4
check "/usr/sbin/exim is postern's" 0 '^/usr/sbin/postern$' root readlink -f /usr/sbin/exim
check "exim4 -bpc (as postern): the held message" 0 '^1$' postern exim4 -bpc
check "exim -bp (as postern): Exim's listing" 0 "^ *[0-9]+[mhd] +[0-9.]+[KM]? ${held:-none} <root@" postern exim -bp
check "exim -Mvb ID (as postern)" 0 'stays queued' postern exim -Mvb "${held:-none}"
check "exiqgrep -r hold (runs exim4 -bpu)" 0 "${held:-none} <root@" postern exiqgrep -r hold
holds "  ... with its recipient" 'hold-1@example.net'
check "exiqgrep -i -r hold: the ID" 0 "^${held:-none}$" postern exiqgrep -i -r hold
check "exiqgrep -c -r .: the count" 0 '^1 matches out of 1 messages$' postern exiqgrep -c -r .
check "exim -bp | exiqsumm" 0 '^ +1 +[0-9KM]+ +[0-9]+[mhd] +[0-9]+[mhd] +example\.net$' postern sh -c 'exim -bp | exiqsumm'

# --- 6. the next version, no prompt -------------------------------------------------------------
stage "upgrade to $next_version (DEBIAN_FRONTEND=noninteractive, stdin closed)"
check "apt-get install ./postern_${next_version}: upgraded" 0 "Unpacking postern \($next_version\) over \($version\)" root apt-get install -y "/root/${next_deb##*/}"
lacks "  ... no conffile prompt" 'Configuration file|conffile|end of file on stdin'
check "dpkg: $next_version installed ok" 0 "^install ok installed $next_version\$" root dpkg-query -W -f '${Status} ${Version}\n' postern
verdict "  ... /etc/postern/postern.toml as the import wrote it" "$([ "$(sha256sum "$DROOT/etc/postern/postern.toml" | cut -d' ' -f1)" = "$conf_before" ] && echo yes || echo no)" "$(cat "$DROOT/etc/postern/postern.toml")"
wait_for 30 unit_active || true
check "postern.service active after the upgrade" 0 '^active$' root systemctl is-active postern
check "the held message still queued" 0 '^1$' postern exim4 -bpc

# --- 7. purge, then a first install preseeded --------------------------------------------------
stage "purge; a first install with postern/smarthost preseeded"
check "apt-get purge postern" 0 '' root apt-get purge -y postern
check "  ... /usr/sbin/exim4 gone with it" 1 '' root test -e /usr/sbin/exim4
check "  ... debconf's answers gone" 0 '' root sh -c '! debconf-show postern 2>/dev/null | grep -q smarthost'
INPUT='postern postern/smarthost string hub.example.net::587
' check "debconf-set-selections postern/smarthost hub.example.net::587" 0 '' root debconf-set-selections
check "apt-get install ./${next_deb##*/} (preseeded)" 0 '' root apt-get install -y "/root/${next_deb##*/}"
check "  ... the preseeded smarthost, over Exim's" 0 '^hosts = \["hub\.example\.net:587"\]$' root grep -F 'hosts = ' /etc/postern/postern.toml
check "  ... Exim's readhost kept" 0 '^readhost = "example\.org"$' root grep -F 'readhost = ' /etc/postern/postern.toml

droot_poweroff
stage "done: $n checks, $fails failed"
[ "$fails" -eq 0 ]
