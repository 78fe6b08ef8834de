#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60), seeded
# with the inputs of tests/fuzz-regressions/<target>/ and the XMPP dictionary. Exits
# non-zero on the first failure, naming the input that failed: copy it into
# tests/fuzz-regressions/<target>/ so that `cargo test` replays it for good.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them
# with RUSTC_BOOTSTRAP=1, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(xml_stream c2s_stream s2s_stream sasl_server config_parser)
(cd fuzz && cargo fuzz build)
for t in "${targets[@]}"; do
    corpus=$(mktemp -d)
    artifacts=$(mktemp -d)
    echo "==> fuzz $t for ${seconds}s"
    (cd fuzz && cargo fuzz run "$t" "$corpus" "../tests/fuzz-regressions/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -dict=xmpp.dict -print_final_stats=1 \
        -artifact_prefix="$artifacts/" 2>&1) \
        | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread|Test unit written|artifact_prefix)|panicked" || true
    # The pipeline's status is grep's; the fuzzer's verdict is in the artifacts it wrote.
    if [ -n "$(ls -A "$artifacts")" ]; then
        echo "fuzz target $t failed; the inputs are in $artifacts:" >&2
        for f in "$artifacts"/*; do echo "$f: $(od -An -c "$f" | head -c 600)" >&2; done
        exit 1
    fi
    rm -rf "$corpus" "$artifacts"
done
