#!/usr/bin/env bash
#
# Install the Debian packages given as arguments, but only those that are
# not installed yet.  dpkg-query is cheap, so each make target can call it
# before it runs: apt-get (and "apt-get update") is called only when
# something is actually missing, and what is installed is said first.
#
# usage: scripts/deps.sh [--for WHAT] package...
#
#   --for WHAT   what needs the packages ("make run"), for the message

set -euo pipefail

what=
if [ "${1:-}" = "--for" ]; then
    what=$2
    shift 2
fi

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

echo "deps: ${what:-this} needs these Debian packages, not installed yet:"
echo "deps:     ${missing[*]}"
echo "deps: installing them and what they depend on" \
     "(apt-get install --no-install-recommends)"

for pkg in "${missing[@]}"; do
    case "$pkg" in
        nginx)
            echo "deps: note: Debian starts its own nginx service on port 80" \
                 "when nginx is installed; nothing here uses it" \
                 "(systemctl disable --now nginx stops it)" ;;
        redis-server)
            echo "deps: note: Debian starts its own Redis on 127.0.0.1:6379" \
                 "when redis-server is installed; nothing here uses it" \
                 "(systemctl disable --now redis-server stops it)" ;;
    esac
done

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "deps: missing packages and not root; run as root:" >&2
        echo "    apt-get update && apt-get install" \
             "--no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

before=$(dpkg-query -W -f='${db:Status-Abbrev}\n' | grep -c '^ii' || true)

# wait for another apt or dpkg to finish rather than fail
lock=(-o DPkg::Lock::Timeout=600)

"${sudo[@]}" apt-get "${lock[@]}" update -q
"${sudo[@]}" apt-get "${lock[@]}" install -q -y --no-install-recommends \
    "${missing[@]}"

after=$(dpkg-query -W -f='${db:Status-Abbrev}\n' | grep -c '^ii' || true)
echo "deps: ${what:-done}: $((after - before)) packages installed"
