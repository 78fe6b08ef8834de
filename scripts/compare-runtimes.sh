#!/usr/bin/env bash
# Runs the same load against Meerkat on each runtime, one after the other in one run,
# and prints a table: memory per idle TLS session, server CPU per session setup, and
# chat throughput and latency. Release build; loopback; the machine's CPU count as
# threads (hub shards).
#
#   scripts/compare-runtimes.sh [SESSIONS] [PAIRS_FOR_CHAT]
#
# Each runtime gets a fresh server process on the same database (accounts registered
# once, in-band, before the first measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-5000}
chat_sessions=${2:-1000}
# Below the ephemeral range (32768-60999), where a client socket could hold it.
port=${PORT:-25811}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p meerkat -p meerkat-loadgen
meerkat=$(realpath "$target/release/meerkat")
loadgen=$(realpath "$target/release/meerkat-loadgen")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/m.toml" <<TOML
[general]
hosts = ["localhost"]
loglevel = "warning"

[[listen.c2s]]
port = $port
ip_address = "127.0.0.1"
tls.mode = "starttls"

[outgoing_pools.rdbms.default.connection]
driver = "sqlite"
database = "$work/bench.db"

[modules.mod_offline]

[modules.mod_register]
TOML

start() { # runtime
    (cd "$work" && exec "$meerkat" --config m.toml --runtime "$1" 2>>"$work/server.log") &
    pid=$!
    for _ in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "server ($1) did not start" >&2; cat "$work/server.log" >&2
    ss -tan "( sport = :$port )" | awk '{print $1}' | sort | uniq -c >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }
lg() { "$loadgen" --addr 127.0.0.1:$port --domain localhost --json --quiet "$@"; }

start tokio
lg -n "$sessions" --register --hold 0 --concurrency 200 > /dev/null
stop

for rt in tokio smol glommio; do
    start "$rt"
    lg -n "$sessions" --hold 3 --concurrency 200 --server-pid "$pid" > "$work/$rt-idle.json"
    stop
    start "$rt"
    lg -n "$chat_sessions" --scenario chat --msg-rate 10000 --duration 6 --concurrency 200 > "$work/$rt-chat10k.json"
    # Past saturation: what the server delivers is its throughput. The run is not
    # "clean" when senders fall behind, so its exit status is not checked; losses are
    # reported in the table.
    lg -n "$chat_sessions" --scenario chat --msg-rate 60000 --duration 6 --grace 10 --concurrency 200 \
        > "$work/$rt-chatmax.json" || true
    stop
done

python3 - "$work" "$sessions" "$chat_sessions" <<'PY'
import json, sys
work, sessions, chat = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"{sessions} idle STARTTLS+SCRAM-SHA-1 sessions; chat between {int(chat)//2} pairs")
print(f"{'runtime':8} {'KiB/session':>11} {'ms CPU/setup':>12} {'p99 ms @10k/s':>14} {'lost':>5} {'max msg/s':>10} {'p99 ms @max':>11} {'lost':>5}")
for rt in ["tokio", "smol", "glommio"]:
    idle = json.load(open(f"{work}/{rt}-idle.json"))
    c10 = json.load(open(f"{work}/{rt}-chat10k.json"))["chat"]
    cmax = json.load(open(f"{work}/{rt}-chatmax.json"))["chat"]
    srv = idle["server"]
    print(f"{rt:8} {srv['rss_per_session_kib']:>11.1f} {srv['cpu_ms_per_session_setup']:>12.3f} "
          f"{c10['latency']['p99_ms']:>14.2f} {c10['lost']:>5} {cmax['delivered_per_sec']:>10.0f} "
          f"{cmax['latency']['p99_ms']:>11.2f} {cmax['lost']:>5}")
PY
