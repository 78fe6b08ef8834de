#!/usr/bin/env bash
# Meerkat side by side with ejabberd and Prosody (Debian's packages), in one run, on
# loopback, with the same load generator (meerkat-loadgen) and the same scenarios:
#
#   idle       N sessions (STARTTLS, SCRAM-SHA-1, bind, presence), held a few seconds:
#              KiB of server RSS per session, ms of server CPU per session setup
#   chat       PAIRS pairs at a fixed rate: p50/p99 latency and loss; then the same
#              pairs far past saturation: the messages per second actually delivered
#   reconnect  a reconnect storm: reconnects per second, latency, server CPU per reconnect
#   presence   a presence storm with rosters: notifications per second, latency, loss,
#              server CPU per 1000 notifications
#
# Each server runs as a plain foreground process in a temporary directory (no systemd),
# one at a time, and is started afresh before every scenario (so the idle run's memory is
# measured on a fresh process). Accounts are registered in-band once per server, and the
# presence users' rosters set up once, before the first measurement. All servers get the
# same self-signed certificate, the domain `localhost`, C2S with STARTTLS on 127.0.0.1, no
# shapers or connection limits, and a high open-files limit. The load generator shares the
# machine's cores with the server: run this on an otherwise quiet machine.
#
#   scripts/compare-servers.sh [options]
#     --sessions N            idle sessions (5000)
#     --pairs P               chat pairs (500)
#     --msg-rate R            fixed chat rate, msg/s in all (10000)
#     --max-rate R            chat rate past saturation (60000)
#     --duration S            seconds of each chat, reconnect and presence run (10)
#     --reconnect-sessions N  sessions in the reconnect storm (1000)
#     --reconnect-hold S      mean seconds a session stays before reconnecting (1)
#     --presence-sessions N   sessions in the presence storm (1000)
#     --roster-size K         contacts per session, even (10)
#     --presence-rate R       presence updates per second in all (1000)
#     --concurrency C         session setups in flight (100; every server listens with a
#                             backlog of 1024)
#     --servers "LIST"        any of: meerkat ejabberd prosody (all three)
#     --markdown FILE         also write the tables as markdown
#     --keep                  keep the working directory (configs, logs, JSON reports)
#
# Ports: 25821 (Meerkat), 25822 (ejabberd), 25823 (Prosody), below the ephemeral range;
# PORT_BASE=N moves them to N+1.. N+3. Needs root (apt-get, open-files limit).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh

sessions=5000 pairs=500 msg_rate=10000 max_rate=60000 duration=10
rc_sessions=1000 rc_hold=1 pr_sessions=1000 roster_size=10 pr_rate=1000 concurrency=100
servers="meerkat ejabberd prosody" markdown="" keep=""
while [ $# -gt 0 ]; do
    case $1 in
        --sessions) sessions=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --msg-rate) msg_rate=$2; shift 2 ;;
        --max-rate) max_rate=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --reconnect-sessions) rc_sessions=$2; shift 2 ;;
        --reconnect-hold) rc_hold=$2; shift 2 ;;
        --presence-sessions) pr_sessions=$2; shift 2 ;;
        --roster-size) roster_size=$2; shift 2 ;;
        --presence-rate) pr_rate=$2; shift 2 ;;
        --concurrency) concurrency=$2; shift 2 ;;
        --servers) servers=$2; shift 2 ;;
        --markdown) markdown=$(realpath -m "$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare-servers: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done
say() { echo "[compare-servers] $*" >&2; }
for s in $servers; do
    case $s in meerkat|ejabberd|prosody) ;; *) say "unknown server $s"; exit 1 ;; esac
done
port_base=${PORT_BASE:-25820}
declare -A port=([meerkat]=$((port_base + 1)) [ejabberd]=$((port_base + 2)) [prosody]=$((port_base + 3)))

# --- what runs where ------------------------------------------------------------------
missing=()
[[ " $servers " == *" ejabberd "* ]] && ! command -v ejabberdctl >/dev/null && missing+=(ejabberd)
[[ " $servers " == *" prosody "* ]] && ! command -v prosody >/dev/null && missing+=(prosody)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} with apt-get (waits for another apt run rather than failing)"
    # Keep the packages' own services from starting: this script runs its own instances.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        policy=1
    fi
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
    [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
fi
# A server installed by the package and running as a service would disturb the numbers.
if pgrep -f 'mnesia dir "?/var/lib/ejabberd' >/dev/null || pgrep -f '^lua[0-9.]* /usr/bin/prosody$' >/dev/null; then
    say "warning: a system ejabberd or Prosody service is running; stop it for quiet numbers"
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p meerkat -p meerkat-loadgen
meerkat=$(realpath "$target/release/meerkat")
loadgen=$(realpath "$target/release/meerkat-loadgen")

# Generous open-files limits for the servers (inherited) and the load generator.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((sessions + 1000)) ]; then
    say "open-files limit $(ulimit -n) is too low for $sessions sessions (run as root)"; exit 1
fi

work=$(mktemp -d /tmp/compare-servers.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "$keep" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -days 30 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"

# --- configs ---------------------------------------------------------------------------
# Meerkat: the embedded default's modules plus in-band registration, STARTTLS only.
mkdir -p "$work/meerkat"
meerkat_bench_config "$work/meerkat/meerkat.toml" "${port[meerkat]}" "$work/meerkat/meerkat.db" \
    "$work/cert.pem" "$work/key.pem"

# ejabberd: SCRAM-SHA-1 credentials (like Meerkat's stored SCRAM), no shaper, no
# registration throttle, a listen backlog of 1024 (the default of 5 overflows).
mkdir -p "$work/ejabberd/spool"
cat > "$work/ejabberd/ejabberd.yml" <<YAML
hosts:
  - localhost
loglevel: warning
log_rotate_count: 0
certfiles:
  - "$work/combined.pem"
listen:
  -
    port: ${port[ejabberd]}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    shaper: none
    access: c2s
    max_stanza_size: 65536
    backlog: 1024
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha
registration_timeout: infinity
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
  c2s_shaper: none
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  register:
    allow: all
modules:
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_register:
    access: register
    ip_access: all
  mod_roster: {}
  mod_version: {}
YAML

# Prosody: hashed (SCRAM-SHA-1) storage, epoll, no mod_limits (no rate limits), loopback
# allowed to register without throttling, a listen backlog of 1024.
mkdir -p "$work/prosody/data"
cat > "$work/prosody/prosody.cfg.lua" <<LUA
pidfile = "$work/prosody/prosody.pid"
data_path = "$work/prosody/data"
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { ${port[prosody]} }
c2s_direct_tls_ports = { }
s2s_ports = { }
admin_socket = "$work/prosody/admin.sock"
network_backend = "epoll"
network_settings = { tcp_backlog = 1024 }
modules_enabled = { "roster", "saslauth", "tls", "disco", "offline", "ping", "register", "version", "posix" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
allow_registration = true
registration_whitelist = { "127.0.0.1" }
c2s_require_encryption = true
log = { warn = "$work/prosody/prosody.log" }
ssl = { certificate = "$work/cert.pem", key = "$work/key.pem" }
VirtualHost "localhost"
LUA

# --- start and stop ----------------------------------------------------------------------
start() { # server
    local s=$1
    if port_open "${port[$s]}"; then
        say "port ${port[$s]} is already in use (another server?); set PORT_BASE"; exit 1
    fi
    cd "$work/$s"
    case $s in
        meerkat)
            (exec "$meerkat" --config meerkat.toml >>server.log 2>&1) &
            ;;
        ejabberd)
            # The Erlang node itself, in the foreground, as this user: ejabberdctl would
            # switch to the ejabberd user, whose open-files limit may be 1024.
            (export EJABBERD_CONFIG_PATH="$work/ejabberd/ejabberd.yml" \
                EJABBERD_LOG_PATH="$work/ejabberd/ejabberd.log" \
                ERL_LIBS=/usr/lib/x86_64-linux-gnu ERL_CRASH_DUMP="$work/ejabberd/erl_crash.dump" \
                ERL_MAX_PORTS=$(( $(ulimit -n) < 1000000 ? $(ulimit -n) : 1000000 )) \
                ERL_MAX_ETS_TABLES=10000
             exec erl -noshell -noinput +K true +P 2000000 \
                -mnesia dir "\"$work/ejabberd/spool\"" -s ejabberd >>server.log 2>&1) &
            ;;
        prosody)
            (exec prosody -F --config "$work/prosody/prosody.cfg.lua" >>server.log 2>&1) &
            ;;
    esac
    pid=$!
    cd - >/dev/null
    for _ in $(seq 600); do
        if port_open "${port[$s]}"; then
            sleep 0.5 # let it finish starting what it starts after listening
            kill -0 "$pid" 2>/dev/null && return
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    say "$s did not start; its logs:"; tail -n 30 "$work/$s"/*.log >&2; exit 1
}
stop() {
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
lg() { # server name args...: one load generator run, JSON report to $work/SERVER-NAME.json
    local s=$1 name=$2; shift 2
    local rc=0
    "$loadgen" --addr "127.0.0.1:${port[$s]}" --domain localhost --json --quiet \
        --concurrency "$concurrency" "$@" > "$work/$s-$name.json" 2>>"$work/$s-loadgen.log" || rc=$?
    # 2 = finished but not clean (a loss, a failed session): reported in the table.
    if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then say "$s $name: load generator exit code $rc"; fi
    if [ -s "$work/$s-$name.json" ]; then
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r["sessions"]; print("  %s: %s, %s/%s sessions, clean %s" % (sys.argv[2], r["outcome"], s["established"], s["requested"], r["clean"]))' \
            "$work/$s-$name.json" "$name" >&2 || true
    fi
}

chat_sessions=$((2 * pairs))
users=$(( sessions > chat_sessions ? sessions : chat_sessions ))
users=$(( users > rc_sessions ? users : rc_sessions ))
load() { cut -d' ' -f1-3 /proc/loadavg; }
date -u +%Y-%m-%dT%H:%MZ > "$work/date"
: > "$work/loads"
for s in $servers; do
    say "$s: load average before: $(load)"
    echo "$s $(load)" >> "$work/loads"
    start "$s"
    say "$s: registering $users users and $pr_sessions presence users with rosters of $roster_size"
    lg "$s" register -n "$users" --register --hold 0 --setup-timeout 120
    lg "$s" rosters -n "$pr_sessions" --prefix pres --register --scenario presence \
        --roster-size "$roster_size" --duration 0 --roster-timeout 600 --setup-timeout 120
    stop

    start "$s"
    say "$s: idle, $sessions sessions"
    lg "$s" idle -n "$sessions" --hold 5 --server-pid "$pid"
    stop

    start "$s"
    say "$s: chat, $pairs pairs at $msg_rate msg/s, then at $max_rate msg/s"
    lg "$s" chat -n "$chat_sessions" --scenario chat --msg-rate "$msg_rate" --duration "$duration" \
        --server-pid "$pid"
    lg "$s" chatmax -n "$chat_sessions" --scenario chat --msg-rate "$max_rate" --duration "$duration" \
        --grace 10 --server-pid "$pid"
    stop

    start "$s"
    say "$s: reconnect storm, $rc_sessions sessions, hold $rc_hold s"
    lg "$s" reconnect -n "$rc_sessions" --scenario reconnect --duration "$duration" \
        --reconnect-hold "$rc_hold" --server-pid "$pid"
    stop

    start "$s"
    say "$s: presence storm, $pr_sessions sessions, $roster_size contacts, $pr_rate updates/s"
    lg "$s" presence -n "$pr_sessions" --prefix pres --scenario presence --roster-size "$roster_size" \
        --presence-rate "$pr_rate" --duration "$duration" --server-pid "$pid"
    stop
done

versions=$(
    echo "meerkat $(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "ejabberd $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo n/a)"
    echo "prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo n/a)"
    echo "erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo n/a)"
)
{
    echo "sessions=$sessions"; echo "pairs=$pairs"; echo "msg_rate=$msg_rate"; echo "max_rate=$max_rate"
    echo "duration=$duration"; echo "reconnect_sessions=$rc_sessions"; echo "reconnect_hold=$rc_hold"
    echo "presence_sessions=$pr_sessions"; echo "roster_size=$roster_size"; echo "presence_rate=$pr_rate"
    echo "concurrency=$concurrency"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
    echo "kernel=$(uname -r)"
    echo "date=$(cat "$work/date")"
    echo "meerkat=$(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "ejabberd=$(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo n/a)"
    echo "prosody=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo n/a)"
    echo "erlang=$(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo n/a)"
    echo "lua=$(dpkg-query -W -f '${Version}' lua5.4 2>/dev/null || echo n/a)"
    while read -r s l1 l5 l15; do echo "load_$s=$l1 $l5 $l15"; done < "$work/loads"
} > "$work/meta"
python3 scripts/compare-servers-report.py "$work" "$servers" "$markdown"
