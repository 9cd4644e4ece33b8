# packaging/testroot/tap.sh: what the package's tests in a Debian root share besides the
# root itself (lib.sh): the preflight, the package to test, and the checks, each
# printed as one TAP line. For bash; sourced after lib.sh, by a script that defines
# say (one line on stderr, its name first) and here (the repository).
#
#   tap_preflight NSVAR [UNSHARE-FLAGS] -- "$@"
#                        root and the tools, else exit 2; then re-runs the script under
#                        `unshare --mount --propagation private` (NSVAR set in it), so
#                        every mount it makes is gone when it ends, however it ends
#   tap_package_start WORK   the .deb to test: POSTERN_DEB=path, else packaging/build-deb.sh
#                        started in the background into WORK/out; then droot_cache makes
#                        or reuses the root (exit 75 when the archive cannot be reached)
#   tap_package_wait WORK    the .deb's path in $TAP_DEB, once the build ended (exit 1
#                        when it failed, with its output)
#   tap_stop_build       stops a build still running (for the caller's cleanup)
#   verdict DESC yes|no [DETAIL]   one "ok N" / "not ok N" line (DETAIL under a failure)
#   check DESC STATUS REGEX ARGS...   `run_as ARGS...` (the caller's: e.g. USER CMD... run
#                        in the root) exits STATUS and prints (stdout and stderr) something
#                        matching the extended REGEX (empty: anything; SILENT: nothing);
#                        INPUT=... before it is the stdin; LAST keeps what it printed
#   holds DESC REGEX...  LAST has a line matching each REGEX
#   lacks DESC REGEX     LAST has no line matching REGEX
#   wait_for SECONDS CMD...   polls CMD every 0.2 s until it succeeds (1: it never did)
#   load_line RESULT CHECK LABEL...   the "measure:" line of a smtp-load.mjs load (its JSON,
#                        RESULT) and its check (CHECK); either empty: a run that gave none
#
# Settings: TAP_DETAIL_LINES (25): how much of a failed check's output is shown.
# Counters: n (checks), fails (failed ones).

TAP_DEB=''
TAP_BUILD_PID=''
TAP_DETAIL_LINES=${TAP_DETAIL_LINES:-25}
n=0
fails=0
LAST=''

tap_preflight() {
	local nsvar=$1 flags=()
	shift
	while [ "$#" -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
	[ "$#" -gt 0 ] && shift
	if [ "$(id -u)" != 0 ]; then
		say "needs root (debootstrap, chroot, systemd-nspawn)"
		exit 2
	fi
	local tool
	for tool in debootstrap systemd-nspawn nsenter unshare chroot flock dpkg-deb node; do
		if ! command -v "$tool" >/dev/null; then
			say "needs $tool (apt-get install debootstrap systemd-container)"
			exit 2
		fi
	done
	if [ -z "${!nsvar:-}" ]; then
		export "$nsvar=1"
		exec unshare --mount "${flags[@]}" --propagation private "$0" "$@"
	fi
}

tap_package_start() {
	local work=$1 status=0
	if [ -n "${POSTERN_DEB:-}" ]; then
		TAP_DEB=$(cd "$(dirname "$POSTERN_DEB")" && pwd)/${POSTERN_DEB##*/}
		[ -f "$TAP_DEB" ] || { say "POSTERN_DEB: no file $POSTERN_DEB"; exit 2; }
	else
		# A process group of its own: tap_stop_build stops tsc and npm with it.
		setsid "$here/packaging/build-deb.sh" "$work/out" >"$work/build.log" 2>&1 &
		TAP_BUILD_PID=$!
	fi
	droot_cache || status=$?
	if [ "$status" -ne 0 ]; then
		[ "$status" -eq 75 ] && say "SKIP: the Debian archive cannot be reached; nothing was tested"
		exit "$status"
	fi
}

tap_package_wait() {
	local work=$1
	[ -n "$TAP_BUILD_PID" ] || return 0
	if ! wait "$TAP_BUILD_PID"; then
		TAP_BUILD_PID=''
		say "build-deb.sh failed:"
		cat "$work/build.log" >&2
		exit 1
	fi
	TAP_BUILD_PID=''
	TAP_DEB=$(tail -n 1 "$work/build.log")
}

tap_stop_build() {
	[ -n "$TAP_BUILD_PID" ] && kill -- -"$TAP_BUILD_PID" 2>/dev/null
	TAP_BUILD_PID=''
}

verdict() {
	n=$((n + 1))
	if [ "$2" = yes ]; then
		printf 'ok %d - %s\n' "$n" "$1"
	else
		printf 'not ok %d - %s\n' "$n" "$1"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | head -n "$TAP_DETAIL_LINES" | sed 's/^/#   /'
		fails=$((fails + 1))
	fi
	return 0
}

check() {
	local desc=$1 want=$2 re=$3 out status=0
	shift 3
	if [ -n "${INPUT:-}" ]; then
		out=$(printf '%s' "$INPUT" | run_as "$@" 2>&1) || status=$?
	else
		out=$(run_as "$@" 2>&1 </dev/null) || status=$?
	fi
	LAST=$out
	if [ "$status" = "$want" ] && { [ -z "$re" ] || { [ "$re" = SILENT ] && [ -z "$out" ]; } || { [ "$re" != SILENT ] && grep -Eq -- "$re" <<<"$out"; }; }; then
		verdict "$desc" yes
	else
		verdict "$desc" no "$(printf '%s: exit %s (wanted %s)%s\n%s' "$*" "$status" "$want" "${re:+, output matching /$re/}" "$out")"
	fi
}

holds() {
	local desc=$1 re
	shift
	for re in "$@"; do
		grep -Eq -- "$re" <<<"$LAST" || { verdict "$desc" no "$(printf 'no line matching /%s/ in:\n%s' "$re" "$LAST")"; return 0; }
	done
	verdict "$desc" yes
}

lacks() {
	if grep -Eq -- "$2" <<<"$LAST"; then verdict "$1" no "$LAST"; else verdict "$1" yes; fi
}

wait_for() {
	local until=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -ge "$until" ] && return 1
		sleep 0.2
	done
}

load_line() {
	local result=${1:-'{"connections":0,"refused":0,"failed":0,"rejected":0,"acknowledged":0,"greetingMaxMs":0,"greetingMedianMs":0,"errors":{"no result":1}}'}
	local check=${2:-'{"lost":-1}'}
	shift 2
	node -e "
const r = JSON.parse(process.argv[1]), c = JSON.parse(process.argv[2]);
console.log('measure: ' + process.argv.slice(3).join(' ') + ': ' + r.connections + ' connections, ' + r.refused + ' refused, ' + r.failed + ' failed, '
  + r.rejected + ' rejected, ' + r.acknowledged + ' acknowledged, ' + c.lost + ' lost, longest greeting wait ' + r.greetingMaxMs + ' ms (median ' + r.greetingMedianMs + ' ms)'
  + (Object.keys(r.errors).length ? ', errors ' + JSON.stringify(r.errors) : ''));" "$result" "$check" "$@"
}
