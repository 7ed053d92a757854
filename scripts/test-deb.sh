#!/usr/bin/env bash
#
# "make test-deb": the built package, as Debian's nginx would use it.  The
# .deb is unpacked with dpkg-deb -x (nothing is installed); its layout,
# dependencies and maintainer scripts are checked; then Debian's nginx
# loads the module through the package's own load_module snippet, checks
# the configuration (nginx -t), records two views of a visitor into a
# private Redis and serves them back.  The status is non-zero on any
# failure.
#
# usage: scripts/test-deb.sh DEB
#
# environment:
#   DEB_TEST_DIR         scratch directory (build/deb-test)
#   DEB_TEST_PORT        port of the test's nginx (18093)
#   DEB_TEST_REDIS_PORT  port of its Redis (18094)
#   NGINX_BIN            nginx (/usr/sbin/nginx)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ $# -ne 1 ]; then
    echo "usage: $0 DEB" >&2
    exit 2
fi

deb=$1
dir=${DEB_TEST_DIR:-$top/build/deb-test}
port=${DEB_TEST_PORT:-18093}
rport=${DEB_TEST_REDIS_PORT:-18094}
nginx=${NGINX_BIN:-/usr/sbin/nginx}

unset NGINX

pkg=libnginx-mod-http-history
so=usr/lib/nginx/modules/ngx_http_history_module.so
snippet=usr/share/nginx/modules-available/mod-http-history.conf
enabled=/etc/nginx/modules-enabled/50-mod-http-history.conf

tests=0
failed=0

check() {
    local ok=$1 name=$2
    tests=$((tests + 1))
    if [ "$ok" = 1 ]; then
        echo "ok $tests - $name"
    else
        echo "not ok $tests - $name"
        failed=$((failed + 1))
    fi
}

is() {
    local got=$1 expected=$2 name=$3
    if [ "$got" = "$expected" ]; then
        check 1 "$name"
    else
        check 0 "$name"
        echo "#   got:      '$got'"
        echo "#   expected: '$expected'"
    fi
}

has() {
    [ -e "$1" ] && echo 1 || echo 0
}

nginx_stop() {
    local pid
    pid=$(cat "$dir/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
}

cleanup() {
    nginx_stop
    "$top/scripts/redis.sh" stop "$dir/redis" >/dev/null
}

trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$dir"
mkdir -p "$dir/redis" "$dir/tmp"
root=$dir/root

echo "# $(basename "$deb"), unpacked into $root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$dir/control"

# the layout of Debian's own libnginx-mod-* packages
is "$(dpkg-deb -f "$deb" Package)" "$pkg" "the package's name"
check "$(has "$root/$so")" "the module in /usr/lib/nginx/modules/"
is "$(cat "$root/$snippet" 2>/dev/null)" \
   "load_module modules/ngx_http_history_module.so;" \
   "its load_module snippet in /usr/share/nginx/modules-available/"
check "$(has "$root/usr/share/doc/$pkg/copyright")" "the copyright file"
check "$(has "$root/usr/share/doc/$pkg/changelog.gz")" "the changelog"
check "$(has "$root/usr/share/doc/$pkg/docs/directives.md.gz")" \
      "the documentation"
check "$(has "$root/usr/share/doc/$pkg/examples/nginx.conf")" \
      "the examples"

# the dependencies: the nginx ABI it was built for, which this machine's
# nginx provides, and hiredis's library
depends=$(dpkg-deb -f "$deb" Depends)
echo "# Depends: $depends"
abi=$(echo "$depends" | grep -o 'nginx-abi-[^ ,]*' || true)
check "$([ -n "$abi" ] && echo 1 || echo 0)" "depends on an nginx ABI"
provides=$(dpkg-query -W -f='${Provides}' nginx 2>/dev/null || true)
check "$(echo "$provides" | grep -qw -- "$abi" && echo 1 || echo 0)" \
      "which the installed nginx provides ($provides)"
check "$(echo "$depends" | grep -q 'libhiredis0\.14' && echo 1 || echo 0)" \
      "depends on libhiredis0.14"
shlib=$(ldd "$root/$so" | awk '/libhiredis/ { print $3 }')
check "$([ -n "$shlib" ] && dpkg -S "*/$(basename "$shlib")" 2>/dev/null \
         | grep -q '^libhiredis0\.14' && echo 1 || echo 0)" \
      "the module links with libhiredis0.14's library ($shlib)"

# enabled on install, removed on purge (dh_nginx's scripts)
check "$(grep -q "ln -sf /usr/share/nginx/modules-available/\$from" \
             "$dir/control/postinst" \
         && grep -q 'mod-http-history.conf:50-mod-http-history.conf' \
             "$dir/control/postinst" && echo 1 || echo 0)" \
      "postinst links $enabled"
check "$(grep -q '"purge"' "$dir/control/postrm" \
         && grep -q 'rm /etc/nginx/modules-enabled/$to' \
             "$dir/control/postrm" && echo 1 || echo 0)" \
      "postrm removes it on purge"

# Debian's nginx loads the module through the snippet: its
# "modules/ngx_http_history_module.so" is relative to the prefix, which
# here is the unpacked /usr/lib/nginx
cat > "$dir/nginx.conf" <<END
include $root/$snippet;

worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    history_redis 127.0.0.1:$rport;

    server {
        listen 127.0.0.1:$port;

        location ~ ^/product/(\d+)$ {
            history_record \$1;
            return 200 "product \$1\n";
        }

        location = /history {
            history_serve;
        }
    }
}
END

ngx=("$nginx" -p "$root/usr/lib/nginx/" -c "$dir/nginx.conf" -e "$dir/error.log")

out=$("${ngx[@]}" -t 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/#   /'
is "$rc" 0 "nginx -t loads the packaged module"

"$top/scripts/redis.sh" start "$dir/redis" "$rport" >/dev/null
"${ngx[@]}"

for _ in $(seq 50); do
    [ -s "$dir/nginx.pid" ] && break
    sleep 0.1
done

url=http://127.0.0.1:$port
is "$(curl -s -b sessionid=deb-test "$url/product/42")" "product 42" \
   "a product page"
curl -s -o /dev/null -b sessionid=deb-test "$url/product/7"

list=
for _ in $(seq 50); do
    list=$(redis-cli -p "$rport" LRANGE history:deb-test 0 -1 | tr '\n' ' ')
    [ "$list" = "7 42 " ] && break
    sleep 0.1
done
is "$list" "7 42 " "the views are recorded in Redis, newest first"
is "$(curl -s -b sessionid=deb-test "$url/history")" '["7","42"]' \
   "and served back by history_serve"

echo "1..$tests"
if [ $failed -ne 0 ]; then
    echo "# failed $failed of $tests; nginx's log: $dir/error.log"
    exit 1
fi
