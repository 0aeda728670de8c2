#!/usr/bin/env bash
# Where the end-to-end publish (bench/src/bin/e2e_pub) spends its time, per process: CPU
# time, context switches and syscalls per message of the publisher, the subscriber and
# nats-server, counted by `perf stat` (software events and syscall tracepoints, so it
# works without hardware counters; it slows the processes far less than strace).
#
#   bench/e2e_profile.sh                    # both clients, 200,000 messages, 3 rounds each
#   N=50000 ROUNDS=1 KINDS=ours bench/e2e_profile.sh
#   RECORD=1 bench/e2e_profile.sh           # `perf record -e cpu-clock` of pub and sub instead
#   BIN=/elsewhere/e2e_pub bench/e2e_profile.sh   # another build (say, of an experiment)
#
# The script is the parent e2e_pub would be: it starts one nats-server, then per round
# and client a subscriber (`e2e_pub --sub`), waits for its `ready`, runs the publisher
# (`e2e_pub --pub`), tells the subscriber `end` and reads its `done` line. Each of the
# three processes runs under its own `perf stat` (the server's is attached by pid for the
# round). The table gives medians over the rounds, per message for CPU time and per 1,000
# messages for the counts; raw `perf stat` output is in
# $OUT (default /tmp/panini-e2e-profile).
set -euo pipefail
trap '' PIPE # telling a subscriber that is already gone `end` must not kill the script
cd "$(dirname "$0")/.."

N=${N:-200000}
ROUNDS=${ROUNDS:-3}
KINDS=${KINDS:-"ours async-nats"}
OUT=${OUT:-/tmp/panini-e2e-profile}
RECORD=${RECORD:-0}
BIN=${BIN:-bench/target/release/e2e_pub}
SYSCALLS="read recvfrom write writev sendto futex epoll_wait epoll_pwait epoll_ctl sched_yield"
EVENTS="task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter"
for s in $SYSCALLS; do EVENTS="$EVENTS,syscalls:sys_enter_$s"; done

mkdir -p "$OUT"
rm -f "$OUT"/*.stat "$OUT"/*.perf.data
if [ "$BIN" = bench/target/release/e2e_pub ]; then
    echo "building (release) ..." >&2
    cargo build --release --quiet --manifest-path bench/Cargo.toml --bin e2e_pub
fi

. bench/nats.sh
trap nats_stop EXIT
nats_start
URL=$NATS_URL
echo "nats-server at $URL; $N msgs; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# One role under perf stat, or under perf record if asked (perf stat around perf record
# would count perf's own syscalls); extra arguments go to e2e_pub.
role() { # role NAME ARGS...
    local name=$1
    shift
    if [ "$RECORD" = 1 ]; then
        perf record -q -e cpu-clock -F 4999 -o "$OUT/$name.perf.data" -- "$BIN" "$@"
    else
        perf stat -x, -e "$EVENTS" -o "$OUT/$name.stat" -- "$BIN" "$@"
    fi
}

for round in $(seq "$ROUNDS"); do
    for kind in $KINDS; do
        tag="$(echo "$kind" | tr -d -)$round"
        subject="bench.e2eprof.$tag"
        # perf stat -p attaches asynchronously and says nothing when it has: it starts
        # before the subscriber, and the pause only keeps the first publishes inside it.
        perf stat -x, -e "$EVENTS" -o "$OUT/$kind.server.$round.stat" -p "$NATS_PID" &
        server_perf=$!
        sleep 0.2
        coproc SUB { role "$kind.sub.$round" --sub "$kind" "$URL" "$subject" "$N"; }
        # bash unsets SUB and SUB_PID once the coprocess exits: keep copies.
        sub_pid=$SUB_PID
        exec {sub_out}<&"${SUB[0]}" {sub_in}>&"${SUB[1]}"
        read -r ready <&"$sub_out"
        [ "$ready" = ready ] || { echo "subscriber said $ready" >&2; exit 1; }
        pub_done=$(role "$kind.pub.$round" --pub "$kind" "$URL" "$subject" "$N")
        echo end >&"$sub_in" 2>/dev/null || true # it may be done and gone already
        read -r sub_done <&"$sub_out"
        exec {sub_out}<&- {sub_in}>&-
        kill -INT "$server_perf"
        wait "$server_perf" || true
        wait "$sub_pid" || true
        echo "  $kind round $round: pub $pub_done | sub $sub_done" >&2
    done
done

if [ "$RECORD" = 1 ]; then
    echo "profiles: perf report -i $OUT/<ours|async-nats>.<pub|sub>.<round>.perf.data" \
        "--sort comm,dso,sym" >&2
    exit 0
fi

# Per message (CPU) or per 1,000 messages (the counts), per process: medians over rounds.
python3 - "$OUT" "$N" "$ROUNDS" $KINDS <<'EOF'
import csv, statistics, sys
out, n, rounds, kinds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def counters(path):
    got = {}
    for row in csv.reader(l for l in open(path) if l.strip() and not l.startswith('#')):
        if len(row) < 3:
            continue
        name = row[2].replace('syscalls:sys_enter_', '').replace('raw_syscalls:sys_enter', 'syscalls')
        try:
            got[name] = float(row[0])
        except ValueError:
            got[name] = float('nan')
    return got
names = ['task-clock', 'syscalls', 'context-switches', 'cpu-migrations', 'read', 'recvfrom',
         'write', 'writev', 'sendto', 'futex', 'epoll_wait', 'epoll_pwait', 'epoll_ctl',
         'sched_yield']
print('CPU ns per message (whole process, start-up included); the rest per 1,000 messages')
print('| process | ' + ' | '.join(n_ if n_ != 'task-clock' else 'CPU ns' for n_ in names) + ' |')
print('|---|' + '---:|' * len(names))
for kind in kinds:
    for proc in ['pub', 'sub', 'server']:
        runs = []
        for r in range(1, rounds + 1):
            path = f'{out}/{kind}.{proc}.{r}.stat'
            runs.append(counters(path))
        cells = []
        for name in names:
            vals = [run.get(name, float('nan')) for run in runs]
            med = statistics.median(vals) / n
            # task-clock is in msec
            cells.append(f'{med * 1e6:.0f}' if name == 'task-clock' else f'{med * 1000:.1f}')
        print(f'| {kind} {proc} | ' + ' | '.join(cells) + ' |')
EOF
