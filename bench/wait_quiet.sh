#!/bin/sh
# Waits until the shared machine is quiet enough to measure: no `rustc` running and a
# 1-minute load average under $MAX_LOAD (default 1.5), polled every 20 s for up to
# $WAIT_SECS (default 600). Prints the state each time; exits 0 once quiet, 1 if it never
# was (the caller may measure anyway and must say so).
#   bench/wait_quiet.sh && app_bench ...
max_load=${MAX_LOAD:-1.5}
wait_secs=${WAIT_SECS:-600}
waited=0
while :; do
    rustcs=$(pgrep -c rustc)
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "$(date -u +%H:%M:%SZ) rustc=$rustcs load1=$load"
    if [ "$rustcs" -eq 0 ] && awk -v l="$load" -v m="$max_load" 'BEGIN { exit !(l < m) }'; then
        exit 0
    fi
    if [ "$waited" -ge "$wait_secs" ]; then
        echo "never quiet within ${wait_secs} s"
        exit 1
    fi
    sleep 20
    waited=$((waited + 20))
done
