#!/usr/bin/env bash
#
# Instructions per request of the nginx worker, module on and off, counted
# by valgrind's callgrind: nginx runs alone ("master_process off; daemon
# off;"), bench/client.py sends a fixed sequence of requests on one
# keep-alive connection, nginx stops (QUIT) and callgrind reports the
# instructions executed (Ir, user space only).  Each case runs twice, with
# CG_N1 and CG_N2 requests: the difference divided by CG_N2 - CG_N1 is the
# cost of one request, without start-up and exit.
#
# The client sends one request at a time on one connection (CG_CONNS 1:
# the deterministic figure, each view written to Redis alone), and one
# request on each of 16 connections at a time (16: nginx finds them ready
# together and writes their views in one writev(), as under load).
#
# Then, for CG_PROFILE, the functions that account for the difference
# between the module and plain nginx, per request.
#
# With BENCH_BASE_SO (the module built from an earlier commit, see
# bench/run.sh), each case runs a third side, "base", the module's
# configuration with that .so: CGBASE lines give the module's
# instructions per request against the base's, and for CG_PROFILE the
# functions that account for the difference (module minus base).
#
# usage: bench/callgrind.sh [case...]      (case: write serve fetch action page)
# Needs Redis running (bench/run.sh starts it); uses BENCH_PORT_CALLGRIND.

set -euo pipefail

. "$(dirname "$0")/lib.sh"

if [ "$BENCH_QUICK" = 1 ]; then
    CG_N1=${CG_N1:-200}
    CG_N2=${CG_N2:-1200}
else
    CG_N1=${CG_N1:-300}
    CG_N2=${CG_N2:-1300}
fi

CG_DIR=$BENCH_DIR/callgrind
CG_CONNS=${CG_CONNS:-1 16}
CG_PROFILE=${CG_PROFILE:-write/1 write/16 serve/1 action/1}
CG_INCLUSIVE="ngx_http_history_log_handler ngx_http_history_visitor
ngx_http_history_valid_id ngx_http_history_record ngx_http_history_last_action
ngx_http_history_count ngx_http_history_link_send redisFormatCommandArgv
ngx_http_history_node_send ngx_http_history_node_read_handler
redisReaderGetReply freeReplyObject ngx_http_history_serve_handler
ngx_http_history_fetch_handler ngx_http_history_reply ngx_http_history_resume
ngx_http_history_respond ngx_http_history_render"

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(write serve fetch action page)

declare -A CASE_PATH=(
    [write]=/product/%d
    [serve]=/history
    [fetch]=/fetch/%d
    [action]=/action/%d
    [page]=/page/%d
)

# run SIDE CASE CONNS N: nginx under callgrind, N requests; prints the
# out file
cg_run() {
    local side=$1 case=$2 conns=$3 n=$4 dir pid out i

    dir=$CG_DIR/$case-$conns-$side-$n
    out=$dir/callgrind.out
    rm -rf "$dir"
    nginx_render "$dir" "$side" "$BENCH_PORT_CALLGRIND" 1 off

    valgrind --tool=callgrind --callgrind-out-file="$out" \
        --log-file="$dir/valgrind.log" \
        "$NGINX_BIN" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
        -g 'daemon off;' 9>&- > "$dir/nginx.out" 2>&1 &
    pid=$!
    echo "$pid" > "$CG_DIR/nginx.pid"

    if ! wait_port "$BENCH_PORT_CALLGRIND" 60; then
        kill -KILL "$pid" 2>/dev/null || true
        die "nginx under callgrind did not start: $dir/error.log"
    fi

    if is_module_side "$side"; then
        # connected to Redis before the first request
        for _ in $(seq 100); do
            grep -q . <(curl -s "http://127.0.0.1:$BENCH_PORT_CALLGRIND/_stats" \
                                    | grep '"connected":1') && break
            sleep 0.1
        done
    fi

    # the figures read above are requests too: the same in every run
    "$PY" "$BENCH_SRC/client.py" "$BENCH_PORT_CALLGRIND" \
        "${CASE_PATH[$case]}" "$n" "$conns" \
        || { kill -KILL "$pid"; die "client failed ($case, $side)"; }

    # QUIT: a graceful stop waits for the replies still due from Redis.
    # Without a master process nginx learns of a signal only when
    # epoll_wait() returns; one that lands just before it is called, with
    # no timer left, waits for an event that never comes: ask again.
    kill -QUIT "$pid"
    for i in $(seq 600); do
        # gone, or a zombie waiting for "wait"
        case $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) in
            ''|Z) break ;;
        esac
        if ((i % 20 == 0)); then
            kill -QUIT "$pid" 2>/dev/null || true
        fi
        sleep 0.1
    done
    wait "$pid" || true
    rm -f "$CG_DIR/nginx.pid"

    [ -s "$out" ] || die "no callgrind output in $dir"
    echo "$out"
}

total_ir() {
    sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" \
        | head -n 1
}

# self Ir per function: "ir<TAB>function<TAB>object" (object may be empty
# when callgrind_annotate leaves it out: the same function in several files);
# the function table only (--auto=no): the annotated sources that follow it
# repeat the same costs line by line, and a file whose source is not found
# adds a "<counts for unidentified lines in ...>" total, counted twice then
functions() {
    callgrind_annotate --threshold=100 --inclusive=no --auto=no "$1" \
        2>/dev/null \
        | awk '
        /^-+$/ { sep++; next }
        sep >= 4 && /^ *[0-9,]+ / && !/PROGRAM TOTALS/ {
            ir = $1; gsub(",", "", ir)
            sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "")
            obj = ""
            if (match($0, / \[[^]]*\]$/)) {
                obj = substr($0, RSTART + 2, RLENGTH - 3)
                $0 = substr($0, 1, RSTART - 1)
            }
            if ($0 !~ /^<counts for/) sub(/^[^ ]*:/, "")   # the source file
            print ir "\t" $0 "\t" obj
        }'
}

# nginx under callgrind, if a run is cut short
cg_kill() {
    local pid
    if pid=$(cat "$CG_DIR/nginx.pid" 2>/dev/null); then
        case $(cat "/proc/$pid/comm" 2>/dev/null) in
            callgrind-*) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
        rm -f "$CG_DIR/nginx.pid"
    fi
}

trap cg_kill EXIT
trap 'exit 130' INT TERM

mkdir -p "$CG_DIR" "$BENCH_RESULTS"
: > "$BENCH_RESULTS/callgrind.tsv"

# case conns side ir out-N1 out-N2
measure() {
    local case=$1 conns=$2 side a b
    for side in plain "${MODULE_SIDES[@]}"; do
        a=$(cg_run "$side" "$case" "$conns" "$CG_N1")
        b=$(cg_run "$side" "$case" "$conns" "$CG_N2")
        printf '%s\t%s\t%s\t%d\t%s\t%s\n' "$case" "$conns" "$side" \
            $(( ($(total_ir "$b") - $(total_ir "$a")) / (CG_N2 - CG_N1) )) \
            "$a" "$b" >> "$BENCH_RESULTS/callgrind.tsv"
    done
}

echo "callgrind: instructions per request of the nginx worker, user space" \
     "(runs of $CG_N2 and $CG_N1 requests, the difference)"

for case in "${cases[@]}"; do
    for conns in $CG_CONNS; do
        locked measure "$case" "$conns"
        awk -F'\t' -v c="$case" -v k="$conns" '
            $1 == c && $2 == k && $3 == "plain"  { p = $4 }
            $1 == c && $2 == k && $3 == "module" { m = $4 }
            END {
                printf "CALLGRIND %-7s conns %-3d plain %6d Ir/req  module %6d Ir/req  added %6d (%+.1f %%)\n",
                       c, k, p, m, m - p, 100 * (m - p) / p
            }' "$BENCH_RESULTS/callgrind.tsv" | tee -a "$BENCH_RESULTS/summary.txt"
        [ -n "$BENCH_BASE_SO" ] || continue
        awk -F'\t' -v c="$case" -v k="$conns" '
            $1 == c && $2 == k && $3 == "base"   { b = $4 }
            $1 == c && $2 == k && $3 == "module" { m = $4 }
            END {
                printf "CGBASE  %-7s conns %-3d base  %6d Ir/req  module %6d Ir/req  module-base %+6d (%+.1f %%)\n",
                       c, k, b, m, m - b, 100 * (m - b) / b
            }' "$BENCH_RESULTS/callgrind.tsv" | tee -a "$BENCH_RESULTS/summary.txt"
    done
done

# the out files of a case's runs: "N1-file N2-file"
outs() {               # case conns side
    awk -F'\t' -v c="$1" -v k="$2" -v s="$3" \
        '$1 == c && $2 == k && $3 == s { print $5, $6 }' \
        "$BENCH_RESULTS/callgrind.tsv"
}

# self cost per request by function and by group, module minus REF (plain
# or base), from the four runs; LABEL names the lines; SORT "abs" orders
# the functions by the size of the difference, not by its sign
differ() {             # case conns ref label [sort]
    local case=$1 conns=$2 ref=$3 label=$4 sort=${5:-} ra rb ma mb

    read -r ra rb < <(outs "$case" "$conns" "$ref")
    read -r ma mb < <(outs "$case" "$conns" module)
    [ -n "${mb:-}" ] && [ -n "${rb:-}" ] || return 1

    functions "$ra" > "$CG_DIR/$label-ref-a.fn"
    functions "$rb" > "$CG_DIR/$label-ref-b.fn"
    functions "$ma" > "$CG_DIR/$label-module-a.fn"
    functions "$mb" > "$CG_DIR/$label-module-b.fn"

    # the four files in this order: ref N1, ref N2, module N1, module N2
    awk -F'\t' -v n=$((CG_N2 - CG_N1)) -v c="$label" '
        FNR == 1 { k++ }
        $3 != "" { obj[$2] = $3 }
        k == 1 { v[$2] += $1; next }
        k == 2 { v[$2] -= $1; next }
        k == 3 { v[$2] -= $1; next }
        k == 4 { v[$2] += $1; next }
        END {
            for (f in v) {
                d = v[f] / n
                o = obj[f]
                if (f ~ /ngx_http_history_/ || o ~ /ngx_http_history_module|\/(module|base)\.so$/)
                    g = "module (ngx_http_history_*)"
                else if (o ~ /libhiredis/) g = "hiredis"
                else if (f ~ /printf|_IO_|_itoa|strchrnul/) g = "libc printf family"
                else if (f ~ /malloc|free|calloc|realloc|tcache|consolidate/) g = "libc malloc/free"
                else if (o ~ /libc\.so/) g = "libc other"
                else if (o ~ /\/nginx$/) g = "nginx"
                else if (o ~ /pcre2/) g = "pcre2"
                else g = "other"
                grp[g] += d
                if (d >= 1 || d <= -1) {
                    sub(/.*\//, "", o)
                    printf "%s\t%.0f\t%s%s\n", c, d, f, o == "" ? "" : " (" o ")"
                }
            }
            for (g in grp) printf "GROUP\t%.0f\t%s\n", grp[g], g > "/dev/stderr"
        }' "$CG_DIR/$label-ref-a.fn" "$CG_DIR/$label-ref-b.fn" \
           "$CG_DIR/$label-module-a.fn" "$CG_DIR/$label-module-b.fn" \
        2> "$CG_DIR/$label.groups" \
        | if [ "$sort" = abs ]; then
              awk -F'\t' '{ print ($2 < 0 ? -$2 : $2) "\t" $0 }' \
                  | sort -t$'\t' -k1,1nr | cut -f2-
          else
              sort -t$'\t' -k2,2nr
          fi > "$CG_DIR/$label.functions"

    sort -t$'\t' -k2,2nr "$CG_DIR/$label.groups" \
        | awk -F'\t' -v c="$label" '{ printf "CGGROUP %-9s %7d Ir/req  %s\n", c, $2, $3 }' \
        | tee -a "$BENCH_RESULTS/summary.txt"
}

# the top of a differ()'s functions
top_functions() {      # label
    head -n "${CG_TOP:-25}" "$CG_DIR/$1.functions" \
        | awk -F'\t' '{ printf "CGFUNC  %-9s %7d Ir/req  %s\n", $1, $2, $3 }' \
        | tee -a "$BENCH_RESULTS/summary.txt"
}

# where the added instructions go, per request
for prof in $CG_PROFILE; do
    case=${prof%/*}
    conns=${prof#*/}
    label=$case-$conns
    [ -n "$(outs "$case" "$conns" module)" ] || continue

    echo
    echo "callgrind: $case, $conns connection(s): instructions per request" \
         "added by the module, by function (self cost, module minus plain)"
    differ "$case" "$conns" plain "$label" || continue

    # inclusive cost of the module's steps, per request (module run)
    read -r ma mb < <(outs "$case" "$conns" module)
    for f in a b; do
        eval "out=\$m$f"
        callgrind_annotate --threshold=100 --inclusive=yes --auto=no "$out" \
            2>/dev/null \
            | awk '/^ *[0-9,]+ / && !/PROGRAM TOTALS/ {
                ir = $1; gsub(",", "", ir)
                sub(/^ *[0-9,]+ +(\([^)]*\) +)?/, "")
                sub(/ \[[^]]*\]$/, ""); sub(/^[^ ]*:/, "")
                if (ir + 0 > v[$0] + 0) v[$0] = ir + 0
            }
            END { for (f in v) print v[f] "\t" f }' > "$CG_DIR/$label-module-$f.incl"
    done
    awk -F'\t' -v n=$((CG_N2 - CG_N1)) -v c="$label" -v want="$CG_INCLUSIVE" '
        BEGIN { k = split(want, w, " "); for (i = 1; i <= k; i++) order[w[i]] = i }
        FILENAME ~ /-a\.incl$/ { v[$2] -= $1; next }
        { v[$2] += $1 }
        END {
            for (i = 1; i <= k; i++)
                if (w[i] in v && v[w[i]] / n >= 1)
                    printf "CGINCL  %-9s %7d Ir/req  %s (inclusive)\n", c, v[w[i]] / n, w[i]
        }' "$CG_DIR/$label-module-a.incl" "$CG_DIR/$label-module-b.incl" \
        | tee -a "$BENCH_RESULTS/summary.txt"
    top_functions "$label"

    [ -n "$BENCH_BASE_SO" ] || continue
    echo
    echo "callgrind: $case, $conns connection(s): instructions per request," \
         "module minus base, by function (self cost; the largest" \
         "differences either way)"
    differ "$case" "$conns" base "$label-base" abs || continue
    top_functions "$label-base"
done
