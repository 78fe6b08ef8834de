#!/usr/bin/env bash
# Round trips to a bound session and server CPU per reconnect for each login path
# (SASL1, SASL2 + Bind 2, SASL2 + FAST, TLS 1.3 0-RTT), on each runtime, against
# the embedded default configuration (direct TLS with 0-RTT on the second port).
#
#   scripts/reconnect-paths.sh [RECONNECTS_PER_PATH]
#
# Release build; loopback; one fresh server per runtime in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p meerkat -p meerkat-tests --example reconnect
meerkat=$(realpath "$target/release/meerkat")
reconnect=$(realpath "$target/release/examples/reconnect")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=25901
sed -e "s/port = 5222/port = $((port - 1))/" -e "s/port = 5223/port = $port/" \
    server/src/config/default.toml > "$work/m.toml"
sed -i 's/hosts = \["localhost"\]/hosts = ["localhost"]\n  loglevel = "warning"/' "$work/m.toml"
(cd "$work" && "$meerkat" --config m.toml user add alice@localhost s3cret)
for rt in tokio smol glommio; do
    (cd "$work" && exec "$meerkat" --config m.toml --runtime "$rt" 2>>"$work/server.log") &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    echo "== $rt (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$reconnect" --addr "127.0.0.1:$port" --ca "$work/meerkat-data/cert.pem" --user alice \
        --password s3cret --pid "$pid" -n "$n"
    kill -TERM "$pid"; wait "$pid" || true
done
