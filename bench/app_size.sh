#!/usr/bin/env bash
# Size and memory of examples/listener_app built small and static (musl, profile `small`),
# with the default features, with --no-default-features (no HTTP server), with
# --features jetstream (the defaults plus JetStream), and with --features tls,nkeys (the
# defaults plus TLS and NKey/JWT credentials, on ring).
#
#   bench/app_size.sh
#
# For each build: the file size, then the binary is run against a nats-server that this
# script starts (on a port the OS picks, passed as NATS_URL), and once it has printed its
# banner (connected and subscribed) the script reads VmRSS, RssAnon and RssFile from
# /proc/PID/status three times, 200 ms apart, and keeps the largest. It then sends 1,000
# requests and 1,000 stream messages with nats-py (installed with Python Panini into
# target/py-venv by scripts/install-python-panini; $PANINI_PYTHON overrides it), checks
# the replies, and reads the memory again. Every build connects in plain text: the TLS build
# shows what the features cost a program that has them compiled in; so does the JetStream
# build, whose listener_app does not use JetStream (its banner says False).
#
# ring (under tls and nkeys) compiles C for the target. The script points cc at musl-gcc
# (Debian's musl-tools) if there is one, else at the host's gcc, which works for ring on
# x86_64 musl; a CC_x86_64_unknown_linux_musl of your own wins.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-/tmp/panini-app-size}
mkdir -p "$OUT"

if [ -z "${PANINI_PYTHON:-}" ]; then
    scripts/install-python-panini
    PANINI_PYTHON=target/py-venv/bin/python
fi

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
if [ -z "${CC_x86_64_unknown_linux_musl:-}" ] && ! command -v x86_64-linux-musl-gcc >/dev/null; then
    if command -v musl-gcc >/dev/null; then
        export CC_x86_64_unknown_linux_musl=musl-gcc
    else
        export CC_x86_64_unknown_linux_musl=gcc
    fi
fi

build() { # build NAME [cargo flags...]
    local name=$1
    shift
    echo "cargo build --profile small --target $TARGET --example listener_app $*" >&2
    cargo build --quiet --profile small --target "$TARGET" --example listener_app "$@"
    cp "$TARGET_DIR/$TARGET/small/examples/listener_app" "$OUT/listener_app.$name"
}
build default
build no-http --no-default-features
build jetstream --features jetstream
build tls-nkeys --features tls,nkeys

. bench/nats.sh
APP_PID=
# Under set -e a failing kill or wait here (the server's exit status after SIGTERM) would
# become the script's: it exited non-zero after a good run.
cleanup() {
    if [ -n "$APP_PID" ]; then
        kill "$APP_PID" 2>/dev/null || true
        wait "$APP_PID" 2>/dev/null || true
    fi
    nats_stop
}
trap cleanup EXIT
nats_start
export NATS_URL

# mem PID: largest "VmRSS RssAnon RssFile" (KiB) of three reads.
mem() {
    local best="0 0 0"
    for _ in 1 2 3; do
        sleep 0.2
        best=$(awk -v best="$best" '
            /^VmRSS:/ {v=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2}
            END {split(best, b, " "); if (v > b[1]) print v, a, f; else print best}' \
            "/proc/$1/status")
    done
    echo "$best"
}

traffic() {
    "$PANINI_PYTHON" - "$NATS_URL" <<'EOF'
import asyncio, json, sys
import nats

async def main():
    nc = await nats.connect(sys.argv[1])
    for i in range(1000):
        r = await nc.request("some.subject.for.request", b'{"data":"request1234567890"}', timeout=5)
        assert json.loads(r.data)["success"] is True, r.data
        await nc.publish("some.subject.for.stream", b'{"data":"event1234567890"}')
    await nc.flush()
    await nc.drain()

asyncio.run(main())
EOF
}

printf '| build | file size | idle VmRSS | idle RssAnon | idle RssFile | VmRSS after 1,000 req + 1,000 msgs | RssAnon after |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for name in default no-http jetstream tls-nkeys; do
    bin="$OUT/listener_app.$name"
    size=$(stat -c %s "$bin")
    file "$bin" | grep -q 'statically linked\|static-pie linked' || echo "warning: $bin is not static" >&2
    PANINI_LOG=warn "$bin" >"$OUT/$name.stdout" &
    APP_PID=$!
    for _ in $(seq 200); do
        grep -q 'Panini service connected' "$OUT/$name.stdout" 2>/dev/null && break
        sleep 0.05
    done
    sleep 1
    read -r rss anon file_rss < <(mem "$APP_PID")
    traffic
    sleep 0.5
    read -r rss2 anon2 _ < <(mem "$APP_PID")
    kill -TERM "$APP_PID"
    wait "$APP_PID" || true
    APP_PID=
    handled=$(grep -c 'has been processed' "$OUT/$name.stdout" || true)
    echo "$name: handled $handled messages" >&2
    awk -v n="$name" -v s="$size" -v r="$rss" -v a="$anon" -v f="$file_rss" -v r2="$rss2" -v a2="$anon2" 'BEGIN {
        printf "| %s | %.0f KiB (%d B) | %.2f MiB | %.2f MiB | %.2f MiB | %.2f MiB | %.2f MiB |\n",
            n, s / 1024, s, r / 1024, a / 1024, f / 1024, r2 / 1024, a2 / 1024 }'
done
