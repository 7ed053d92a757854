#!/usr/bin/env bash
#
# "make run" / "make stop": a private Redis and Debian's nginx serving
# examples/ with the freshly built module, everything under build/run/.
#
# usage: scripts/demo.sh start | stop
#
# environment (set by the Makefile):
#   RUN_DIR         prefix directory (build/run)
#   RUN_HOST        address nginx listens on (127.0.0.1)
#   RUN_PORT        port nginx listens on (8080)
#   RUN_REDIS_PORT  port of the demo Redis (16380)
#   MODULE          path of ngx_http_history_module.so
#   NGINX_BIN       nginx binary (/usr/sbin/nginx)

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

RUN_DIR=${RUN_DIR:-$top/build/run}
RUN_HOST=${RUN_HOST:-127.0.0.1}
RUN_PORT=${RUN_PORT:-8080}
RUN_REDIS_PORT=${RUN_REDIS_PORT:-16380}
MODULE=${MODULE:-$top/build/ngx_http_history_module.so}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

# nginx takes an environment variable NGINX for inherited sockets
unset NGINX

case "$RUN_DIR" in /*) ;; *) RUN_DIR=$PWD/$RUN_DIR ;; esac
pidfile=$RUN_DIR/logs/nginx.pid

# the pid from nginx's pid file, if that process is still nginx
nginx_pid() {
    local pid comm

    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case "$comm" in
        nginx*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

stop() {
    local pid pub

    if pid=$(nginx_pid); then
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            sleep 1
        fi
        echo "nginx: stopped (pid $pid)"
    fi
    rm -f "$pidfile"

    "$top/scripts/redis.sh" stop "$RUN_DIR/redis"

    # the copy of the pages made by render(), if any: only a directory
    # this script made
    if [ -f "$RUN_DIR/public" ]; then
        pub=$(cat "$RUN_DIR/public")
        case "$pub" in
            /tmp/history-demo.??????) rm -rf "$pub" ;;
        esac
        rm -f "$RUN_DIR/public"
    fi
}

# Under root, the workers run as an unprivileged user, www-data (the user
# of Debian's nginx) or else nobody.  When that user cannot read the pages
# where they are (a checkout in /root, mode 700), they are served from a
# copy in a directory of their own under /tmp, removed by "stop"; the
# temporary files go there too.  Otherwise the workers run as the caller.
worker_user() {
    local u

    for u in www-data nobody; do
        if id -u "$u" >/dev/null 2>&1; then
            echo "$u"
            return 0
        fi
    done
    return 1
}

can_read() {
    local user=$1 dir=$2

    runuser -u "$user" -- test -r "$dir/index.html" -a -x "$dir" \
        2>/dev/null
}

render() {
    local user= group html=$top/examples/html tmp=$RUN_DIR/tmp pub

    if [ "$(id -u)" -eq 0 ] && user=$(worker_user); then
        group=$(id -gn "$user")

        if ! can_read "$user" "$html"; then
            pub=$(mktemp -d /tmp/history-demo.XXXXXX)
            chmod 755 "$pub"
            cp -R "$html" "$pub/html"
            chmod -R a+rX "$pub/html"
            mkdir -m 700 "$pub/tmp"
            chown "$user:$group" "$pub/tmp"
            echo "$pub" > "$RUN_DIR/public"
            echo "demo: $user cannot read $html: serving a copy in $pub/html"
            html=$pub/html
            tmp=$pub/tmp
        fi

        echo "demo: workers run as $user"
        user="user $user $group;"
    fi

    # the placeholders of the directives; the comments keep theirs
    sed -e "/^[[:space:]]*#/!{
                s|@USER@|$user|g
                s|@MODULE@|$MODULE|g
                s|@REDIS_PORT@|$RUN_REDIS_PORT|g
                s|@LISTEN@|$RUN_HOST:$RUN_PORT|g
                s|@HTML@|$html|g
                s|@TMP@|$tmp|g
            }" \
        "$top/examples/nginx.conf" > "$RUN_DIR/nginx.conf"
}

start() {
    local url

    [ -f "$MODULE" ] || { echo "demo: $MODULE not built" >&2; exit 1; }

    stop >/dev/null

    mkdir -p "$RUN_DIR/logs" "$RUN_DIR/tmp" "$RUN_DIR/redis"
    render

    "$top/scripts/redis.sh" start "$RUN_DIR/redis" "$RUN_REDIS_PORT"

    if ! "$NGINX_BIN" -p "$RUN_DIR/" -c nginx.conf -e logs/error.log -q -t \
       || ! "$NGINX_BIN" -p "$RUN_DIR/" -c nginx.conf -e logs/error.log
    then
        echo "nginx: failed to start, see $RUN_DIR/logs/error.log" \
             "(port in use? make run RUN_PORT=8081)" >&2
        "$top/scripts/redis.sh" stop "$RUN_DIR/redis"
        exit 1
    fi

    for _ in $(seq 50); do
        nginx_pid >/dev/null && break
        sleep 0.1
    done
    echo "nginx: listening on $RUN_HOST:$RUN_PORT (pid $(nginx_pid), prefix $RUN_DIR)"

    url=http://$RUN_HOST:$RUN_PORT
    cat <<EOT

The demo shop is running.  Open $url/ in a browser and click
around: each product page shows a "Recently viewed" strip, filled by nginx
with SSI (/product/N) or fetched by the page (/fetch/product/N), how often
the product was seen, and how many visitors are online.

Or with curl, as visitor "demo":

    curl -b sessionid=demo $url/product/4
    curl -b sessionid=demo $url/product/7
    curl -b sessionid=demo $url/history.json

see what nginx recorded, most recent first:

    redis-cli -p $RUN_REDIS_PORT LRANGE history:demo 0 -1

how many are online and how often products were seen:

    curl $url/online.json
    curl '$url/views.json?ids=4,7'

and forget your history:

    curl -X DELETE -b sessionid=demo $url/history.json

Logs are in $RUN_DIR/logs/.  Stop both servers with:

    make stop

EOT
}

case "${1:-}" in
    start) start ;;
    stop)  stop ;;
    *)     echo "usage: $0 start | stop" >&2; exit 2 ;;
esac
