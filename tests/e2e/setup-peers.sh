#!/usr/bin/env bash
# Installs the peer servers of the S2S interop tests (server/tests/interop.rs):
# Prosody and ejabberd from Debian's packages. The tests run them as plain
# foreground processes (ejabberd through erl directly, not ejabberdctl, which
# switches user) with configs they write into temporary folders, so the
# packages' own services are never started (a policy-rc.d refuses them during
# the install) and nothing here needs systemd. Idempotent; safe to run
# concurrently (flock).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "[e2e setup-peers] $*" >&2; }

exec 9>"$here/.setup-peers.lock"
if command -v flock >/dev/null; then flock 9; fi

missing=()
command -v prosody >/dev/null || missing+=(prosody)
dpkg-query -W -f '${Status}' ejabberd 2>/dev/null | grep -q "install ok installed" || missing+=(ejabberd)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "need to install ${missing[*]}, but not root: install them and run again"
        exit 1
    fi
    say "apt-get install ${missing[*]}"
    apt-get update -qq >&2
    # Keep the packages' services from starting: the tests run their own.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || status=$?
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
    [ "$status" = 0 ] || { say "apt-get failed ($status)"; exit "$status"; }
fi
say "prosody $(dpkg-query -W -f '${Version}' prosody), ejabberd $(dpkg-query -W -f '${Version}' ejabberd)"
say "ready"
