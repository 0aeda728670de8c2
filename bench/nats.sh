# Sourced by the bench scripts that need a NATS server (not run on its own).
#   nats_start   starts $NATS_SERVER (default /usr/sbin/nats-server) on a loopback port
#                the OS picks, and returns once it listens, with NATS_PID, NATS_DIR and
#                NATS_URL set (not exported);
#   nats_stop    stops it and removes its directory: for the script's own EXIT trap, set
#                before nats_start; it does nothing before then and never fails;
#   free_port    prints a free loopback TCP port.
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
NATS_PID=
NATS_DIR=
NATS_URL=

nats_start() {
    NATS_DIR=$(mktemp -d)
    "$NATS_SERVER" -a 127.0.0.1 -p -1 --ports_file_dir "$NATS_DIR" >/dev/null 2>&1 &
    NATS_PID=$!
    local ports="$NATS_DIR/nats-server_$NATS_PID.ports"
    for _ in $(seq 100); do
        [ -s "$ports" ] && break
        sleep 0.05
    done
    NATS_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0])' "$ports")
}

nats_stop() {
    if [ -n "$NATS_PID" ]; then
        kill "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
    fi
    if [ -n "$NATS_DIR" ]; then
        rm -rf "$NATS_DIR"
    fi
    NATS_PID=
    NATS_DIR=
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
