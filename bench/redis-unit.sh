#!/usr/bin/env bash
#
# The recording unit, straight against Redis: what one view costs Redis
# as the module sends it (MULTI, LREM, LPUSH, LTRIM, EXPIRE, EXEC), as a
# cached Lua script (EVALSHA with the same four commands inside), as the
# module sends it with the bare prefix (EVAL of the script text, which
# checks the key's TYPE first, so that a key of another type is left
# alone), with the bare pipeline of the four commands (not atomic) for
# reference.
#
# Each variant is a file of RU_UNITS units in Redis' protocol, sent with
# "redis-cli --pipe" (pipelined, as the module's link does); the variants
# alternate, RU_ROUNDS times.  Figures: units per second, Redis' own CPU
# time per unit (INFO cpu), bytes sent per unit.
#
# usage: bench/redis-unit.sh          (Redis on BENCH_REDIS_PORT, running)

set -euo pipefail

. "$(dirname "$0")/lib.sh"

if [ "$BENCH_QUICK" = 1 ]; then
    RU_UNITS=${RU_UNITS:-50000}
    RU_ROUNDS=${RU_ROUNDS:-2}
else
    RU_UNITS=${RU_UNITS:-100000}
    RU_ROUNDS=${RU_ROUNDS:-5}
fi

RU_DIR=$BENCH_DIR/redis-unit
mkdir -p "$RU_DIR" "$BENCH_RESULTS"

SCRIPT="local k = KEYS[1]
redis.call('LREM', k, 0, ARGV[1])
redis.call('LPUSH', k, ARGV[1])
redis.call('LTRIM', k, 0, ARGV[2])
redis.call('EXPIRE', k, ARGV[3])
return 1"

# the module's type-safe unit (ngx_http_history_record.c), word for word
TYPESAFE="local t = redis.call('TYPE', KEYS[1]).ok if t ~= 'list' and t ~= 'none' then return 0 end redis.call('LREM', KEYS[1], 0, ARGV[1]) redis.call('LPUSH', KEYS[1], ARGV[1]) redis.call('LTRIM', KEYS[1], 0, ARGV[2]) redis.call('EXPIRE', KEYS[1], ARGV[3]) return 1"

sha=$(rcli SCRIPT LOAD "$SCRIPT")

# the three files, the same visitors and products in the same order
awk -v n="$RU_UNITS" -v v="$BENCH_VISITORS" -v p="$BENCH_PRODUCTS" \
    -v sha="$sha" -v typesafe="$TYPESAFE" -v dir="$RU_DIR" '
function cmd(f, a, na,    i, s) {
    s = "*" na "\r\n"
    for (i = 1; i <= na; i++) s = s "$" length(a[i]) "\r\n" a[i] "\r\n"
    printf "%s", s > f
}
BEGIN {
    srand(1)
    for (u = 0; u < n; u++) {
        k = "history:v" (1 + int(rand() * v))
        id = 1 + int(rand() * p)

        a[1] = "MULTI";  cmd(dir "/multi.resp", a, 1)
        a[1] = "LREM";   a[2] = k; a[3] = 0; a[4] = id
        cmd(dir "/multi.resp", a, 4); cmd(dir "/pipeline.resp", a, 4)
        a[1] = "LPUSH";  a[2] = k; a[3] = id
        cmd(dir "/multi.resp", a, 3); cmd(dir "/pipeline.resp", a, 3)
        a[1] = "LTRIM";  a[2] = k; a[3] = 0; a[4] = 4
        cmd(dir "/multi.resp", a, 4); cmd(dir "/pipeline.resp", a, 4)
        a[1] = "EXPIRE"; a[2] = k; a[3] = 7776000
        cmd(dir "/multi.resp", a, 3); cmd(dir "/pipeline.resp", a, 3)
        a[1] = "EXEC";   cmd(dir "/multi.resp", a, 1)

        a[1] = "EVALSHA"; a[2] = sha; a[3] = 1; a[4] = k; a[5] = id
        a[6] = 4; a[7] = 7776000
        cmd(dir "/evalsha.resp", a, 7)

        a[1] = "EVAL"; a[2] = typesafe
        cmd(dir "/typesafe.resp", a, 7)
    }
}'

: > "$RU_DIR/rounds.tsv"

echo "redis-unit: $RU_UNITS units per variant, $RU_ROUNDS rounds, redis-cli --pipe"

for ((r = 1; r <= RU_ROUNDS; r++)); do
    if ((r % 2)); then order=(multi evalsha typesafe pipeline)
    else order=(pipeline typesafe evalsha multi); fi
    for v in "${order[@]}"; do
        prefill "$BENCH_VISITORS" history:
        c0=$(redis_cpu_us)
        t0=$(date +%s%N)
        out=$(redis-cli -p "$BENCH_REDIS_PORT" --pipe < "$RU_DIR/$v.resp" 2>&1)
        t1=$(date +%s%N)
        c1=$(redis_cpu_us)
        errors=$(sed -n 's/.*errors: \([0-9]*\),.*/\1/p' <<<"$out")
        bytes=$(stat -c %s "$RU_DIR/$v.resp")
        awk -v v="$v" -v r="$r" -v n="$RU_UNITS" -v t=$((t1 - t0)) \
            -v c=$((c1 - c0)) -v e="${errors:-?}" -v b="$bytes" 'BEGIN {
            printf "%s\t%d\t%.0f\t%.2f\t%.1f\t%s\n", v, r, n / (t / 1e9),
                   c / n, b / n, e
        }' | tee -a "$RU_DIR/rounds.tsv" \
           | awk -F'\t' '{ printf "  %-8s round %d: %8d units/s  redis cpu %5.2f us/unit  %5.1f bytes/unit  errors %s\n", $1, $2, $3, $4, $5, $6 }'
    done
done

# medians, and each variant against MULTI/EXEC round by round
awk -F'\t' '
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ u[$1, $2] = $3; c[$1, $2] = $4; b[$1] = $5; if ($2 > n) n = $2 }
END {
    split("multi evalsha typesafe pipeline", vs, " ")
    for (i = 1; i <= 4; i++) {
        v = vs[i]
        delete x; delete y; delete rx; delete ry
        for (k = 1; k <= n; k++) {
            x[k] = u[v, k]; y[k] = c[v, k]
            rx[k] = u[v, k] / u["multi", k]; ry[k] = c[v, k] / c["multi", k]
        }
        if (v == "multi") rep = "6 (+OK, 4 +QUEUED, *4 array of 4)"
        else if (v == "evalsha" || v == "typesafe") rep = "1 (integer)"
        else rep = "4 (3 integers, +OK)"
        printf "REDISUNIT %-8s median %8d units/s (x%.2f)  redis cpu %5.2f us/unit (x%.2f)  %5.1f bytes/unit  replies/unit %s\n", v, median(x, n), median(rx, n), median(y, n), median(ry, n), b[v], rep
    }
}' "$RU_DIR/rounds.tsv" | tee -a "$BENCH_RESULTS/summary.txt"
echo "  (x: against MULTI/EXEC in the same round, the median of the rounds)"
