#!/usr/bin/env bash
# HTTP benchmark: `wrk` against `GET /get` ("Hello, world") on three servers, in one run,
# one at a time, with the same wrk settings, then each server's memory under N idle
# keep-alive connections.
#
#   bench/http.sh                      # 5 rounds of 10 s per server, then memory (3 rounds)
#   ROUNDS=3 DURATION=5s bench/http.sh # shorter
#   SERVERS="ours axum" bench/http.sh  # a subset (ours, axum, panini)
#   WRK_THREADS=2 CONNS=32 bench/http.sh # wrk -t2 -c32 (wrk then shares both cores)
#   PANINI_THREADS=2 bench/http.sh     # ours on two threads (App::threads; default: one)
#   WRK_BIN=/tmp/wrk-nc bench/http.sh  # another wrk (one built without its latency correction)
#   SERVERS="ours ours2 axum" bench/http.sh # ours2: ours with Http::threads(2) (HTTP_THREADS=2)
#   SERVERS="ours oursll axum" bench/http.sh # oursll: ours with Http::low_latency(true)
#   URL_PATH=/nats SERVERS="ours oursll" bench/http.sh # a route that requests a NATS endpoint
#   BASE_BIN=/tmp/http_ours_old SERVERS="ours base axum" bench/http.sh
#                                      # also an older build of http_ours, as "base"
#
# Servers: ours (bench/src/bin/http_ours.rs: panini::App, the route /get, and /nats beside it),
# axum (bench/src/bin/http_axum.rs: tokio multi-thread runtime, default features) and
# Python Panini 0.8.4 (bench/http_panini.py: its aiohttp endpoint). Ours and Panini connect
# to NATS before they serve, so the script starts its own nats-server on a port the OS picks.
#
# wrk runs with one thread (-t1) unless WRK_THREADS says otherwise: on this 2-core machine
# that leaves the other core to the server. Every round starts each server afresh, warms it up with a 2 s wrk, then measures;
# the order of the servers rotates every round. The table gives medians over the rounds and
# the ratios of the medians. It also reads the server's CPU time (user + system, all
# threads) from /proc/PID/stat around the measured wrk run: CPU microseconds per request
# shows how much each server spends whether or not wrk's one thread is the bottleneck. Raw figures go to $OUT/raw.tsv (default /tmp/panini-http-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
HOLD=${HOLD:-1000}
MEM_ROUNDS=${MEM_ROUNDS:-3}
SERVERS=${SERVERS:-"ours axum panini"}
OUT=${OUT:-/tmp/panini-http-bench}
WRK_THREADS=${WRK_THREADS:-1}
WRK=("${WRK_BIN:-wrk}" -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency)
# The path wrk asks for; URL_PATH=/nats (ours only) asks a route that requests a NATS
# endpoint of the same app.
URL_PATH=${URL_PATH:-/get}

# 1,000 held connections plus wrk's and the servers' own descriptors.
if [ "$(ulimit -n)" -lt $((HOLD + 1024)) ]; then
    ulimit -n $((HOLD + 1024))
fi

mkdir -p "$OUT"
rm -f "$OUT"/raw.tsv "$OUT"/mem.tsv
echo "building (release) ..." >&2
cargo build --release --quiet --manifest-path bench/Cargo.toml --bin http_ours --bin http_axum

# --- nats-server on a port the OS picks ------------------------------------------------
. bench/nats.sh
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    nats_stop
}
trap cleanup EXIT
nats_start
export NATS_URL
echo "nats-server at $NATS_URL" >&2

# start_server NAME PORT: sets SERVER_PID, waits until GET /get answers 200.
start_server() {
    local name=$1 port=$2
    case $name in
        ours) PANINI_LOG=warn bench/target/release/http_ours "$port" >/dev/null & ;;
        ours2) HTTP_THREADS=2 PANINI_LOG=warn bench/target/release/http_ours "$port" >/dev/null & ;;
        oursll) HTTP_LOW_LATENCY=1 PANINI_LOG=warn bench/target/release/http_ours "$port" >/dev/null & ;;
        base) PANINI_LOG=warn "$BASE_BIN" "$port" >/dev/null & ;;
        axum) bench/target/release/http_axum "$port" >/dev/null & ;;
        panini) python3 bench/http_panini.py "$port" >/dev/null 2>&1 & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 200); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/get"; then
            return 0
        fi
        sleep 0.05
    done
    echo "$name did not answer on port $port" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# utime + stime of every thread of PID, in clock ticks (/proc/PID/stat fields 14 and 15).
TICKS=$(getconf CLK_TCK)
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# wrk's "99%  1.23ms" in microseconds.
to_us() {
    python3 -c '
import re, sys
m = re.fullmatch(r"([0-9.]+)(us|ms|s)", sys.argv[1])
print(float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)])' "$1"
}

# --- throughput and latency ------------------------------------------------------------
read -r -a order <<<"$SERVERS"
for round in $(seq 1 "$ROUNDS"); do
    for name in "${order[@]}"; do
        port=$(free_port)
        start_server "$name" "$port"
        "${WRK[@]:0:3}" -d2s "http://127.0.0.1:$port$URL_PATH" >/dev/null # warm-up
        cpu0=$(cpu_ticks "$SERVER_PID")
        out=$("${WRK[@]}" "http://127.0.0.1:$port$URL_PATH")
        cpu1=$(cpu_ticks "$SERVER_PID")
        stop_server
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
        p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
        requests=$(awk '$2 == "requests" && $3 == "in" {print $1}' <<<"$out")
        # server CPU time (user + system, all threads) per request, in microseconds
        cpu=$(python3 -c 'import sys; print((int(sys.argv[2]) - int(sys.argv[1])) * 1e6 / int(sys.argv[3]) / int(sys.argv[4]))' \
            "$cpu0" "$cpu1" "$TICKS" "$requests")
        errors=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | tr '\n' ';' || true)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p50" "$p99" "$cpu" "$errors" \
            >>"$OUT/raw.tsv"
        printf '  round %s %-7s %10.0f req/s  p50 %8.1f us  p99 %8.1f us  cpu %5.2f us/req %s\n' \
            "$round" "$name" "$rps" "$p50" "$p99" "$cpu" "$errors" >&2
    done
    order=("${order[@]:1}" "${order[0]}") # rotate who goes first
done

# --- memory under HOLD idle keep-alive connections -------------------------------------
# rss PID: "VmRSS RssAnon" in KiB.
rss() {
    awk '/^VmRSS:/ {v=$2} /^RssAnon:/ {a=$2} END {print v, a}' "/proc/$1/status"
}

for round in $(seq 1 "$MEM_ROUNDS"); do
    for name in $SERVERS; do
        port=$(free_port)
        start_server "$name" "$port"
        curl -sf -o /dev/null "http://127.0.0.1:$port/get"
        sleep 1
        read -r before_rss before_anon < <(rss "$SERVER_PID")
        coproc HOLDER { python3 bench/hold_conns.py "$port" "$HOLD"; }
        holder_pid=$HOLDER_PID
        read -r status held <&"${HOLDER[0]}"
        if [ "$status" != ready ]; then
            echo "$name: holder failed: $status $held" >&2
            exit 1
        fi
        sleep 1
        established=$(ss -Htn state established "( sport = :$port )" | wc -l)
        read -r after_rss after_anon < <(rss "$SERVER_PID")
        exec {HOLDER[1]}>&-
        wait "$holder_pid" 2>/dev/null || true
        stop_server
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$before_rss" "$before_anon" \
            "$after_rss" "$after_anon" "$established" >>"$OUT/mem.tsv"
        printf '  round %s %-7s VmRSS %6s -> %6s KiB, RssAnon %6s -> %6s KiB, %s established\n' \
            "$round" "$name" "$before_rss" "$after_rss" "$before_anon" "$after_anon" \
            "$established" >&2
    done
done

# --- tables ----------------------------------------------------------------------------
python3 - "$OUT/raw.tsv" "$OUT/mem.tsv" "$HOLD" <<'EOF'
import statistics, sys
from collections import defaultdict

raw, mem, hold = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Every server this script knows, in the order of the tables.
names = {"ours": "ours (panini::App)", "ours2": "ours, `Http::threads(2)`", "oursll": "ours, `Http::low_latency(true)`", "base": "ours, older build (BASE_BIN)", "axum": "axum",
         "panini": "Python Panini (aiohttp)"}
fig = defaultdict(lambda: defaultdict(list))
for line in open(raw):
    _, name, rps, p50, p99, cpu, *_ = line.rstrip("\n").split("\t")
    fig[name]["cpu"].append(float(cpu))
    fig[name]["rps"].append(float(rps))
    fig[name]["p50"].append(float(p50))
    fig[name]["p99"].append(float(p99))
med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in fig.items()}
print("| server | requests/s (median) | p50 (median) | p99 (median) | server CPU per request (median) | rounds |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    if n in med:
        m = med[n]
        print(f"| {names[n]} | {m['rps']:,.0f} | {m['p50']:.0f} µs | {m['p99']:.0f} µs "
              f"| {m['cpu']:.2f} µs | {len(fig[n]['rps'])} |")
print()
for mine, other in (("ours", "axum"), ("ours", "panini"), ("ours2", "axum"), ("ours2", "ours"),
                    ("oursll", "axum"), ("oursll", "ours"),
                    ("base", "axum"), ("ours", "base")):
    if mine in med and other in med:
        o, t = med[mine], med[other]
        print(f"- {mine} / {other}: requests/s {o['rps'] / t['rps']:.2f}, "
              f"p99 {o['p99'] / t['p99']:.2f}, CPU per request {o['cpu'] / t['cpu']:.2f} "
              "(lower is better for both)")
print()
try:
    mem_lines = open(mem).readlines()
except FileNotFoundError:  # MEM_ROUNDS=0 or HOLD=0: no memory table
    sys.exit(0)
rows = defaultdict(list)
for line in mem_lines:
    _, name, b, ba, a, aa, est = line.split()
    rows[name].append((int(b), int(ba), int(a), int(aa), int(est)))
print(f"| server | VmRSS idle | VmRSS with {hold} conns | per conn | RssAnon idle "
      f"| RssAnon with {hold} conns | per conn (anon) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for n in names:
    if n not in rows:
        continue
    r = rows[n]
    md = lambda i: statistics.median(x[i] for x in r)
    dv = statistics.median((x[2] - x[0]) / hold for x in r)
    da = statistics.median((x[3] - x[1]) / hold for x in r)
    print(f"| {names[n]} | {md(0) / 1024:.2f} MiB | {md(2) / 1024:.2f} MiB | {dv:.2f} KiB "
          f"| {md(1) / 1024:.2f} MiB | {md(3) / 1024:.2f} MiB | {da:.2f} KiB |")
EOF
