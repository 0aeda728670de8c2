#!/usr/bin/env bash
# Where the HTTP server's threads spend a wrk run: for each thread of http_ours that ran
# at least 0.5 % of the time, the share of wall time it ran and the share it waited for a
# core (runnable, not running), from /proc/PID/task/*/schedstat read before and after a
# 4 s wrk run (after a 2 s warm-up), and its context switches a second. The figures behind
# the thresholds of `Http::low_latency` (BENCHMARKS.md, "`low_latency` measures").
#
#   bench/sched_share.sh                 # default and low_latency, at -t2 -c32, -t1 -c8, -t1 -c64
#   LOADS="2:32" MODES="ll" bench/sched_share.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LOADS=${LOADS:-"2:32 1:8 1:64"}
MODES=${MODES:-"default ll"}
cargo build --release --quiet --manifest-path bench/Cargo.toml --bin http_ours

. bench/nats.sh
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    nats_stop
}
trap cleanup EXIT
nats_start
export NATS_URL

# Each thread's name and schedstat line ("ns on a core, ns waiting for one, timeslices").
snapshot() {
    for t in /proc/"$SERVER_PID"/task/*; do
        echo "$(basename "$t") $(cat "$t/comm") $(cat "$t/schedstat")"
    done
}

for mode in $MODES; do
    for load in $LOADS; do
        threads=${load%%:*} conns=${load##*:}
        port=$(free_port)
        if [ "$mode" = ll ]; then
            HTTP_LOW_LATENCY=1 PANINI_LOG=warn bench/target/release/http_ours "$port" >/dev/null &
        else
            PANINI_LOG=warn bench/target/release/http_ours "$port" >/dev/null &
        fi
        SERVER_PID=$!
        for _ in $(seq 200); do
            curl -sf -o /dev/null "http://127.0.0.1:$port/get" && break
            sleep 0.05
        done
        wrk -t"$threads" -c"$conns" -d2s "http://127.0.0.1:$port/get" >/dev/null
        before=$(snapshot)
        t0=$(date +%s%N)
        out=$(wrk -t"$threads" -c"$conns" -d4s --latency "http://127.0.0.1:$port/get")
        after=$(snapshot)
        t1=$(date +%s%N)
        echo "$mode -t$threads -c$conns: $(awk '/^Requests\/sec:/ {print $2}' <<<"$out") req/s," \
            "p99 $(awk '$1 == "99%" {print $2}' <<<"$out")"
        python3 - "$before" "$after" $((t1 - t0)) <<'PY'
import sys
def parse(text):
    return {l.split()[0]: (l.split()[1], list(map(int, l.split()[2:5]))) for l in text.splitlines()}
before, after, wall = parse(sys.argv[1]), parse(sys.argv[2]), int(sys.argv[3])
for tid, (name, b) in after.items():
    if tid not in before:
        continue
    a = before[tid][1]
    ran, waited, slices = (b[i] - a[i] for i in range(3))
    if ran / wall >= 0.005:
        print(f"  {name:16} runs {ran / wall:6.1%}  waits for a core {waited / wall:6.1%}"
              f"  switches {slices / (wall / 1e9):8.0f}/s")
PY
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    done
done
