#!/bin/sh
# bench/fetch-peers.sh: fetches Exim 4.96 and Postfix 3.7 from Debian's archive with
# `apt-get download` and unpacks them with `dpkg -x` into bench/peers/ (or $1), never
# installing them, so `npm run bench` can run them beside postern (see bench/README.md).
# The only step that uses the network; the bench itself never does.
#
#   sh bench/fetch-peers.sh [DIR]        (as root on Debian 12; runs apt-get update first)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/peers}
mkdir -p "$dest/debs"
# apt-get download as root hands the download to the _apt user: let it write here.
chown _apt "$dest/debs" 2>/dev/null || true
dest=$(cd "$dest" && pwd)
# Exim's light daemon and what it links that a plain Debian lacks; Postfix (with
# smtp-source and smtp-sink, the load generator and sink) and its libraries.
pkgs="exim4-base exim4-config exim4-daemon-light libidn12 postfix libicu72 libnsl2 libsasl2-2 libsasl2-modules-db libdb5.3 libtirpc3 libgnutls30 libpcre2-8-0"
apt-get update -qq
cd "$dest/debs"
for p in $pkgs; do
  ls "$p"_*.deb >/dev/null 2>&1 || apt-get download -qq "$p" || { echo "fetch-peers: apt-get download $p failed" >&2; exit 69; }
done
rm -rf "$dest/libs" "$dest/libs-all"
mkdir -p "$dest/libs"
for d in *.deb; do
  case "$d" in
    exim4-*) dpkg -x "$d" "$dest/exim" ;;
    postfix_*) dpkg -x "$d" "$dest/postfix" ;;
    *) dpkg -x "$d" "$dest/libs-all" ;;
  esac
done
# Only the libraries this system lacks (libidn12 on a plain Debian): the bench puts
# this folder in the peers' library path, and must not shadow the system's own.
for f in "$dest"/libs-all/usr/lib/x86_64-linux-gnu/*.so.*; do
  [ -L "$f" ] || continue   # the soname links: libidn.so.12 -> libidn.so.12.6.4
  n=$(basename "$f")
  ldconfig -p | grep -q "^[[:space:]]*$n " || cp -L "$f" "$dest/libs/$n"
done
rm -rf "$dest/libs-all"
echo "fetch-peers: unpacked into $dest: exim/usr/sbin/exim4, postfix/usr/sbin/postfix, libs/ ($(ls "$dest/libs" | tr '\n' ' '))"
