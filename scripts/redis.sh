#!/usr/bin/env bash
#
# Start or stop a private, throw-away redis-server for tests and the demo.
# It listens on 127.0.0.1 only, keeps nothing on disk, and lives in its own
# directory (pid file, log).  A system Redis is never touched.
#
# usage: scripts/redis.sh start DIR PORT
#        scripts/redis.sh stop  DIR

set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage

cmd=$1
dir=$2
pidfile=$dir/redis.pid

# the pid from the pid file, if that process is still a redis-server
running_pid() {
    local pid comm

    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case "$comm" in
        redis-server*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

stop() {
    local pid

    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "redis: stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

start() {
    local port=$1 pid

    case "$port" in
        ''|*[!0-9]*) echo "redis: bad port '$port'" >&2; exit 2 ;;
        6379) echo "redis: refusing to use 6379, the system Redis port" >&2
              exit 2 ;;
    esac

    stop >/dev/null

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    pidfile=$dir/redis.pid
    rm -f "$dir/redis.log"

    redis-server --port "$port" --bind 127.0.0.1 \
                 --save '' --appendonly no \
                 --daemonize yes \
                 --dir "$dir" --pidfile "$pidfile" --logfile "$dir/redis.log"

    # wait until our own server answers: the pid it reports must be the
    # one in our pid file, so a different Redis on that port does not count
    for _ in $(seq 100); do
        if pid=$(running_pid) \
           && redis-cli -p "$port" INFO server 2>/dev/null \
              | tr -d '\r' | grep -qx "process_id:$pid" \
           && [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ]
        then
            echo "redis: listening on 127.0.0.1:$port (pid $pid, dir $dir)"
            return 0
        fi
        if grep -q 'aborting' "$dir/redis.log" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done

    echo "redis: failed to start on 127.0.0.1:$port; $dir/redis.log:" >&2
    tail -n 5 "$dir/redis.log" >&2 2>/dev/null || true
    echo "redis: is the port in use? choose another one" \
         "(TEST_NGINX_REDIS_PORT=, RUN_REDIS_PORT=)" >&2
    stop >/dev/null
    exit 1
}

case "$cmd" in
    start) [ $# -eq 3 ] || usage; start "$3" ;;
    stop)  stop ;;
    *)     usage ;;
esac
