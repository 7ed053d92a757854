# Helpers for bench/*.sh: servers, snapshots, one wrk round, medians.
# Sourced, not run.  Everything listens on 127.0.0.1, on ports 18000-18999
# unless BENCH_REDIS_PORT and BENCH_PORT_* say otherwise.

# shellcheck shell=bash

BENCH_TOP=${BENCH_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BENCH_SRC=$BENCH_TOP/bench
BENCH_DIR=${BENCH_DIR:-$BENCH_TOP/build/bench}
BENCH_RESULTS=$BENCH_DIR/results
ROUNDS_TSV=${ROUNDS_TSV:-$BENCH_RESULTS/rounds.tsv}

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE_SO=${MODULE_SO:-$BENCH_TOP/build/ngx_http_history_module.so}
# the module built from an earlier commit (make bench BENCH_BASE=<commit>):
# with it, a third nginx side, "base", runs next to "module" and "plain"
BENCH_BASE_SO=${BENCH_BASE_SO:-}
BENCH_BASE_REV=${BENCH_BASE_REV:-}
PY=/usr/bin/python3

BENCH_LOCK=${BENCH_LOCK:-/tmp/heavy.lock}

BENCH_REDIS_PORT=${BENCH_REDIS_PORT:-18379}
BENCH_REDIS_TLS_PORT=${BENCH_REDIS_TLS_PORT:-18380}   # the same Redis, TLS
BENCH_PORT_MODULE=${BENCH_PORT_MODULE:-18080}     # its backend: +2
BENCH_PORT_PLAIN=${BENCH_PORT_PLAIN:-18081}       # its backend: +2
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18084}         # its backend: +2
BENCH_PORT_DJANGO=${BENCH_PORT_DJANGO:-18100}
BENCH_PORT_CALLGRIND=${BENCH_PORT_CALLGRIND:-18200}   # its backend: +2
BENCH_PORT_CLUSTER=${BENCH_PORT_CLUSTER:-18086}   # its backend: +2
BENCH_CLUSTER_PORT=${BENCH_CLUSTER_PORT:-18400}   # six cluster nodes from it
BENCH_PORT_TLS=${BENCH_PORT_TLS:-18090}           # its backend: +2
BENCH_PORT_CTLS=${BENCH_PORT_CTLS:-18094}         # its backend: +2
# with CLUSTER_TLS=1, the cluster's nodes have TLS ports too, from +10

BENCH_QUICK=${BENCH_QUICK:-0}
if [ "$BENCH_QUICK" = 1 ]; then
    BENCH_ROUNDS=${BENCH_ROUNDS:-2}
    BENCH_SECONDS=${BENCH_SECONDS:-2}
else
    BENCH_ROUNDS=${BENCH_ROUNDS:-5}
    BENCH_SECONDS=${BENCH_SECONDS:-4}
fi
BENCH_CONNS=${BENCH_CONNS:-50}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_WORKERS=${BENCH_WORKERS:-1}
BENCH_GUNICORN_WORKERS=${BENCH_GUNICORN_WORKERS:-3}
BENCH_GUNICORN_CLASS=${BENCH_GUNICORN_CLASS:-sync}
BENCH_LENGTH=${BENCH_LENGTH:-5}
export BENCH_VISITORS=${BENCH_VISITORS:-10000}
export BENCH_PRODUCTS=${BENCH_PRODUCTS:-10000}

CLK_TCK=$(getconf CLK_TCK)

# the lock taken around every heavy section, so that load never overlaps
# with other heavy work on the machine (test suites): fd 9, and closed for
# every server started inside, so that no daemon keeps it
locked() {
    local rc=0 t0
    if [ -n "${BENCH_LOCKED:-}" ]; then
        "$@"                      # already held, by this script or its caller
        return
    fi
    exec 9>>"$BENCH_LOCK"
    if ! flock -n 9; then
        echo "  (waiting for $BENCH_LOCK)"
        t0=$(date +%s)
        flock 9
        echo $(( $(date +%s) - t0 )) >> "$BENCH_DIR/lock-waits"
    fi
    BENCH_LOCKED=1
    export BENCH_LOCKED
    "$@" || rc=$?
    unset BENCH_LOCKED
    flock -u 9
    exec 9>&-
    return $rc
}

die() {
    echo "bench: $*" >&2
    exit 1
}

wait_port() {          # port [seconds]
    local i
    for i in $(seq $((${2:-10} * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}


# Redis

rcli() {
    redis-cli -p "$BENCH_REDIS_PORT" "$@"
}

# the Redis servers whose figures count: the single one, unless a round
# of the cluster side sets REDIS_PORTS to the cluster's masters
redis_ports() {
    echo "${REDIS_PORTS:-$BENCH_REDIS_PORT}"
}

redis_start() {
    "$BENCH_TOP/scripts/redis.sh" start "$BENCH_DIR/redis" \
        "$BENCH_REDIS_PORT" 9>&- >/dev/null
    rcli CONFIG SET save "" >/dev/null
}

redis_stop() {
    "$BENCH_TOP/scripts/redis.sh" stop "$BENCH_DIR/redis" >/dev/null || true
}

# the same private Redis, listening on BENCH_REDIS_TLS_PORT too (TLS, no
# client certificates), with certificates made by the tests' helper
redis_tls_start() {
    local c=$BENCH_DIR/certs

    perl -I"$BENCH_TOP/t/lib" -MRedisTopology -e 'make_certs($ARGV[0])' "$c" \
        || die "the test certificates could not be made"
    redis_stop
    mkdir -p "$BENCH_DIR/redis"
    redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 \
        --tls-port "$BENCH_REDIS_TLS_PORT" --tls-cert-file "$c/server.crt" \
        --tls-key-file "$c/server.key" --tls-ca-cert-file "$c/ca.crt" \
        --tls-auth-clients no --save '' --appendonly no \
        --dir "$BENCH_DIR/redis" --pidfile "$BENCH_DIR/redis/redis.pid" \
        --logfile "$BENCH_DIR/redis/redis.log" --daemonize yes 9>&- \
        || die "redis-server with --tls-port did not start"
    wait_port "$BENCH_REDIS_PORT" || die "Redis is not listening"
    wait_port "$BENCH_REDIS_TLS_PORT" || die "Redis is not listening on TLS"
}

redis_pid() {
    cat "$BENCH_DIR/redis/redis.pid"
}

cmdstat() {            # command -> calls so far, of every redis_ports
    local p
    for p in $(redis_ports); do
        redis-cli -p "$p" INFO commandstats 2>/dev/null | tr -d '\r'
    done | awk -F'[:=,]' -v c="cmdstat_$1" '
        $1 == c { n += $3 } END { printf "%d\n", n }'
}

redis_cpu_us() {       # user + system CPU time of the servers, microseconds
    local p
    for p in $(redis_ports); do
        redis-cli -p "$p" INFO cpu 2>/dev/null | tr -d '\r'
    done | awk -F: '
        /^used_cpu_(sys|user):/ { s += $2 }
        END { printf "%d\n", s * 1000000 }'
}

redis_mem() {          # used_memory in bytes
    rcli INFO memory | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)$/\1/p'
}

# every visitor v1..vN gets the list L,...,2,1 (L: BENCH_LENGTH, 5 unless
# told) under each prefix given
prefill() {            # visitors prefix...
    local n=$1 prefix from to step=100000
    shift
    for prefix in "$@"; do
        for ((from = 1; from <= n; from += step)); do
            to=$((from + step - 1))
            [ "$to" -le "$n" ] || to=$n
            rcli EVAL "local ids = {}
                       for j = tonumber(ARGV[3]), 1, -1 do
                           ids[#ids + 1] = tostring(j)
                       end
                       for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
                           local k = KEYS[1] .. i
                           redis.call('DEL', k)
                           redis.call('RPUSH', k, unpack(ids))
                           redis.call('EXPIRE', k, 7776000)
                       end
                       return 1" 1 "${prefix}v" "$from" "$to" "$BENCH_LENGTH" \
                >/dev/null
        done
    done
}


# nginx: "module" (with the module), "plain" (the same without it) and,
# with BENCH_BASE_SO, "base" (the module's configuration, the base's .so)

# the nginx sides with a module: "module", and "base" when there is one
MODULE_SIDES=(module)
[ -z "$BENCH_BASE_SO" ] || MODULE_SIDES+=(base)

is_module_side() {
    case $1 in
        module|base|cluster|tls|ctls) return 0 ;;
        *)           return 1 ;;
    esac
}

# the sides of a comparison against plain nginx: plain module [base]
nginx_sides() {
    echo plain "${MODULE_SIDES[@]}"
}

side_port() {
    case $1 in
        module)    echo "$BENCH_PORT_MODULE" ;;
        plain)     echo "$BENCH_PORT_PLAIN" ;;
        base)      echo "$BENCH_PORT_BASE" ;;
        tls)       echo "$BENCH_PORT_TLS" ;;
        django)    echo "$BENCH_PORT_DJANGO" ;;
        cluster)   echo "$BENCH_PORT_CLUSTER" ;;
        ctls)      echo "$BENCH_PORT_CTLS" ;;
        *)         die "no port for side $1" ;;
    esac
}

# the copy of a side's module that its nginx loads (bench/run.sh makes it);
# the cluster and TLS sides load the module side's
side_so() {
    case $1 in
        cluster|tls|ctls) echo "$BENCH_DIR/module.so" ;;
        *)         echo "$BENCH_DIR/$1.so" ;;
    esac
}

# render DIR SIDE(module|base|plain|cluster|tls|ctls) PORT WORKERS
# MASTER(on|off); the lines marked #T are the TLS sides' only (tls: the
# single Redis over TLS, ctls: the cluster over TLS)
nginx_render() {
    local dir=$1 side=$2 port=$3 workers=$4 master=$5 keep drop redis

    if is_module_side "$side"; then keep=M; drop=P; else keep=P; drop=M; fi
    case $side in
        tls|ctls) keep='[MT]' ;;
        *)        drop="[${drop}T]" ;;
    esac

    redis="127.0.0.1:$BENCH_REDIS_PORT"
    if [ "$side" = cluster ]; then
        redis="127.0.0.1:$BENCH_CLUSTER_PORT"
        redis="$redis 127.0.0.1:$((BENCH_CLUSTER_PORT + 1)) cluster"
    fi
    if [ "$side" = tls ]; then
        redis="127.0.0.1:$BENCH_REDIS_TLS_PORT tls"
    fi
    if [ "$side" = ctls ]; then
        redis="127.0.0.1:$((BENCH_CLUSTER_PORT + 10))"
        redis="$redis 127.0.0.1:$((BENCH_CLUSTER_PORT + 11)) cluster tls"
    fi

    mkdir -p "$dir/tmp"
    sed -e "/#$drop\$/d" -e "s/[[:space:]]*#$keep\$//" \
        -e "s|@DIR@|$dir|g" -e "s|@SO@|$(side_so "$side")|g" \
        -e "s|@WORKERS@|$workers|g" -e "s|@MASTER@|$master|g" \
        -e "s|@PORT@|$port|g" -e "s|@BACKEND_PORT@|$((port + 2))|g" \
        -e "s|@REDIS@|$redis|g" -e "s|@CERTS@|$BENCH_DIR/certs|g" \
        -e "s|@LENGTH@|$BENCH_LENGTH|g" \
        -e "s|@HTML@|$BENCH_SRC/html|g" \
        "$BENCH_SRC/nginx.conf.in" > "$dir/nginx.conf"
}

nginx_start() {        # side [workers]
    local side=$1 workers=${2:-$BENCH_WORKERS} dir=$BENCH_DIR/nginx-$1

    nginx_stop "$side"
    nginx_render "$dir" "$side" "$(side_port "$side")" "$workers" on
    "$NGINX_BIN" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" 9>&- \
        || die "nginx ($side) did not start: $dir/error.log"
    wait_port "$(side_port "$side")" || die "nginx ($side) is not listening"
    if is_module_side "$side"; then
        # every worker connected to Redis (in a cluster, to every master)
        local i
        for i in $(seq 50); do
            [ "$(hstat connected "$side")" = "$workers" ] && break
            sleep 0.1
        done
    fi
}

nginx_master() {
    local pid
    pid=$(cat "$BENCH_DIR/nginx-$1/nginx.pid" 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nginx ] || return 1
    echo "$pid"
}

nginx_stop() {
    local pid i
    pid=$(nginx_master "$1") || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.5
}

nginx_workers() {      # side -> worker pids
    local pid
    pid=$(nginx_master "$1") || return 0
    pgrep -P "$pid" || true
}

# stub_status: the number of client requests so far (this one included)
stub_requests() {
    curl -s "http://127.0.0.1:$(side_port "$1")/_status" \
        | awk 'NR == 3 { print $3 }'
}

# history_stats: one field of the totals, of side "module" unless told
# (or HSTAT_SIDE says)
hstat() {              # field [side]
    curl -s "http://127.0.0.1:$(side_port "${2:-${HSTAT_SIDE:-module}}")/_stats" \
        | sed -n "s/.*\"total\":{[^}]*\"$1\":\([0-9]*\).*/\1/p"
}


# Django under gunicorn, Debian's packages, /usr/bin/python3

django_start() {
    django_stop
    mkdir -p "$BENCH_DIR/django"
    (cd "$BENCH_SRC/django" \
     && BENCH_REDIS_PORT=$BENCH_REDIS_PORT PYTHONDONTWRITEBYTECODE=1 \
        exec "$PY" -m gunicorn --bind "127.0.0.1:$BENCH_PORT_DJANGO" \
            --workers "$BENCH_GUNICORN_WORKERS" \
            --worker-class "$BENCH_GUNICORN_CLASS" \
            --backlog 4096 --daemon \
            --pid "$BENCH_DIR/django/gunicorn.pid" \
            --error-logfile "$BENCH_DIR/django/error.log" \
            wsgi:application) 9>&-
    wait_port "$BENCH_PORT_DJANGO" 20 || die "gunicorn did not start"
    curl -sf -b sessionid=v1 "http://127.0.0.1:$BENCH_PORT_DJANGO/product/1" \
        >/dev/null || die "the Django view fails: $BENCH_DIR/django/error.log"
}

django_master() {
    local pid
    pid=$(cat "$BENCH_DIR/django/gunicorn.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

django_stop() {
    local pid i
    pid=$(django_master) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

django_pids() {
    local pid
    pid=$(django_master) || return 0
    echo "$pid"
    pgrep -P "$pid" || true
}


# processes

cpu_ticks() {          # pid... -> user + system ticks
    local pid t=0 s
    for pid in "$@"; do
        # the fields after the command name (which may hold spaces)
        s=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $s
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

busy_ticks() {         # all CPUs: user nice system irq softirq, ticks
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

rss_kb() {             # pid... -> VmRSS, kB
    local pid t=0 v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

side_pids() {
    case $1 in
        module|base|plain|cluster|tls|ctls) nginx_workers "$1" ;;
        django)       django_pids ;;
    esac
}


# One round: wrk on one side, the figures before and after.
#
#   round SCENARIO SIDE ROUND PATH LANDED [PER_REQUEST]
#
# PATH is the request path ("%d" is the product; "nginx|django" when they
# differ), LANDED the Redis command whose calls count landed units on the
# module sides ("lpush", "lrange", "incr/2": the calls divided by 2), and
# PER_REQUEST how many requests nginx counts for one of wrk's (2 when
# nginx proxies to itself).  Appends one line to
# $ROUNDS_TSV ($BENCH_RESULTS/rounds.tsv):
#
#   scenario side round conns rps p50 p90 p99 p999 requests served landed
#   errors ngx_us/req redis_us/req app_us/req dropped+failed fallbacks
#   wrk_us/req other_cpus
#
# other_cpus: what the machine spent on anything but these processes
# during the round, in CPUs; a round disturbed by other work shows here.
#
# with latencies in microseconds and CPU time in microseconds per request.

round() {
    local scen=$1 side=$2 n=$3 path=$4 landed_cmd=${5:-} per=${6:-1} port
    local s0 s1 l0 l1 c0 c1 r0 r1 q0 q1 f0 f1 pids out line polls=0
    local div=1 cmd served landed wrkcpu b0 b1
    local HSTAT_SIDE=$side REDIS_PORTS=${REDIS_PORTS:-}

    # the cluster sides' Redis figures are the masters'
    case $side in
        cluster|ctls) REDIS_PORTS=$(cluster_masters) ;;
    esac

    port=$(side_port "$side")
    pids=$(side_pids "$side")
    if [ "$side" = django ]; then path=${path#*|}; else path=${path%|*}; fi
    cmd=${landed_cmd%/*}
    [ "$landed_cmd" = "$cmd" ] || div=${landed_cmd#*/}

    if is_module_side "$side"; then
        q0=$(( $(hstat dropped "$side") + $(hstat failed "$side") ))
        f0=$(hstat fallbacks "$side")
    fi
    if [ "$side" != django ]; then s0=$(stub_requests "$side"); fi
    l0=$( [ -n "$cmd" ] && cmdstat "$cmd" || echo 0)
    r0=$(redis_cpu_us)
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    b0=$(busy_ticks)

    # wrk's own CPU time too (bash's "time" of the child: user system)
    out=$( { TIMEFORMAT='WRKCPU %U %S'; time \
             BENCH_PATH=$path wrk -t "$BENCH_THREADS" -c "$BENCH_CONNS" \
                 -d "${BENCH_SECONDS}s" --timeout 5s \
                 -s "$BENCH_SRC/wrk/visit.lua" "http://127.0.0.1:$port"; \
           } 2>&1 )
    line=$(grep '^BENCH ' <<<"$out") \
        || die "wrk failed on $side: $out"
    wrkcpu=$(awk '/^WRKCPU/ { printf "%d", ($2 + $3) * 1e6 }' <<<"$out")

    b1=$(busy_ticks)
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    r1=$(redis_cpu_us)

    if is_module_side "$side"; then
        # until the worker's queues are empty: every unit answered
        while [ "$(hstat queue "$side")" != 0 ] && [ $polls -lt 100 ]; do
            polls=$((polls + 1))
            sleep 0.05
        done
        polls=$((polls + 1))
        q1=$(( $(hstat dropped "$side") + $(hstat failed "$side") ))
        f1=$(hstat fallbacks "$side")
        polls=$((polls + 3))
    fi
    l1=$( [ -n "$cmd" ] && cmdstat "$cmd" || echo 0)

    if [ "$side" != django ]; then
        s1=$(stub_requests "$side")
        # the requests nginx had: all but the figures' own
        served=$(( (s1 - s0 - 1 - polls) / per ))
    else
        served=
    fi
    landed=$(( (l1 - l0) / div ))

    awk -v scen="$scen" -v side="$side" -v n="$n" -v conns="$BENCH_CONNS" \
        -v served="$served" -v landed="$landed" -v cmd="$cmd" \
        -v cpu=$((c1 - c0)) -v tck="$CLK_TCK" -v rcpu=$((r1 - r0)) \
        -v lost=$(( ${q1:-0} - ${q0:-0} )) -v fb=$(( ${f1:-0} - ${f0:-0} )) \
        -v wrkcpu="$wrkcpu" -v busy=$((b1 - b0)) \
        -v line="$line" '
    BEGIN {
        split(line, kv, " ")
        for (i in kv) { split(kv[i], p, "="); f[p[1]] = p[2] }
        req = f["requests"]
        errors = f["errors_connect"] + f["errors_read"] + f["errors_write"] \
                 + f["errors_status"] + f["errors_timeout"]
        rps = req / (f["duration_us"] / 1e6)
        if (served == "") served = req
        if (cmd == "") landed = "-"
        # CPU per request: the server (nginx workers or gunicorn) and Redis
        ngx = cpu * 1e6 / tck / req
        if (side == "django") { app = ngx; ngx = 0 } else app = 0
        # the CPU the machine spent on anything else (other users, the
        # kernel outside these processes), in CPUs
        other = (busy / tck - cpu / tck - rcpu / 1e6 - wrkcpu / 1e6) \
                / (f["duration_us"] / 1e6)
        printf "%s\t%s\t%d\t%d\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.2f\n",
               scen, side, n, conns, rps, f["p50"], f["p90"], f["p99"],
               f["p999"], req, served, landed, errors, ngx, rcpu / req, app,
               lost, fb, wrkcpu / req, other
    }' >> "$ROUNDS_TSV"

    tail -n 1 "$ROUNDS_TSV" | awk -F'\t' '{
        printf "  %-8s %-7s round %d: %7d req/s  p50 %6.2f ms  p99 %6.2f ms", \
               $1, $2, $3, $5, $6 / 1000, $8 / 1000
        if ($12 != "-") printf "  in Redis %d/%d", $12, $11
        if ($13) printf "  errors %d", $13
        printf "  other CPU %.2f\n", $20 }'
}

# rounds SCENARIO PATH LANDED side...: warm-up, then BENCH_ROUNDS rounds,
# the sides alternating (A B, B A, A B, ...); ROUND_PER_REQUEST is round's
# PER_REQUEST
rounds() {
    local scen=$1 path=$2 landed=$3 i j side sides order
    shift 3
    sides=("$@")

    for side in "${sides[@]}"; do
        BENCH_SECONDS=1 ROUNDS_TSV=$BENCH_DIR/warmup.tsv \
            round "$scen" "$side" 0 "$path" "$landed" \
                  "${ROUND_PER_REQUEST:-1}" >/dev/null
    done

    for ((i = 1; i <= BENCH_ROUNDS; i++)); do
        if ((i % 2)); then
            order=("${sides[@]}")
        else
            order=()
            for ((j = ${#sides[@]} - 1; j >= 0; j--)); do
                order+=("${sides[j]}")
            done
        fi
        for side in "${order[@]}"; do
            round "$scen" "$side" "$i" "$path" "$landed" \
                  "${ROUND_PER_REQUEST:-1}"
        done
    done
}

# awk: medians, and the ratio of two sides round by round (a round runs
# both sides one after the other, so slow drifts of the machine cancel)
AWK_STATS='
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# the rounds of one scenario: R[side, round, column]
function load(    c) {
    if ($3 + 0 < 1) return
    NR_[$2]++
    if ($3 + 0 > MAXR) MAXR = $3 + 0
    for (c = 1; c <= NF; c++) R[$2, $3 + 0, c] = $c
}
function med(side, col,    n, i, a) {
    n = 0
    for (i = 1; i <= MAXR; i++)
        if ((side, i, col) in R) a[++n] = R[side, i, col]
    return n ? median(a, n) : 0
}
# ratio of req/s, round by round: out["med"], out["min"], out["max"]
function pair(a, b, out,    n, i, x) {
    n = 0
    for (i = 1; i <= MAXR; i++)
        if ((a, i, 5) in R && (b, i, 5) in R && R[b, i, 5] > 0)
            x[++n] = R[a, i, 5] / R[b, i, 5]
    out["med"] = n ? median(x, n) : 0
    out["min"] = n ? x[1] : 0
    out["max"] = n ? x[n] : 0
}
'

# summary SCENARIO BASE side...: medians of the rounds, ratios to BASE
summary() {
    local scen=$1 base=$2
    shift 2
    awk -F'\t' -v scen="$scen" -v base="$base" -v sides="$*" "$AWK_STATS"'
    $1 == scen { load() }
    END {
        ns = split(sides, sd, " ")
        for (k = 1; k <= ns; k++) {
            s = sd[k]
            served = 0; landed = 0; lost = 0; fb = 0; err = 0
            for (i = 1; i <= MAXR; i++) if ((s, i, 5) in R) {
                served += R[s, i, 11]; err += R[s, i, 13]
                lost += R[s, i, 17]; fb += R[s, i, 18]
                if (R[s, i, 12] != "-") landed += R[s, i, 12]; else landed = "-"
            }
            pair(s, base, p)
            printf "SUMMARY %-8s %-7s median %7d req/s  ratio %5.3f [%5.3f-%5.3f]  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  cpu/req: %s %5.1f us  redis %4.1f us  wrk %4.1f us  other %.2f CPU", \
                scen, s, med(s, 5), p["med"], p["min"], p["max"],
                med(s, 6) / 1000, med(s, 7) / 1000, med(s, 8) / 1000,
                s == "django" ? "gunicorn" : "nginx",
                s == "django" ? med(s, 16) : med(s, 14), med(s, 15),
                med(s, 19), med(s, 20)
            if (landed != "-" && s ~ /^(module|base|cluster|tls|ctls)$/)
                printf "  %s %d of %d (%.2f %%)",
                       scen ~ /^(serve|fetch)/ ? "read from Redis" : "landed",
                       landed, served, served ? 100 * landed / served : 0
            if (s ~ /^(module|base|cluster|tls|ctls)$/ && (lost || fb))
                printf "  dropped+failed %d fallbacks %d", lost, fb
            if (err) printf "  errors %d", err
            printf "\n"
        }
    }' "$ROUNDS_TSV" | tee -a "$BENCH_RESULTS/summary.txt"
}


# A Redis Cluster of 6 nodes (3 masters, 3 replicas) from BENCH_CLUSTER_PORT,
# node timeout 2 s, as t/lib/RedisTopology.pm makes it for the tests.  With
# CLUSTER_TLS=1 each node also has a TLS port, 10 above its own, and
# --tls-cluster yes --tls-replication yes: the bus and replication go over
# TLS, a TCP client is given the TCP ports, a TLS client the TLS ports.

cluster_tls_args() {   # port
    local c=$BENCH_DIR/certs
    [ "${CLUSTER_TLS:-0}" = 1 ] || return 0
    echo --tls-port $(($1 + 10)) --tls-cert-file "$c/server.crt" \
        --tls-key-file "$c/server.key" --tls-ca-cert-file "$c/ca.crt" \
        --tls-auth-clients no --tls-cluster yes --tls-replication yes
}

cluster_node_start() { # port
    local p=$1 d=$BENCH_DIR/cluster/$1
    mkdir -p "$d"
    # shellcheck disable=SC2046
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 2000 \
        --save '' --appendonly no --repl-diskless-sync-delay 0 \
        --dir "$d" --daemonize yes --pidfile "$d/redis.pid" \
        --logfile "$d/redis.log" $(cluster_tls_args "$p") \
        ${BENCH_CLUSTER_ARGS:-} 9>&- >/dev/null
    wait_port "$p" || die "cluster node $p did not start: $d/redis.log"
}

cluster_ports() {
    seq "$BENCH_CLUSTER_PORT" $((BENCH_CLUSTER_PORT + 5))
}

cluster_start() {
    local p addrs=() tls=()
    cluster_stop
    rm -rf "$BENCH_DIR/cluster"
    if [ "${CLUSTER_TLS:-0}" = 1 ]; then
        perl -I"$BENCH_TOP/t/lib" -MRedisTopology -e 'make_certs($ARGV[0])' \
            "$BENCH_DIR/certs" || die "the test certificates could not be made"
        # the nodes meet at the ports of their bus's kind
        tls=(--tls --cacert "$BENCH_DIR/certs/ca.crt")
    fi
    for p in $(cluster_ports); do
        cluster_node_start "$p"
        addrs+=("127.0.0.1:$(( p + (${#tls[@]} ? 10 : 0) ))")
    done
    redis-cli "${tls[@]}" --cluster create "${addrs[@]}" --cluster-replicas 1 \
        --cluster-yes > "$BENCH_DIR/cluster/create.log" 2>&1 \
        || die "redis-cli --cluster create failed: $BENCH_DIR/cluster/create.log"
    cluster_wait_ok 30 || die "the cluster is not ok"
}

cluster_alive() {      # port: its server runs
    local pid
    pid=$(cat "$BENCH_DIR/cluster/$1/redis.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null
}

cluster_kill() {       # port: kill -9 by its pidfile
    local pid
    pid=$(cat "$BENCH_DIR/cluster/$1/redis.pid" 2>/dev/null) || return 0
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
}

cluster_stop() {
    local p
    [ -d "$BENCH_DIR/cluster" ] || return 0
    for p in $(cluster_ports); do cluster_kill "$p"; done
}

# every live node says cluster_state:ok, every replica's link is up
cluster_ok() {
    local p
    for p in $(cluster_ports); do
        cluster_alive "$p" || continue
        redis-cli -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' \
            || return 1
        if redis-cli -p "$p" ROLE | head -1 | grep -q slave; then
            redis-cli -p "$p" INFO replication \
                | grep -q '^master_link_status:up' || return 1
        fi
    done
}

cluster_wait_ok() {    # seconds
    local i
    for i in $(seq $(($1 * 10))); do
        cluster_ok && return 0
        sleep 0.1
    done
    return 1
}

cluster_nodes() {      # CLUSTER NODES as a live node sees it
    local p
    for p in $(cluster_ports); do
        cluster_alive "$p" && { redis-cli -p "$p" CLUSTER NODES; return; }
    done
}

cluster_masters() {    # ports of the masters with slots, not failed
    cluster_nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 {
        split($2, a, "[:@]"); print a[2] }' | sort -n | tr '\n' ' '
}

cluster_replica_of() { # port -> the port of its replica
    local id
    id=$(redis-cli -p "$1" CLUSTER MYID)
    cluster_nodes | awk -v id="$id" '$4 == id && $3 !~ /fail/ {
        split($2, a, "[:@]"); print a[2]; exit }'
}

cluster_role() {       # port -> master or slave
    redis-cli -p "$1" ROLE 2>/dev/null | head -1
}
