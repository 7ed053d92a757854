#!/usr/bin/env bash
#
# Install the Debian packages given as arguments, but only those that are
# not installed yet.  dpkg-query is cheap, so "make deps" can run before
# every build: apt-get (and "apt-get update") is called only when
# something is actually missing.
#
# usage: scripts/deps.sh package...

set -euo pipefail

missing=()
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *)   missing+=("$pkg") ;;
    esac
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps: installing ${missing[*]}"

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "deps: missing packages and not root; run as root:" >&2
        echo "    apt-get update && apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -q -y --no-install-recommends "${missing[@]}"
