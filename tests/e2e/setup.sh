#!/usr/bin/env bash
# Installs what the end-to-end tests need: openssl, Debian's Chromium (the
# browser test), a Python venv with slixmpp and prometheus_client
# (tests/e2e/.venv, from requirements.txt), and @xmpp/client, strophe.js,
# converse.js and playwright-core (tests/e2e/node, `npm ci` from
# package-lock.json; no browser is ever downloaded through npm). Installs
# python3/venv/node/npm/chromium with apt-get when they are missing (Debian, as
# root). Idempotent: when the
# requirements and the lock file have not changed since the last run it only
# checks and returns. Safe to run concurrently (flock).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
nodedir="$here/node"
say() { echo "[e2e setup] $*" >&2; }

apt_updated=""
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        say "need to install $*, but not root: install them and run again"
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

exec 9>"$here/.setup.lock"
if command -v flock >/dev/null; then flock 9; fi

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- openssl: server/tests/e2e.rs makes the test certificate with it --------
if ! command -v openssl >/dev/null; then
    apt_install openssl
fi

# --- Chromium: the browser test drives Debian's build with playwright-core ----
if ! command -v chromium >/dev/null; then
    apt_install chromium
fi
say "$(chromium --version 2>/dev/null || echo 'chromium: no version')"

# --- Python ---------------------------------------------------------------
if ! command -v python3 >/dev/null; then
    apt_install python3 python3-venv
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { say "slixmpp needs Python >= 3.11, found $(python3 --version)"; exit 1; }

want="$(stamp_of "$here/requirements.txt" <(python3 --version))"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.e2e-stamp" 2>/dev/null)" = "$want" ]; then
    say "python venv up to date ($venv)"
else
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install python3-venv "python${pyver}-venv" || apt_install python3-venv
        python3 -m venv "$venv"
    fi
    say "pip install -r requirements.txt"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$here/requirements.txt" >&2
    echo "$want" >"$venv/.e2e-stamp"
fi
"$venv/bin/python" -c 'import slixmpp; print("[e2e setup] slixmpp", slixmpp.__version__)' >&2

# --- Node -----------------------------------------------------------------
node_ok() {
    command -v node >/dev/null && command -v npm >/dev/null \
        && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=10)?0:1)'
}
if ! node_ok; then
    apt_install nodejs npm
    node_ok || { say "@xmpp/client needs Node >= 20.10, found $(node --version 2>&1)"; exit 1; }
fi

want="$(stamp_of "$nodedir/package.json" "$nodedir/package-lock.json" <(node --version))"
if [ -d "$nodedir/node_modules/@xmpp/client" ] \
    && [ "$(cat "$nodedir/node_modules/.e2e-stamp" 2>/dev/null)" = "$want" ]; then
    say "node_modules up to date ($nodedir)"
else
    say "npm ci in $nodedir"
    (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$nodedir/node_modules/.e2e-stamp"
fi
node -e 'console.error("[e2e setup] @xmpp/client", require(process.argv[1]).version)' \
    "$nodedir/node_modules/@xmpp/client/package.json"
say "ready"
