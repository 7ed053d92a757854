#!/usr/bin/env bash
#
# docs/img/*.png from the figures of the last run ($BENCH_DIR/results):
#
#   bench-throughput.png     median req/s per scenario: plain, module, Django
#   bench-latency.png        latency percentiles per scenario and side
#   bench-conns.png          req/s and p99 against the number of connections
#   bench-visitors.png       req/s and Redis memory against visitors
#   bench-length.png         req/s and Redis memory against history_length
#   bench-workers.png        req/s with 1 and 2 nginx workers
#   bench-rss.png            worker RSS and Redis memory over a long run

set -euo pipefail

. "$(dirname "$0")/lib.sh"

IMG=${BENCH_IMG:-$BENCH_TOP/docs/img}
DAT=$BENCH_DIR/plot
mkdir -p "$IMG" "$DAT"

R=$BENCH_RESULTS/rounds.tsv
S=$BENCH_RESULTS/scale.tsv

# the medians of lib.sh, and the per-round ratio, per scenario
per_scenario() {       # awk program run on the rounds of each scenario
    local sc
    for sc in write serve fetch action page; do
        awk -F'\t' -v sc="$sc" "$AWK_STATS"'
        $1 == sc { load() }
        END { if (MAXR) { '"$1"' } }' "$R"
    done
}

TERM_PNG="set terminal pngcairo size 900,520 font 'sans,10'"

# throughput: scenario plain module django module/plain django/plain
if [ -s "$R" ]; then
    per_scenario '
        pair("module", "plain", m); pair("django", "plain", d)
        printf "%s\t%s\t%s\t%s\t%.3f\t%s\n", sc, med("plain", 5),
               med("module", 5), ("django", 1, 5) in R ? med("django", 5) : "NaN",
               m["med"], ("django", 1, 5) in R ? sprintf("%.3f", d["med"]) : "NaN"
    ' > "$DAT/throughput.dat"

    per_scenario '
        split("plain module django", sd, " ")
        for (j = 1; j <= 3; j++) {
            d = sd[j]
            if (!((d, 1, 5) in R)) continue
            printf "%s/%s\t%.3f\t%.3f\t%.3f\t%.3f\n", sc, d,
                   med(d, 6) / 1000, med(d, 7) / 1000,
                   med(d, 8) / 1000, med(d, 9) / 1000
        }
    ' > "$DAT/latency.dat"
fi

if [ -s "$DAT/throughput.dat" ]; then
    gnuplot <<EOF
$TERM_PNG
set output '$IMG/bench-throughput.png'
set title "Requests per second, median of the rounds (wrk -c$BENCH_CONNS, all on 2 shared CPUs)\\nlabels: module or Django over plain nginx, median of the per-round ratios"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1000:*]
set ylabel 'requests/s (log scale)'
set grid ytics
set key top right
set datafile missing 'NaN'
plot '$DAT/throughput.dat' using 2:xtic(1) title 'plain nginx' lc rgb '#999999', \
     '' using 3 title 'nginx + module' lc rgb '#2a7ab9', \
     '' using 4 title 'Django view (gunicorn)' lc rgb '#c0504d', \
     '' using 0:3:(sprintf("x%.2f", \$5)) with labels offset 0,0.8 font 'sans,9' notitle, \
     '' using (\$0+0.25):4:(sprintf("x%.3f", \$6)) with labels offset 0,0.8 font 'sans,9' notitle
EOF
fi

if [ -s "$DAT/latency.dat" ]; then
    gnuplot <<EOF
set terminal pngcairo size 1000,520 font 'sans,10'
set output '$IMG/bench-latency.png'
set title 'Latency percentiles, median of the rounds'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set ylabel 'milliseconds (log scale)'
set grid ytics
set xtics rotate by -30
set key top left
plot '$DAT/latency.dat' using 2:xtic(1) title 'p50' lc rgb '#9ecae1', \
     '' using 3 title 'p90' lc rgb '#4292c6', \
     '' using 4 title 'p99' lc rgb '#08519c', \
     '' using 5 title 'p99.9' lc rgb '#08306b'
EOF
fi

# scale.tsv: kind point module plain ratio p99m p99p mem rss prss errors lost
if [ -s "$S" ]; then
    awk -F'\t' '$1 == "conns"'    "$S" > "$DAT/conns.dat"
    awk -F'\t' '$1 == "visitors"' "$S" > "$DAT/visitors.dat"
    awk -F'\t' '$1 == "workers"'  "$S" > "$DAT/workers.dat"
    awk -F'\t' '$1 == "length"'   "$S" > "$DAT/length.dat"
fi

if [ -s "$DAT/conns.dat" ]; then
    gnuplot <<EOF
$TERM_PNG
set output '$IMG/bench-conns.png'
set title 'Write path against the number of connections'
set logscale x
set xlabel 'connections (wrk -c)'
set ylabel 'requests/s'
set y2label 'p99 latency, ms (log scale)'
set logscale y2
set ytics nomirror
set y2tics
set yrange [0:*]
set grid
set key bottom left
plot '$DAT/conns.dat' using 2:4 with linespoints lw 2 lc rgb '#999999' title 'plain nginx, req/s', \
     '' using 2:3 with linespoints lw 2 lc rgb '#2a7ab9' title 'nginx + module, req/s', \
     '' using 2:(\$7/1000) axes x1y2 with linespoints dt 2 lc rgb '#999999' title 'plain nginx, p99', \
     '' using 2:(\$6/1000) axes x1y2 with linespoints dt 2 lc rgb '#2a7ab9' title 'nginx + module, p99'
EOF
fi

# req/s of both sides and Redis's memory against a scale point:
# NAME TITLE XLABEL, from $DAT/NAME.dat to bench-NAME.png
plot_redis_memory() {
    [ -s "$DAT/$1.dat" ] || return 0
    gnuplot <<EOF
$TERM_PNG
set output '$IMG/bench-$1.png'
set title '$2' noenhanced
set logscale x
set xlabel '$3' noenhanced
set ylabel 'requests/s'
set y2label 'Redis used memory, MB'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
set key bottom left
plot '$DAT/$1.dat' using 2:4 with linespoints lw 2 lc rgb '#999999' title 'plain nginx, req/s', \
     '' using 2:3 with linespoints lw 2 lc rgb '#2a7ab9' title 'nginx + module, req/s', \
     '' using 2:(\$8/1048576) axes x1y2 with linespoints dt 2 lc rgb '#c0504d' title 'Redis memory'
EOF
}

plot_redis_memory visitors \
    'Write path against the number of visitors with a list in Redis' \
    'visitors (keys in Redis)'

plot_redis_memory length \
    'Write path against history_length (every list that long)' \
    'history_length (ids per list)'

if [ -s "$DAT/workers.dat" ]; then
    gnuplot <<EOF
set terminal pngcairo size 600,420 font 'sans,10'
set output '$IMG/bench-workers.png'
set title 'Write path with 1 and 2 nginx workers'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set yrange [0:150000]
set ylabel 'requests/s'
set xlabel 'nginx workers'
set grid ytics
set key top left opaque
plot '$DAT/workers.dat' using 4:xtic(2) title 'plain nginx' lc rgb '#999999', \
     '' using 3 title 'nginx + module' lc rgb '#2a7ab9'
EOF
fi

if [ -s "$BENCH_RESULTS/rss.tsv" ]; then
    gnuplot <<EOF
$TERM_PNG
set output '$IMG/bench-rss.png'
set title 'Memory while recording every view (wrk -c100)'
set xlabel 'seconds'
set ylabel 'nginx worker RSS, MB'
set y2label 'Redis used memory, MB'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
set key bottom right
plot '$BENCH_RESULTS/rss.tsv' using 1:(\$2/1024) with linespoints lw 2 lc rgb '#2a7ab9' title 'nginx worker RSS', \
     '' using 1:(\$3/1048576) axes x1y2 with linespoints dt 2 lc rgb '#c0504d' title 'Redis used memory'
EOF
fi

ls -1 "$IMG"/bench-*.png 2>/dev/null | sed 's/^/  /'
