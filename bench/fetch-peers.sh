#!/bin/sh
# bench/fetch-peers.sh: fetches Debian's Exim and Postfix (whatever versions this
# machine's Debian release has: Exim 4.96 and Postfix 3.7 on Debian 12) with
# `apt-get download` and unpacks them with `dpkg -x` into bench/peers/ (or $1), never
# installing them, so `npm run bench` can run them beside postern (see bench/README.md).
# The only step that uses the network; the bench itself never does.
#
#   sh bench/fetch-peers.sh [DIR]        (as root on Debian; runs apt-get update first)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/peers}
mkdir -p "$dest/debs"
# Root unpacks and the bench runs what lies here: a folder of anyone else's is refused.
[ "$(stat -c %u "$dest")" = "$(id -u)" ] || { echo "fetch-peers: $dest is not $(id -un)'s; give a folder of your own" >&2; exit 77; }
# apt-get download as root hands the download to the _apt user: let it write here.
chown _apt "$dest/debs" 2>/dev/null || true
dest=$(cd "$dest" && pwd)
apt-get update -qq
empty=$(mktemp -d)
trap 'rmdir "$empty"' EXIT
cd "$dest/debs"

# Downloads the release's current version of a package unless it is here already with
# the archive's SHA256 (the folder is _apt's to write too: one that differs is fetched
# again); prints the .deb's file name.
fetch() {
  # Asked from an empty folder: apt prints nothing for a file already in the current one.
  uri=$(cd "$empty" && apt-get download --print-uris "$1" 2>/dev/null | head -n 1)
  f=$(echo "$uri" | awk '{ print $2 }')
  sum=$(echo "$uri" | awk '{ print $4 }' | sed -n 's/^SHA256://p')
  [ -n "$f" ] && [ -n "$sum" ] || { echo "fetch-peers: no package $1 (with a SHA256) in this system's Debian release" >&2; exit 69; }
  good() { [ -f "$f" ] && [ ! -L "$f" ] && echo "$sum  $f" | sha256sum -c --status; }
  good || { rm -f "$f"; apt-get download -qq "$1" >&2; } || { echo "fetch-peers: apt-get download $1 failed" >&2; exit 69; }
  good || { echo "fetch-peers: $f does not have the archive's SHA256" >&2; exit 69; }
  echo "$f"
}
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
# The lib* packages a .deb depends on that this system lacks (an alternative that is
# installed will do), by name, one a line.
missing_libs() {
  dpkg-deb -f "$1" Depends Pre-Depends | tr ',' '\n' | while read -r alts; do
    ok=; first=
    for a in $(echo "$alts" | sed 's/([^)]*)//g; s/|/ /g; s/:any//g'); do
      first=${first:-$a}
      if installed "$a"; then ok=1; fi
    done
    case "$first" in lib*) [ -n "$ok" ] || echo "$first" ;; esac
  done
}

# Exim's light daemon and Postfix (with smtp-source and smtp-sink, the load generator and
# sink), then the libraries they link that this system lacks, and theirs in turn
# (libidn12 for Exim on a plain Debian 12).
debs=""
for p in exim4-base exim4-config exim4-daemon-light postfix; do debs="$debs $(fetch "$p")"; done
libdebs=""
todo="$debs"
seen=" "
while [ -n "$todo" ]; do
  next=""
  for d in $todo; do
    for l in $(missing_libs "$d"); do
      case "$seen" in *" $l "*) continue ;; esac
      seen="$seen$l "
      f=$(fetch "$l")
      libdebs="$libdebs $f"
      next="$next $f"
    done
  done
  todo=$next
done

# Unpacked afresh: nothing of an earlier release's packages stays.
rm -rf "$dest/exim" "$dest/postfix" "$dest/libs" "$dest/libs-all"
mkdir -p "$dest/libs" "$dest/libs-all"
for d in $debs; do
  case "$d" in
    exim4-*) dpkg -x "$d" "$dest/exim" ;;
    postfix_*) dpkg -x "$d" "$dest/postfix" ;;
  esac
done
for d in $libdebs; do dpkg -x "$d" "$dest/libs-all"; done
# Only the libraries this system lacks: the bench puts this folder in the peers'
# library path, and must not shadow the system's own.
for f in "$dest"/libs-all/usr/lib/*-linux-gnu/*.so.* "$dest"/libs-all/lib/*-linux-gnu/*.so.*; do
  [ -L "$f" ] || continue   # the soname links: libidn.so.12 -> libidn.so.12.6.4
  n=$(basename "$f")
  ldconfig -p | grep -q "^[[:space:]]*$n " || cp -L "$f" "$dest/libs/$n"
done
rm -rf "$dest/libs-all"
# Earlier downloads no longer wanted (another release's versions) go.
for f in *.deb; do
  case " $debs $libdebs " in *" $f "*) ;; *) rm -f "$f" ;; esac
done
vers=$(for d in $debs; do case "$d" in exim4-daemon-light_*|postfix_*) printf '%s %s, ' "$(dpkg-deb -f "$d" Package)" "$(dpkg-deb -f "$d" Version)" ;; esac; done)
echo "fetch-peers: unpacked into $dest: ${vers}libs/: $(ls "$dest/libs" | tr '\n' ' ')"
