#!/usr/bin/env bash
# Runs the e2e client scripts against Prosody (Debian's package) instead of
# meerkat: a reference server for working on the scripts themselves, whatever
# state meerkat is in. Not part of CI. Everything lives in a temp dir
# (config, self-signed certificate, data, logs) and Prosody is stopped at the
# end. Usage: tests/e2e/against-prosody.sh [--keep]  (--keep: leave the temp dir)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "[against-prosody] $*"; }
keep=""
[ "${1:-}" = --keep ] && keep=1

"$here/setup.sh"
if ! command -v prosody >/dev/null; then
    say "installing prosody (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null
fi

work="$(mktemp -d /tmp/e2e-prosody.XXXXXX)"
prosody_pid=""
cleanup() {
    if [ -n "$prosody_pid" ]; then kill "$prosody_pid" 2>/dev/null || true; wait "$prosody_pid" 2>/dev/null || true; fi
    if [ -n "$keep" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -days 2 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
read -r p1 p2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
mkdir -p "$work/data"
cat >"$work/prosody.cfg.lua" <<EOF
pidfile = "$work/prosody.pid"
data_path = "$work/data"
certificates = "$work"
run_as_root = true
interfaces = { "127.0.0.1" }
c2s_ports = { $p1 }
c2s_direct_tls_ports = { $p2 }
s2s_ports = { }
admin_socket = "$work/admin.sock"
modules_enabled = { "roster", "saslauth", "tls", "disco", "offline", "ping", "posix" }
modules_disabled = { "s2s" }
-- plain storage so that SCRAM-SHA-256 is offered next to SCRAM-SHA-1
authentication = "internal_plain"
c2s_require_encryption = true
log = { info = "$work/prosody.log" }
ssl = { certificate = "$work/cert.pem", key = "$work/key.pem" }
VirtualHost "localhost"
EOF
users="sa sb na nb xa xb ya yb"
for u in $users; do
    prosodyctl --config "$work/prosody.cfg.lua" register "$u" localhost "pw-$u" 2>/dev/null
done
prosody -F --config "$work/prosody.cfg.lua" >"$work/prosody.out" 2>&1 &
prosody_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p1") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$p2") 2>/dev/null; then
        break
    fi
    sleep 0.1
done
say "prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || true) on 127.0.0.1:$p1 (STARTTLS) and :$p2 (direct TLS)"

token="prosody-$$-$(date +%s)"
peer() { # lib role user peer
    local lib=$1 role=$2 user=$3 peer=$4
    local args=(--role "$role" --jid "$user@localhost" --password "pw-$user" --peer "$peer@localhost"
        --starttls-port "$p1" --tls-port "$p2" --ca "$work/cert.pem" --token "$token" --timeout 15)
    case $lib in
        slixmpp) "$here/.venv/bin/python" "$here/slixmpp_peer.py" "${args[@]}" ;;
        xmppjs) NODE_EXTRA_CA_CERTS="$work/cert.pem" node "$here/node/peer.mjs" "${args[@]}" ;;
    esac >"$work/$user.log" 2>&1
}
pids=()
names=()
run() { # lib user (background)
    peer "$@" &
    pids+=($!)
    names+=("$1 $3")
}
run slixmpp a sa sb; run slixmpp b sb sa
run xmppjs a na nb; run xmppjs b nb na
run slixmpp a xa xb; run xmppjs b xb xa
run xmppjs a ya yb; run slixmpp b yb ya
passed=0
failed=0
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
for u in $users; do
    echo "----- $u"
    cat "$work/$u.log"
done
[ "$failed" = 0 ] || { echo "----- prosody log"; cat "$work/prosody.log"; }
echo "against-prosody: $passed passed, $failed failed"
[ "$failed" = 0 ]
