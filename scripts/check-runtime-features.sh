#!/usr/bin/env bash
# Builds meerkat with the tokio runtime only and checks that asking for a runtime left
# out of the build is a clear error (exit 1, a message naming the feature), not a
# panic. It builds into the usual target directory (only the meerkat crate itself is
# compiled again); the next default build or `cargo test` rebuilds the full binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build -q -p meerkat --no-default-features --features tokio
bin=$target/debug/meerkat
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/m.toml" <<'TOML'
[general]
hosts = ["localhost"]
runtime = "glommio"
TOML
for args in "--config $work/m.toml" "--runtime smol"; do
    set +e
    out=$(cd "$work" && "$OLDPWD/$bin" $args 2>&1)
    rc=$?
    set -e
    if [ "$rc" -ne 1 ] || ! grep -q "runtime is not compiled into this build of meerkat" <<<"$out" \
        || grep -q "panicked" <<<"$out"; then
        echo "expected a clear refusal for '$args', got exit $rc:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "ok: '$args' -> $(grep 'not compiled' <<<"$out")"
done
