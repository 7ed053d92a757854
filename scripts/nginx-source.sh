#!/usr/bin/env bash
#
# Fetch the source of Debian's nginx with apt and unpack the upstream tree
# (the .orig tarball, nginx 1.22.1 on bookworm) into DIR.
#
# Debian's nginx-dev package ships only the headers and the configure
# script; the fuzzing harnesses (fuzz/Makefile) need nginx's core objects,
# so they build them from this tree.
#
# The machine's apt is left alone: a private sources list with "deb-src"
# entries for the URIs and suites of the system's "deb" entries, and
# private package lists and caches, all in a temporary directory.  The
# download is checked by apt against the signed Sources index.
#
# usage: scripts/nginx-source.sh DIR
#
# NGINX_SOURCE_PKG      the source package (default: nginx)
# NGINX_SOURCE_VERSION  its version (default: that of the installed
#                       nginx-dev, or nginx, if any; else the newest)
#
# Nothing is fetched when DIR already holds an nginx tree of the wanted
# upstream version.

set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

dir=$1
pkg=${NGINX_SOURCE_PKG:-nginx}
version=${NGINX_SOURCE_VERSION:-}

if [ -z "$version" ]; then
    for p in nginx-dev nginx nginx-common; do
        version=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
        [ -n "$version" ] && break
    done
fi

# 1.22.1-9+deb12u11 -> 1.22.1 (no epoch, no Debian revision)
upstream=${version#*:}
upstream=${upstream%-*}

tree_version() {
    sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' \
        "$1/src/core/nginx.h" 2>/dev/null || true
}

if [ -x "$dir/auto/configure" ] || [ -x "$dir/configure" ]; then
    have=$(tree_version "$dir")
    if [ -n "$have" ] && { [ -z "$upstream" ] || [ "$have" = "$upstream" ]; }
    then
        echo "nginx-source: $dir already holds nginx $have"
        exit 0
    fi
fi

for tool in apt-get tar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "nginx-source: $tool is needed" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nginx-source.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/download"

# deb-src lines for every "deb" entry of the system's sources, one-line
# format; deb822 (*.sources) and one-line (*.list) files are both read

list=$tmp/sources.list

emit() {    # types uris suites components signed-by
    local uri suite
    case " $1 " in *" deb "*) ;; *) return 0 ;; esac
    [ -n "$2" ] && [ -n "$3" ] || return 0
    for uri in $2; do
        for suite in $3; do
            printf 'deb-src %s%s %s %s\n' \
                "${5:+[signed-by=$5] }" "$uri" "$suite" "$4" >> "$list"
        done
    done
}

parse_deb822() {
    local types="" uris="" suites="" comps="" signed="" enabled=yes line k v
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            \#*) continue ;;
        esac
        if [ -z "${line//[[:space:]]/}" ]; then
            [ "$enabled" = no ] || emit "$types" "$uris" "$suites" \
                                         "$comps" "$signed"
            types="" uris="" suites="" comps="" signed="" enabled=yes
            continue
        fi
        case "$line" in
            [[:space:]]*) continue ;;   # continuation (an inline key)
        esac
        k=${line%%:*}
        v=${line#*:}
        read -r v <<< "$v" || true
        case "${k,,}" in
            types)      types=$v ;;
            uris)       uris=$v ;;
            suites)     suites=$v ;;
            components) comps=$v ;;
            signed-by)  [ "${v#/}" != "$v" ] && signed=$v ;;
            enabled)    enabled=${v,,} ;;
        esac
    done < "$1"
    [ "$enabled" = no ] || emit "$types" "$uris" "$suites" "$comps" "$signed"
}

parse_list() {
    local line opts
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        set -- $line
        [ "${1:-}" = deb ] || continue
        shift
        opts=""
        if [ "${1:0:1}" = "[" ]; then
            while [ $# -gt 0 ]; do
                opts="$opts $1"
                case "$1" in *"]") shift; break ;; esac
                shift
            done
        fi
        [ $# -ge 2 ] || continue
        echo "deb-src${opts} $*" >> "$list"
    done < "$1"
}

: > "$list"
shopt -s nullglob
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && parse_list "$f"
done
for f in /etc/apt/sources.list.d/*.sources; do
    parse_deb822 "$f"
done
shopt -u nullglob

if [ ! -s "$list" ]; then
    echo "nginx-source: no deb entries in the system's apt sources" >&2
    exit 1
fi

echo "nginx-source: private apt sources:"
sed 's/^/    /' "$list"

apt=(apt-get -q
     -o "Dir::Etc::SourceList=$list"
     -o "Dir::Etc::SourceParts=/dev/null"
     -o "Dir::State::Lists=$tmp/lists"
     -o "Dir::Cache::archives=$tmp/archives"
     -o "Dir::Cache::pkgcache="
     -o "Dir::Cache::srcpkgcache=")

# as root, apt downloads as its own unprivileged user (_apt): let it write
# into the private directories
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chmod 755 "$tmp" "$tmp/lists" "$tmp/archives"
    chown _apt "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/download"
fi

"${apt[@]}" update

# Only the upstream tarball is needed: a mirror that lacks the .dsc or the
# Debian diff of a version still does, so a failed "apt-get source" is
# judged by what it left.  The tarball is checked against the SHA256 that
# the signed Sources index gives (apt does so too).

fetch() {    # package[=version]
    local uris line file hash got
    rm -f "$tmp"/download/*.orig.tar.*
    uris=$("${apt[@]}" source --print-uris "$1" 2>/dev/null) || return 1
    (cd "$tmp/download" && "${apt[@]}" source --download-only "$1") || true

    line=$(grep -E "^'[^']*\.orig\.tar\.[a-z0-9]+' " <<< "$uris" | head -n 1)
    [ -n "$line" ] || return 1
    file=$(awk '{ print $2 }' <<< "$line")
    hash=$(grep -oE 'SHA256:[0-9a-f]{64}' <<< "$line" | cut -d: -f2 || true)

    [ -f "$tmp/download/$file" ] || return 1

    if [ -n "$hash" ]; then
        got=$(sha256sum "$tmp/download/$file" | awk '{ print $1 }')
        if [ "$got" != "$hash" ]; then
            echo "nginx-source: $file: SHA256 $got, expected $hash" >&2
            return 1
        fi
        echo "nginx-source: $file: SHA256 $got, as in the Sources index"
    fi

    orig=$tmp/download/$file
}

orig=
if [ -n "$version" ] && fetch "$pkg=$version"; then
    :
else
    [ -z "$version" ] \
        || echo "nginx-source: $pkg=$version: no tarball, trying the newest" >&2
    if ! fetch "$pkg"; then
        echo "nginx-source: could not fetch the source of $pkg" >&2
        exit 1
    fi
fi

echo "nginx-source: unpacking $(basename "$orig") into $dir"

rm -rf "$dir.new"
mkdir -p "$dir.new"
tar -xf "$orig" -C "$dir.new" --strip-components=1 --no-same-owner

if [ ! -x "$dir.new/auto/configure" ] && [ ! -x "$dir.new/configure" ]; then
    echo "nginx-source: the tarball holds no nginx tree" >&2
    rm -rf "$dir.new"
    exit 1
fi

rm -rf "$dir"
mv "$dir.new" "$dir"

echo "nginx-source: nginx $(tree_version "$dir") in $dir"
