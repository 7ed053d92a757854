#!/usr/bin/env bash
#
# "make deb": build the Debian package libnginx-mod-http-history from a
# copy of the tree (debian/), with dpkg-buildpackage, as Debian's own
# nginx modules are built (dh-sequence-nginx), and check it with lintian:
# any error fails.  Everything lands in DIR: the source package (.dsc,
# .tar.xz), the .deb, .buildinfo, .changes and lintian.log.
#
# usage: scripts/deb.sh DIR

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

dir=$1
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac

source=$(cd "$top" && dpkg-parsechangelog -S Source)
version=$(cd "$top" && dpkg-parsechangelog -S Version)
src=$dir/$source-$version

rm -rf "$dir"
mkdir -p "$src"

# the tree as it is, without what builds and tests leave
tar -C "$top" --exclude=./build --exclude=./.git --exclude='./t/servroot*' \
    -cf - . | tar -C "$src" -xf -

echo "deb: dpkg-buildpackage in $src (log: $dir/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc) > "$dir/build.log" 2>&1; then
    tail -n 40 "$dir/build.log"
    echo "deb: dpkg-buildpackage failed, see $dir/build.log" >&2
    exit 1
fi

changes=$(ls "$dir"/"${source}_${version}"_*.changes)
deb=$dir/${source}_${version}_$(dpkg --print-architecture).deb

echo "deb: built $(cd "$dir" && ls ./*.deb ./*.dsc | sed 's|^\./||' | tr '\n' ' ')"
dpkg-deb --info "$deb" | sed -n 's/^ \(Depends\|Recommends\|Suggests\):/deb:   &/p'
dpkg-deb --contents "$deb" | awk '{ print "deb:   " $6 $7 $8 }' \
    | grep -v '/$' || true

# lintian as Debian runs it; errors fail, the rest is shown
echo "deb: lintian $(lintian --version | awk '{ print $2 }')" \
     "(log: $dir/lintian.log)"
rc=0
lintian --fail-on error --display-info "$changes" > "$dir/lintian.log" 2>&1 \
|| rc=$?
sed 's/^/deb:   /' "$dir/lintian.log"
if [ $rc -ne 0 ]; then
    echo "deb: lintian failed (exit $rc)" >&2
    exit 1
fi
echo "deb: lintian: $(grep -c '^E:' "$dir/lintian.log" || true) errors," \
     "$(grep -c '^W:' "$dir/lintian.log" || true) warnings"
