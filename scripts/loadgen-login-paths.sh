#!/usr/bin/env bash
# Server CPU per reconnect for each login path of the load generator (`--auth`): SASL1,
# SASL2 + Bind 2, and FAST tokens (XEP-0484), in a reconnect storm against Meerkat's
# embedded default configuration (release build; ports moved below the ephemeral range;
# users made with `meerkat user add`). A fresh server for every path.
#
#   scripts/loadgen-login-paths.sh [SESSIONS [SECONDS [PATHS [LOADGEN OPTIONS...]]]]
#
# Defaults: 200 sessions, 20 s, paths "sasl1 fast sasl2", STARTTLS with SCRAM-SHA-1 and a
# full TLS handshake per login. Extra options go to every loadgen run, e.g.
# `--tls direct --tls-resumption` (then PORT_OFFSET=1 picks the direct TLS listener).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh
sessions=${1:-200} secs=${2:-20} paths=${3:-"sasl1 fast sasl2"}
shift $(($# < 3 ? $# : 3))
base=${PORT:-25941}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p meerkat -p meerkat-loadgen
meerkat=$(realpath "$target/release/meerkat")
loadgen=$(realpath "$target/release/meerkat-loadgen")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
sed -e "s/port = 5222/port = $base/" -e "s/port = 5223/port = $((base + 1))/" \
    -e "s/port = 5280/port = $((base + 2))/" -e "s/port = 9091/port = $((base + 3))/" \
    -e 's/hosts = \["localhost"\]/hosts = ["localhost"]\n  loglevel = "warning"/' \
    server/src/config/default.toml > "$work/m.toml"
for i in $(seq 0 $((sessions - 1))); do
    (cd "$work" && "$meerkat" --config m.toml user add "user$i@localhost" password >/dev/null)
done
port=$((base + ${PORT_OFFSET:-0}))
for path in $paths; do
    (cd "$work" && exec "$meerkat" --config m.toml 2>>"$work/server.log") &
    pid=$!
    until port_open "$port"; do sleep 0.1; done
    echo "== --auth $path (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$loadgen" --addr "127.0.0.1:$port" -n "$sessions" --mechanism scram-sha-1 --auth "$path" \
        --scenario reconnect --duration "$secs" --server-pid "$pid" --quiet "$@" || true
    kill -TERM "$pid"
    wait "$pid" || true
done
