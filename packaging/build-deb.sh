#!/bin/sh
# packaging/build-deb.sh: builds the Debian package postern_VERSION-1_ARCH.deb with
# dpkg-deb from this checkout: dist/ (built here with tsc and esbuild), bin/, the production
# dependencies only (npm ci --omit=dev into the staging tree: the one network use, and
# npm's cache serves it when it can), the man pages (made from it), the unit, the logrotate
# snippet and the maintainer scripts in packaging/debian/. Arch-specific: lmdb's
# prebuilt binary for this machine comes with it, and the postdrop helper built with cc.
#   packaging/build-deb.sh [OUTDIR]      (default: packaging/out)
set -eu
# Nothing to build with: one sentence and EX_UNAVAILABLE, before anything is made.
command -v dpkg-deb >/dev/null 2>&1 || { echo "build-deb.sh: dpkg-deb is not installed (Debian's dpkg package): no package built" >&2; exit 69; }
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/packaging/out}
version=$(node -p "require('$here/package.json').version")-1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d "${TMPDIR:-/tmp}/postern-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
umask 022

chmod 0755 "$stage"

# The program: compiled JavaScript (a clean build, no source maps), the commands,
# production node_modules.
lib=$stage/usr/lib/postern
mkdir -p "$lib"
(cd "$here" && npx tsc -p tsconfig.json --outDir "$lib/dist" --sourceMap false --incremental false)
# sendmail's submission and the queue's listings, each as one CommonJS file (bin/ runs
# them first: a fast start).
(cd "$here" && BUNDLE_DIR="$lib/dist/cli" npm run -s bundle)
# The setgid helper through which users write into the maildrop, with the system's cc
# and Debian's hardening flags, stripped; postinst gives it its group (postern-drop)
# and mode 2755.
flag() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1" 2>/dev/null || true; }
# shellcheck disable=SC2046
cc $(flag CPPFLAGS) $(flag CFLAGS) -Wall -Wextra $(flag LDFLAGS) -o "$lib/dist/postdrop" "$here/src/postdrop/postdrop.c"
strip --strip-unneeded "$lib/dist/postdrop"
# sendmail's C front end (/usr/sbin/sendmail): the plain submission without node, the rest
# handed to /usr/lib/postern/bin/sendmail; it believes only settings of this version.
# shellcheck disable=SC2046
cc $(flag CPPFLAGS) $(flag CFLAGS) -Wall -Wextra -DPOSTERN_VERSION="\"${version%-1}\"" $(flag LDFLAGS) -o "$lib/dist/sendmail" "$here/src/postdrop/sendmail.c"
strip --strip-unneeded "$lib/dist/sendmail"
cp -r "$here/bin" "$here/package.json" "$here/package-lock.json" "$lib/"
# Debian's node named directly (lintian: no `env -S`); /usr/sbin/postern below starts it
# with io_uring off, and bin/postern runs itself again with it off when root runs it otherwise.
for f in "$lib"/bin/*; do
  case $f in *.json) ;; *) sed -i '1s|^#!.*|#!/usr/bin/node|' "$f" ;; esac
done
# --ignore-scripts: no `prepare` (tsc is a dev dependency); lmdb and msgpackr load their
# prebuilt binaries from the optional packages npm installs for this platform.
(cd "$lib" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
# What Debian's policy asks of shipped files (lintian): no musl builds in a glibc
# package, native modules stripped and not executable, no sources, build tools or
# packaging leftovers of the dependencies, and only scripts executable.
find "$lib/node_modules" -name '*.musl.node' -delete
find "$lib/node_modules" -name '*.node' -exec chmod 0644 {} + -exec strip --strip-unneeded {} +
rm -rf "$lib/node_modules/lmdb/dependencies" "$lib/node_modules/lmdb/src" "$lib/node_modules/node-addon-api/tools"
find "$lib/node_modules" -name .npmignore -delete
find "$lib/node_modules" -type f -perm /111 ! -name '*.node' | while read -r f; do
  [ "$(head -c 2 "$f")" = '#!' ] || chmod a-x "$f"
done
# lmdb loads, as ES module (main.js) and as CommonJS (the listings' bundle, dist/cli/list.cjs).
(cd "$lib" && node -e "require('lmdb'); import('lmdb').then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); })")

# The commands, run with Debian's node named absolutely (cron's PATH, env -i).
mkdir -p "$stage/usr/sbin" "$stage/usr/bin"
cat > "$stage/usr/sbin/postern" <<'WRAP'
#!/bin/sh
# postern's commands: the name called (a link to this file) picks the personality.
name=${0##*/}
[ -f /usr/lib/postern/bin/"$name" ] || name=postern
# io_uring off from the start (CVE-2024-22017): a node that may use it refuses to change
# identity in process; Debian's refuses anyway, and root's command then runs again as the user.
UV_USE_IO_URING=0
export UV_USE_IO_URING
exec /usr/bin/node /usr/lib/postern/bin/"$name" "$@"
WRAP
chmod 0755 "$stage/usr/sbin/postern"
ln -s ../lib/postern/dist/sendmail "$stage/usr/sbin/sendmail"
ln -s postern "$stage/usr/sbin/postern-qgrep"
ln -s postern "$stage/usr/sbin/postern-exigrep"
ln -s ../sbin/postern "$stage/usr/bin/mailq"
ln -s ../sbin/postern "$stage/usr/bin/newaliases"
ln -s ../sbin/sendmail "$stage/usr/lib/sendmail"

# The default configuration, copied to /etc/postern/postern.toml by postinst on the first
# install when neither debconf's answers nor Exim's settings make it: that file is the
# administrator's (and postinst's), never a conffile, so no upgrade stops at dpkg's
# prompt. The logrotate snippet is the one conffile. The units: the service, and the
# socket unit that holds its SMTP sockets across restarts.
install -D -m 0644 "$here/packaging/debian/postern.toml" "$stage/usr/share/postern/postern.toml"
install -D -m 0644 "$here/config/postern.logrotate" "$stage/etc/logrotate.d/postern"
install -D -m 0644 "$here/config/postern.service" "$stage/usr/lib/systemd/system/postern.service"
install -D -m 0644 "$here/config/postern.socket" "$stage/usr/lib/systemd/system/postern.socket"
# Not enabled: the on-demand setup (README) enables it with daemon.idle_exit.
install -D -m 0644 "$here/config/postern-maildrop.path" "$stage/usr/lib/systemd/system/postern-maildrop.path"

# Documentation. The man pages are made again from the staged program, so they carry
# package.json's version (the committed ones may name an older one).
mkdir "$stage/man"
(cd "$lib" && node --input-type=module -e "
  const { writeFileSync } = await import('node:fs');
  const { MAN_PAGES, manPage } = await import('$lib/dist/cli/help.js');
  for (const [file, page] of MAN_PAGES) writeFileSync('$stage/man/' + file, manPage(page));")
for page in "$stage"/man/*.[58]; do
  sec=${page##*.}
  install -D -m 0644 "$page" "$stage/usr/share/man/man$sec/${page##*/}"
  gzip -9n "$stage/usr/share/man/man$sec/${page##*/}"
done
rm -r "$stage/man"
# sendmail, mailq and newaliases are postern's personalities: their pages are postern(8).
for cmd in sendmail mailq newaliases; do ln -s postern.8.gz "$stage/usr/share/man/man8/$cmd.8.gz"; done
install -D -m 0644 "$here/packaging/debian/copyright" "$stage/usr/share/doc/postern/copyright"
# Debian's changelog: one entry for this version, dated by the last commit (reproducible).
when=$(git -C "$here" log -1 --format=%cD 2>/dev/null || date -R)
printf 'postern (%s) unstable; urgency=medium\n\n  * Upstream release %s.\n\n -- postern maintainers <postern@example.org>  %s\n' \
  "$version" "${version%-1}" "$when" | gzip -9n > "$stage/usr/share/doc/postern/changelog.Debian.gz"
install -m 0644 "$here/README.md" "$stage/usr/share/doc/postern/README.md"
# The Grafana dashboard and Prometheus alert rules (README, "Watching a fleet").
for f in grafana-postern.json postern.rules.yml postern.rules.test.yml; do
  install -D -m 0644 "$here/contrib/$f" "$stage/usr/share/doc/postern/examples/$f"
done

# Control files.
mkdir -p "$stage/DEBIAN"
for f in config postinst prerm postrm; do install -m 0755 "$here/packaging/debian/$f" "$stage/DEBIAN/$f"; done
for f in conffiles templates; do install -m 0644 "$here/packaging/debian/$f" "$stage/DEBIAN/$f"; done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/packaging/debian/control" > "$stage/DEBIAN/control"

mkdir -p "$out"
deb=$out/postern_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
