#!/usr/bin/env bash
#
# Print the directory of the nginx tree that the module is built against:
# the headers, configure script and conf_flags of Debian's nginx, which
# the nginx-dev package installs in /usr/share/nginx/src.
#
# When nginx-dev is installed, that is its tree.  Otherwise its .deb, of
# the installed nginx's version, is downloaded with apt-get and unpacked
# into DIR, without installing it: nginx-dev depends on the development
# packages of every module Debian builds (libgd-dev, libperl-dev,
# libxslt1-dev, ..., over a hundred packages on a fresh Debian 12), none
# of which this module needs.  "make deb" installs nginx-dev, since
# dh-sequence-nginx comes with it.
#
# usage: scripts/nginx-dev.sh DIR
#
# Messages go to stderr; the tree's path to stdout.

set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

dir=$1
case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac

# the version of an installed package; nothing if it is not installed
installed() {
    { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null \
      || true; } | sed -n 's/^ii *//p'
}

nginx_version=$(installed nginx)
if [ -z "$nginx_version" ]; then
    nginx_version=$(installed nginx-core)
fi
if [ -z "$nginx_version" ]; then
    echo "nginx-dev: Debian's nginx is not installed" >&2
    exit 1
fi

dev_version=$(installed nginx-dev)
if [ -n "$dev_version" ]; then
    if [ "$dev_version" != "$nginx_version" ]; then
        echo "nginx-dev: nginx-dev $dev_version does not match" \
             "nginx $nginx_version" >&2
        exit 1
    fi
    echo /usr/share/nginx/src
    exit 0
fi

tree=$dir/usr/share/nginx/src

if [ "$(cat "$dir/version" 2>/dev/null)" = "$nginx_version" ] \
   && [ -f "$tree/conf_flags" ]
then
    echo "$tree"
    exit 0
fi

echo "nginx-dev: downloading nginx-dev $nginx_version (not installed:" \
     "only its nginx tree is used) into $dir" >&2

rm -rf "$dir"
mkdir -p "$dir/deb"

# apt-get download fetches as the user "_apt" when it can write to the
# directory, else as the caller; either way the download is checked by
# apt against the signed package lists
chmod 755 "$dir/deb"
(cd "$dir/deb" && apt-get download -q "nginx-dev=$nginx_version") >&2 \
|| {
    echo "nginx-dev: could not download nginx-dev $nginx_version;" \
         "\"apt-get update\" first, or install nginx-dev" >&2
    exit 1
}

dpkg-deb -x "$dir"/deb/nginx-dev_*.deb "$dir"
rm -rf "$dir/deb"

[ -f "$tree/conf_flags" ] || {
    echo "nginx-dev: no conf_flags in $tree" >&2
    exit 1
}

echo "$nginx_version" > "$dir/version"
echo "$tree"
