#!/usr/bin/env bash
#
# "make test-fresh": README's set-up, verbatim, on a fresh Debian 12.
#
# A throw-away Debian 12 root is made with debootstrap from the mirror of
# this machine's apt sources, which are copied in (the Debian ones: those
# of bookworm's suites).  In it, as root: the set-up lines of README.md
# (between "<!-- fresh: begin -->" and "<!-- fresh: end -->"), which
# clone the project into /root/project and run "make run"; then make stop,
# make test, make test-browser and make deb, and the package is installed
# with apt-get, checked with nginx -t and purged.  The time and the
# packages each step installed are reported at the end (and in
# build/fresh/report.txt).  The clone is of the checkout's HEAD: what is
# not committed is not tested.
#
# Services are not started in the root (policy-rc.d): it shares this
# machine's network, and Debian's nginx and Redis would take its ports 80
# and 6379.  The root's /proc, /sys and /dev are mounted for the steps and
# unmounted after; the root is removed unless FRESH_KEEP=1.
#
# usage: scripts/test-fresh.sh (as root)
#
# environment:
#   FRESH_DIR       where to make the root (a new /var/tmp/history-fresh.*)
#   FRESH_KEEP      1: keep the root
#   FRESH_STEPS     the steps after the set-up (default: stop test
#                   test-browser deb package)
#   RUN_PORT, RUN_REDIS_PORT, TEST_NGINX_PORT, TEST_NGINX_REDIS_PORT,
#   BROWSER_PORT, BROWSER_REDIS_PORT, BROWSER_DRIVER_PORT, DEB_TEST_PORT,
#   DEB_TEST_REDIS_PORT: passed on to make in the root, if set

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
report=$top/build/fresh/report.txt
steps=${FRESH_STEPS:-stop test test-browser deb package}

if [ "$(id -u)" -ne 0 ]; then
    echo "test-fresh: needs root (debootstrap, chroot, mount)" >&2
    exit 1
fi

say() {
    printf '\n==> test-fresh: %s\n\n' "$*"
}

# The apt sources of this machine: the files in sources.list(.d) whose
# suites are all bookworm's, so that the new root can use them with the
# keyring debootstrap puts in it.

source_files() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        if suites "$f" | grep -q . \
           && ! suites "$f" \
                | grep -qvE '^bookworm(-updates|-security|-backports)?$'
        then
            echo "$f"
        fi
    done
}

# the suites a sources file names, one a line
suites() {
    case "$1" in
        *.sources)
            sed -n 's/^Suites:[[:space:]]*//p' "$1" | tr ' \t' '\n\n' \
            | sed '/^$/d' ;;
        *)
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$1" \
            | awk '$1 == "deb" || $1 == "deb-src" { print $3 }' ;;
    esac
}

# the first URI that serves bookworm itself: the mirror for debootstrap
mirror() {
    local f
    for f in $(source_files); do
        case "$f" in
            *.sources)
                awk 'BEGIN { RS = ""; FS = "\n" }
                     {
                         uri = ""; deb = 0; bw = 0
                         for (i = 1; i <= NF; i++) {
                             if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/)
                                 deb = 1
                             if ($i ~ /^Suites:/ \
                                 && $i ~ /[ \t]bookworm([ \t]|$)/)
                                 bw = 1
                             if ($i ~ /^URIs:/) {
                                 split($i, u, /[ \t]+/); uri = u[2]
                             }
                         }
                         if (deb && bw && uri != "") { print uri; exit }
                     }' "$f" ;;
            *)
                sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" \
                | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' ;;
        esac
    done | head -n 1
}

"$top/scripts/deps.sh" --for 'make test-fresh' debootstrap git

url=$(mirror)
if [ -z "$url" ]; then
    echo "test-fresh: no bookworm mirror in this machine's apt sources" >&2
    exit 1
fi

dir=${FRESH_DIR:-$(mktemp -d /var/tmp/history-fresh.XXXXXX)}
root=$dir/root
mkdir -p "$dir" "$(dirname "$report")"

mounted() {
    awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' \
        /proc/mounts
}

cleanup() {
    local pid link

    # processes a failed step left in the root, by their pids
    for link in /proc/[0-9]*/root; do
        [ "$(readlink "$link" 2>/dev/null)" = "$root" ] || continue
        pid=${link#/proc/}
        pid=${pid%/root}
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 1

    mounted | sort -r | while read -r m; do
        umount -R "$m" 2>/dev/null || umount -l "$m" || true
    done

    if [ -n "$(mounted)" ]; then
        echo "test-fresh: still mounted under $root, not removed:" >&2
        mounted >&2
    elif [ "${FRESH_KEEP:-0}" = 1 ]; then
        echo "test-fresh: kept $root"
    else
        rm -rf "$dir"
    fi
}

trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$SECONDS

say "debootstrap bookworm $root (mirror of this machine's apt sources)"
t0=$SECONDS
debootstrap bookworm "$root" "$url" > "$dir/debootstrap.log" 2>&1 || {
    tail -n 30 "$dir/debootstrap.log"
    exit 1
}
t_debootstrap=$((SECONDS - t0))

# this machine's Debian sources, its resolver; no services started
rm -f "$root/etc/apt/sources.list"
for f in $(source_files); do
    mkdir -p "$root$(dirname "$f")"
    cp "$f" "$root$f"
    echo "test-fresh: apt sources: $f"
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"

# the project, as a repository to clone from: the checkout's HEAD
git clone -q --bare "$top" "$root/srv/project.git"

count() {
    chroot "$root" dpkg-query -W -f='${db:Status-Abbrev} ${Installed-Size}\n' \
    | awk '/^ii/ { n++; kb += $2 } END { printf "%d %d\n", n, kb / 1024 }'
}

# each step: its time and what it installed
results=()

step() {
    local name=$1 script=$2 t0 before after rc=0

    say "$name"
    printf '%s\n' "$script" | sed 's/^/    /'
    echo

    before=$(count)
    t0=$SECONDS
    env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive REPO=/srv/project.git \
        "${ports[@]}" \
        chroot "$root" /bin/bash -euo pipefail -c "cd /root && $script" \
        < /dev/null 2>&1 | tee -a "$dir/steps.log" || rc=$?
    after=$(count)

    results+=("$(printf '%-18s %4d s  %4d packages  %5d MB  %s' "$name" \
        $((SECONDS - t0)) $(( ${after% *} - ${before% *} )) \
        $(( ${after#* } - ${before#* } )) \
        "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")")")

    if [ $rc -ne 0 ]; then
        echo "test-fresh: $name failed"
        return 1
    fi
}

ports=()
for v in RUN_PORT RUN_REDIS_PORT TEST_NGINX_PORT TEST_NGINX_REDIS_PORT \
         BROWSER_PORT BROWSER_REDIS_PORT BROWSER_DRIVER_PORT DEB_TEST_PORT \
         DEB_TEST_REDIS_PORT; do
    if [ -n "${!v:-}" ]; then
        ports+=("$v=${!v}")
    fi
done

base=$(count)

# README's set-up, verbatim
setup=$(git --git-dir="$root/srv/project.git" show HEAD:README.md \
        | sed -n '/<!-- fresh: begin -->/,/<!-- fresh: end -->/{
                      /<!--/d; /^```/d; p; }')
if [ -z "$setup" ]; then
    echo "test-fresh: no set-up between <!-- fresh: begin/end --> in README.md" >&2
    exit 1
fi

failed=0
step "set-up" "$setup" || failed=1

for s in $steps; do
    [ $failed -eq 0 ] || break
    case "$s" in
        stop)
            # the demo that "make run" left running serves the shop
            step "make stop" 'cd project
port=${RUN_PORT:-8080}
page=$(curl -fsS -c jar http://127.0.0.1:$port/)
grep -q "id=\"catalogue\"" <<< "$page"
curl -fsS -b jar -c jar http://127.0.0.1:$port/product/3 >/dev/null
page=$(curl -fsS -b jar http://127.0.0.1:$port/product/5)
grep -q "shop.strip(\[\"3\"\]" <<< "$page"
rm -f jar
make stop' || failed=1 ;;
        package)
            step "package" 'cd project
deb=$(ls build/deb/libnginx-mod-http-history_*_amd64.deb)
apt-get install -y "./$deb"
test -L /etc/nginx/modules-enabled/50-mod-http-history.conf
nginx -t
nginx -T 2>/dev/null | grep "load_module modules/ngx_http_history_module.so"
apt-get purge -y libnginx-mod-http-history
test ! -e /etc/nginx/modules-enabled/50-mod-http-history.conf
nginx -t' || failed=1 ;;
        *)
            step "make $s" "cd project && make $s" || failed=1 ;;
    esac
done

{
    echo "test-fresh: $(date -u '+%Y-%m-%d %H:%M UTC'), Debian $(cat "$root/etc/debian_version")," \
         "$(nproc) CPUs"
    printf '%-18s %4d s  %4d packages  %5d MB  (the base system)\n' \
        debootstrap "$t_debootstrap" ${base% *} ${base#* }
    printf '%s\n' "${results[@]}"
    echo "total              $((SECONDS - t_start)) s," \
         "$(( $(count | cut -d' ' -f1) - ${base% *} )) packages installed;" \
         "$([ $failed -eq 0 ] && echo ok || echo FAILED)"
} | tee "$report"

exit $failed
