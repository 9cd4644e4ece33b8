# packaging/testroot/lib.sh: a throwaway Debian root for tests of the package, as
# functions for bash (sourced by packaging/test-debian.sh; meant for other tests of the
# installed package too: socket activation, restarts under load). Root only.
#
#   droot_cache          makes or reuses the cached root (debootstrap), sets DROOT_CACHED;
#                        returns 75 when the archive cannot be reached
#   droot_new DIR        a throwaway copy of it in DIR/root (an overlay, else a copy), sets DROOT
#   droot_chroot USER CMD...   runs CMD in the root as USER (chroot; /proc, /sys, /dev mounted)
#   droot_boot           boots the root with systemd-nspawn (sharing the host's network),
#                        sets DROOT_PID1 once its systemd says running or degraded
#   droot_exec USER CMD...     runs CMD in the booted root as USER (nsenter)
#   droot_journal UNIT [LINES] the unit's last journal lines in the booted root
#   droot_poweroff       shuts the booted root down (killed after a timeout)
#   droot_cleanup        all of it undone: container, mounts, the throwaway folder
#
# Settings (environment): DROOT_SUITE (trixie), DROOT_CACHE_DIR (/var/cache/postern-test),
# DROOT_MAX_AGE_DAYS (7: an older cache is rebuilt), DROOT_MIRROR (else the first
# non-security Debian source of the host's apt configuration), DROOT_PACKAGES (added to
# debootstrap's minbase), DROOT_NO_OVERLAY (set: copy the cached root, no overlay),
# DROOT_ENV (VAR=value words added to the environment of every droot_chroot and
# droot_exec command), DROOT_HOSTNAME (the booted root's host name; default: its
# machine name). Mounts are made in the caller's mount namespace: run the caller
# under `unshare --mount --propagation private` and they vanish with it, whatever
# happens (test-debian.sh does).

DROOT_SUITE=${DROOT_SUITE:-trixie}
DROOT_CACHE_DIR=${DROOT_CACHE_DIR:-/var/cache/postern-test}
DROOT_MAX_AGE_DAYS=${DROOT_MAX_AGE_DAYS:-7}
# Everything the package and the tests need, so installing the .deb needs no network:
# Debian's nodejs (the one the package must run on), a systemd to boot, the package's
# Depends and Recommends.
DROOT_PACKAGES=${DROOT_PACKAGES:-nodejs,systemd,systemd-sysv,dbus,ca-certificates,adduser,passwd,logrotate}
DROOT_CACHE_VERSION=1
DROOT=''
DROOT_CACHED=''
DROOT_WORK=''
DROOT_OVERLAY=''
DROOT_NSPAWN_PID=''
DROOT_PID1=''
DROOT_PATH=/usr/sbin:/usr/bin:/sbin:/bin

droot_say() { printf '%s\n' "test-debian: $*" >&2; }

# The Debian archive as this host's apt reaches it: DROOT_MIRROR, else the first URI of
# a deb source (deb822 .sources, then sources.list) that is not a security suite.
droot_mirror() {
	if [ -n "${DROOT_MIRROR:-}" ]; then
		printf '%s\n' "${DROOT_MIRROR%/}"
		return 0
	fi
	local uri=''
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
			{
				types = ""; suites = ""; uris = ""
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^Types:/) types = $i
					else if ($i ~ /^Suites:/) suites = $i
					else if ($i ~ /^URIs:/) uris = $i
				}
				if (types ~ /[ \t]deb([ \t]|$)/ && suites !~ /security/ && uris != "") {
					sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/)
					if (u[1] ~ /^(https?|file):/) { print u[1]; exit }
				}
			}' "$f")
		[ -n "$uri" ] && break
	done
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) !~ /security/ && $i ~ /^(https?|file):/) { print $i; exit }
			}' /etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		droot_say "no Debian mirror found in the host's apt sources: set DROOT_MIRROR"
		return 1
	fi
	printf '%s\n' "${uri%/}"
}

droot_cache_fresh() {
	[ -d "$DROOT_CACHED" ] && [ -f "$1" ] && [ -z "$(find "$1" -mtime +"$DROOT_MAX_AGE_DAYS")" ]
}

# The cached root for this suite, architecture and package list: made with debootstrap
# when missing or older than DROOT_MAX_AGE_DAYS (the .debs kept beside it, for the next
# rebuild), under an exclusive lock; then the lock is held shared (fd 8) for as long as
# the caller runs, so no rebuild replaces a root in use. Returns 75 when the archive
# cannot be reached, 1 on any other failure.
droot_cache() {
	local arch key mirror stamp new log status
	arch=$(dpkg --print-architecture)
	key=$(printf '%s\n' "$DROOT_CACHE_VERSION" "$DROOT_SUITE" "$arch" minbase "$DROOT_PACKAGES" | sha256sum | cut -c1-12)
	DROOT_CACHED=$DROOT_CACHE_DIR/$DROOT_SUITE-$arch-$key
	stamp=$DROOT_CACHED.stamp
	mkdir -p "$DROOT_CACHE_DIR/debs"
	exec 8>"$DROOT_CACHE_DIR/.lock"
	# Runs share the lock; a rebuild takes it alone, once the runs using the old root end.
	flock -s 8
	if ! droot_cache_fresh "$stamp"; then
		flock -u 8
		flock -x 8
	fi
	if droot_cache_fresh "$stamp"; then
		droot_say "cached root $DROOT_CACHED (made $(cut -d' ' -f1 "$stamp"))"
		flock -s 8
		return 0
	fi
	mirror=$(droot_mirror) || { flock -u 8; return 1; }
	droot_say "making the $DROOT_SUITE root with debootstrap from $mirror (minbase + $DROOT_PACKAGES)"
	new=$DROOT_CACHED.new
	log=$DROOT_CACHE_DIR/debootstrap.log
	rm -rf "$new"
	status=0
	debootstrap --variant=minbase --include="$DROOT_PACKAGES" --cache-dir="$DROOT_CACHE_DIR/debs" \
		"$DROOT_SUITE" "$new" "$mirror" >"$log" 2>&1 || status=$?
	if [ "$status" -ne 0 ]; then
		rm -rf "$new"
		tail -n 5 "$log" | sed 's/^/  debootstrap: /' >&2
		if ! grep -Eqi "couldn't download|failed getting release|couldn't find|unable to fetch|temporary failure|could not resolve|network is unreachable|connection refused|connection timed out|no route to host" "$log"; then
			droot_say "debootstrap failed (see $log)"
			flock -u 8
			return 1
		fi
		droot_say "the archive at $mirror cannot be reached (see $log)"
		if [ -d "$DROOT_CACHED" ] && [ -f "$stamp" ]; then
			droot_say "using the old cached root $DROOT_CACHED (made $(cut -d' ' -f1 "$stamp"))"
			flock -s 8
			return 0
		fi
		flock -u 8
		return 75
	fi
	# apt's archives are not kept; its lists are (debootstrap's), so a dependency the
	# package gains later is fetched from the host's mirror, the root's apt source.
	chroot "$new" apt-get clean
	printf 'deb %s %s main\n' "$mirror" "$DROOT_SUITE" >"$new/etc/apt/sources.list"
	rm -rf "$DROOT_CACHED"
	mv "$new" "$DROOT_CACHED"
	printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DROOT_PACKAGES" >"$stamp"
	droot_say "cached root $DROOT_CACHED made"
	# Nobody uses a root while this lock is held: other keys' stale roots go, and .debs
	# no rebuild has used for a month.
	find "$DROOT_CACHE_DIR" -maxdepth 1 -name '*.stamp' -mtime +"$DROOT_MAX_AGE_DAYS" | while read -r old; do
		rm -rf --one-file-system "${old%.stamp}" "$old"
	done
	find "$DROOT_CACHE_DIR/debs" -name '*.deb' -atime +30 -delete
	flock -s 8
}

# A throwaway root in DIR/root: an overlay on DIR (a tmpfs) over the cached root, or,
# where overlayfs is refused (some containers), a copy of it.
droot_new() {
	DROOT_WORK=$1
	mkdir -p "$DROOT_WORK"
	DROOT=$DROOT_WORK/root
	mkdir -p "$DROOT_WORK/ovl"
	if [ -z "${DROOT_NO_OVERLAY:-}" ] && mount -t tmpfs -o mode=0755 droot "$DROOT_WORK/ovl" 2>/dev/null &&
		mkdir -p "$DROOT_WORK/ovl/u" "$DROOT_WORK/ovl/w" "$DROOT" &&
		mount -t overlay droot -o "lowerdir=$DROOT_CACHED,upperdir=$DROOT_WORK/ovl/u,workdir=$DROOT_WORK/ovl/w" "$DROOT" 2>/dev/null; then
		DROOT_OVERLAY=yes
	else
		mountpoint -q "$DROOT_WORK/ovl" && umount "$DROOT_WORK/ovl"
		droot_say "copying the cached root (no overlay: refused here, or DROOT_NO_OVERLAY set)"
		rm -rf "$DROOT"
		cp -a "$DROOT_CACHED" "$DROOT"
	fi
}

# /proc, /sys, /dev and /run of the chroot (known by the mount on /proc, so a call in a
# subshell counts too).
droot_chroot_mount() {
	mountpoint -q "$DROOT/proc" && return 0
	mount -t proc proc "$DROOT/proc"
	mount -t sysfs sysfs "$DROOT/sys"
	mount --rbind /dev "$DROOT/dev"
	mount --make-rslave "$DROOT/dev"
	mount -t tmpfs -o mode=0755 run "$DROOT/run"
}

droot_chroot_umount() {
	local m
	for m in run dev sys proc; do
		mountpoint -q "$DROOT/$m" || continue
		umount -R "$DROOT/$m" 2>/dev/null || umount -lR "$DROOT/$m"
	done
}

# droot_chroot USER CMD...: CMD as USER in the root (not booted), with a clean environment.
droot_chroot() {
	local user=$1
	shift
	droot_chroot_mount
	chroot "$DROOT" /usr/sbin/runuser -u "$user" -- /usr/bin/env -i PATH="$DROOT_PATH" HOME=/root LANG=C.UTF-8 ${DROOT_ENV:-} "$@"
}

# The root booted: systemd-nspawn in the background (no machine registration, the
# caller's own cgroup, the host's network), its console in DROOT_WORK/console.log.
droot_boot() {
	local name=droot-$$ i p kids state
	droot_chroot_umount
	systemd-nspawn --quiet --register=no --keep-unit --console=read-only --resolv-conf=off --timezone=off \
		--link-journal=no --setenv=SYSTEMD_COLORS=0 -M "$name" ${DROOT_HOSTNAME:+--hostname="$DROOT_HOSTNAME"} -D "$DROOT" -b </dev/null >"$DROOT_WORK/console.log" 2>&1 &
	DROOT_NSPAWN_PID=$!
	DROOT_PID1=''
	for i in $(seq 1 300); do
		kill -0 "$DROOT_NSPAWN_PID" 2>/dev/null || { droot_say "systemd-nspawn exited:"; tail -n 20 "$DROOT_WORK/console.log" >&2; return 1; }
		# The container's systemd: systemd-nspawn's child, PID 1 in its own namespace.
		# (/proc/PID/task/*/children where the kernel has it, else every process).
		kids=$(cat /proc/"$DROOT_NSPAWN_PID"/task/*/children 2>/dev/null) || kids=''
		[ -n "$kids" ] || kids=$(cd /proc && echo [0-9]*)
		for p in $kids; do
			p=/proc/$p
			if awk -v parent="$DROOT_NSPAWN_PID" '/^PPid:/ { pp = $2 } /^NSpid:/ { last = $NF; n = NF }
				END { exit !(pp == parent && last == 1 && n > 2) }' "$p/status" 2>/dev/null; then
				DROOT_PID1=${p#/proc/}
				break
			fi
		done
		[ -n "$DROOT_PID1" ] && break
		sleep 0.2
	done
	[ -n "$DROOT_PID1" ] || { droot_say "no systemd in the container after 60 s"; return 1; }
	for i in $(seq 1 240); do
		state=$(nsenter -t "$DROOT_PID1" -a /usr/bin/systemctl is-system-running 2>/dev/null) || true
		case $state in
		running | degraded)
			droot_say "booted (systemd pid $DROOT_PID1 on the host): $state"
			return 0
			;;
		esac
		kill -0 "$DROOT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.5
	done
	droot_say "the container's systemd did not finish booting (last state: ${state:-none})"
	tail -n 20 "$DROOT_WORK/console.log" >&2
	return 1
}

# droot_exec USER CMD...: CMD as USER in the booted root, with a clean environment.
droot_exec() {
	local user=$1
	shift
	nsenter -t "$DROOT_PID1" -a /usr/sbin/runuser -u "$user" -- /usr/bin/env -i PATH="$DROOT_PATH" HOME=/root LANG=C.UTF-8 ${DROOT_ENV:-} "$@"
}

# droot_journal UNIT [LINES]: the unit's last journal lines in the booted root (a
# failure's explanation).
droot_journal() {
	nsenter -t "$DROOT_PID1" -a /usr/bin/journalctl -u "$1" --no-pager -n "${2:-30}" 2>&1 || true
}

droot_poweroff() {
	[ -n "$DROOT_NSPAWN_PID" ] || return 0
	local i
	nsenter -t "$DROOT_PID1" -a /usr/bin/systemctl poweroff >/dev/null 2>&1 || true
	for i in $(seq 1 100); do
		kill -0 "$DROOT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$DROOT_NSPAWN_PID" 2>/dev/null; then
		droot_say "the container did not stop in 20 s: killing systemd-nspawn"
		kill -KILL "$DROOT_NSPAWN_PID" 2>/dev/null || true
	fi
	wait "$DROOT_NSPAWN_PID" 2>/dev/null || true
	DROOT_NSPAWN_PID=''
	DROOT_PID1=''
}

droot_cleanup() {
	if [ -n "$DROOT_NSPAWN_PID" ] && kill -0 "$DROOT_NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$DROOT_NSPAWN_PID" 2>/dev/null || true
		sleep 1
		kill -KILL "$DROOT_NSPAWN_PID" 2>/dev/null || true
		wait "$DROOT_NSPAWN_PID" 2>/dev/null || true
	fi
	DROOT_NSPAWN_PID=''
	[ -n "$DROOT" ] && [ -d "$DROOT" ] && droot_chroot_umount
	if [ -n "$DROOT_OVERLAY" ]; then
		umount -l "$DROOT" 2>/dev/null || true
		umount -l "$DROOT_WORK/ovl" 2>/dev/null || true
		DROOT_OVERLAY=''
	fi
	[ -n "$DROOT_WORK" ] && rm -rf --one-file-system "$DROOT_WORK"
	DROOT_WORK=''
}
