#!/usr/bin/env bash
# Soak run against Meerkat (release build): sessions connect and leave for several
# minutes, the server's resident memory is sampled all along, and the run checks that the
# memory comes back to its level once the churn is over.
#
#   1. warm-up: SESSIONS sessions churn for WARMUP seconds (allocator pools, caches and
#      the database reach their working size), then all leave;
#   2. baseline: after SETTLE seconds with no session, the server's RSS;
#   3. soak: SESSIONS sessions churn for MINUTES minutes (each stays a random 0.5x to
#      1.5x of HOLD seconds, leaves, and logs in again), RSS sampled every SAMPLE seconds;
#   4. after: all sessions gone, SETTLE seconds later, the RSS again.
#
# Verdict: PASS when the RSS after the soak is within TOLERANCE percent (or SLACK KiB,
# whichever is larger) of the baseline, and the RSS during the soak did not keep growing
# (the mean of its last quarter of samples is within the same bounds of the mean of its
# second quarter). Exit code 0 on PASS, 1 on FAIL, 2 when the run itself failed.
#
#   scripts/soak.sh [options]
#     --sessions N     sessions churning (1000)
#     --minutes M      length of the soak (10)
#     --hold S         mean seconds a session stays connected (2)
#     --warmup S       seconds of warm-up churn (60)
#     --settle S       seconds without sessions before measuring the level (10)
#     --sample S       seconds between RSS samples (10)
#     --tolerance P    percent (10)
#     --slack K        KiB (4096)
#     --runtime NAME   tokio, smol or glommio (the config's default: tokio)
#     --markdown FILE  also write the samples and the verdict as markdown
#     --keep           keep the working directory
#
# Port 25831 (PORT=N to change), below the ephemeral range.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench.sh

sessions=1000 minutes=10 hold=2 warmup=60 settle=10 sample=10 tolerance=10 slack=4096
runtime="" markdown="" keep=""
while [ $# -gt 0 ]; do
    case $1 in
        --sessions) sessions=$2; shift 2 ;;
        --minutes) minutes=$2; shift 2 ;;
        --hold) hold=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --settle) settle=$2; shift 2 ;;
        --sample) sample=$2; shift 2 ;;
        --tolerance) tolerance=$2; shift 2 ;;
        --slack) slack=$2; shift 2 ;;
        --runtime) runtime=$2; shift 2 ;;
        --markdown) markdown=$(realpath -m "$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
say() { echo "[soak] $*" >&2; }
port=${PORT:-25831}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p meerkat -p meerkat-loadgen
meerkat=$(realpath "$target/release/meerkat")
loadgen=$(realpath "$target/release/meerkat-loadgen")
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/soak.XXXXXX)
pid="" sampler=""
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "$keep" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

meerkat_bench_config "$work/meerkat.toml" "$port" "$work/meerkat.db"

if port_open "$port"; then
    say "port $port is already in use; set PORT"; exit 2
fi
cd "$work"
if [ -n "$runtime" ]; then
    (exec "$meerkat" --config meerkat.toml --runtime "$runtime" >>server.log 2>&1) &
else
    (exec "$meerkat" --config meerkat.toml >>server.log 2>&1) &
fi
pid=$!
cd - >/dev/null
for _ in $(seq 100); do
    if port_open "$port"; then break; fi
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null || { say "meerkat did not start"; cat "$work/server.log" >&2; exit 2; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
lg() { # name args...
    local name=$1; shift
    local rc=0
    "$loadgen" --addr "127.0.0.1:$port" --domain localhost --json --quiet "$@" \
        > "$work/$name.json" 2>>"$work/loadgen.log" || rc=$?
    if [ "$rc" != 0 ]; then say "$name: load generator exit code $rc (see the summary)"; fi
}
churn_args=(-n "$sessions" --scenario reconnect --reconnect-hold "$hold" --concurrency 100 --setup-timeout 60)

say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cut -d' ' -f1-3 /proc/loadavg > "$work/load"
say "registering $sessions users; RSS at start $(rss) KiB"
echo "start $(rss)" > "$work/points"
lg register -n "$sessions" --register --hold 0
say "warm-up: ${warmup}s of churn"
lg warmup "${churn_args[@]}" --duration "$warmup"
sleep "$settle"
echo "baseline $(rss)" >> "$work/points"
say "baseline RSS $(rss) KiB; soak: $minutes min of churn, $sessions sessions"

t0=$(date +%s)
(
    while kill -0 "$pid" 2>/dev/null; do
        echo "$(( $(date +%s) - t0 )) $(rss)"
        sleep "$sample"
    done
) > "$work/samples" 2>/dev/null &
sampler=$!
soak_secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
lg soak "${churn_args[@]}" --duration "$soak_secs" --server-pid "$pid" --timeout $(( soak_secs + 600 ))
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""
echo "churn_end $(rss)" >> "$work/points"
sleep "$settle"
echo "after $(rss)" >> "$work/points"
kill -0 "$pid" 2>/dev/null || { say "meerkat died during the soak"; tail "$work/server.log" >&2; exit 2; }

python3 - "$work" "$tolerance" "$slack" "$markdown" "$sessions" "$minutes" "$hold" "$warmup" \
    "$(git describe --always --dirty 2>/dev/null || echo unknown)" "${runtime:-tokio}" <<'PY'
import json, sys
work, tol, slack, md, sessions, minutes, hold, warmup, version, runtime = sys.argv[1:11]
tol, slack = float(tol), float(slack)
points = dict(l.split() for l in open(f"{work}/points"))
points = {k: int(v) for k, v in points.items()}
samples = [tuple(map(int, l.split())) for l in open(f"{work}/samples") if l.strip()]
load = open(f"{work}/load").read().strip()
try:
    r = json.load(open(f"{work}/soak.json"))
except ValueError:
    r = {}
rc = r.get("reconnect", {})
srv = r.get("server") or {}

def within(v, ref):
    return v <= ref + max(ref * tol / 100, slack)

base, after = points["baseline"], points["after"]
ok_level = within(after, base)
q = len(samples) // 4
trend = None
if q >= 1:
    second = sum(s[1] for s in samples[q:2 * q]) / q
    last = sum(s[1] for s in samples[-q:]) / q
    trend = (second, last)
ok_trend = trend is None or within(trend[1], trend[0])
failed = rc.get("failed", 0) + r.get("sessions", {}).get("failed", 0)
verdict = "PASS" if ok_level and ok_trend else "FAIL"

lines = []
lines.append(f"Soak: {sessions} sessions churning for {minutes} min (each stays 0.5x-1.5x of {hold} s), "
             f"after a {warmup} s warm-up; Meerkat {version}, runtime {runtime}; load average before: {load}")
lines.append("")
lines.append("| t (s) | server RSS (KiB) |")
lines.append("|---:|---:|")
for t, v in samples:
    lines.append(f"| {t} | {v:,} |")
lines.append("")
lines.append(f"- RSS at start {points['start']:,} KiB; after warm-up, settled (baseline) {base:,} KiB; "
             f"at the end of the churn {points['churn_end']:,} KiB; settled after the soak {after:,} KiB "
             f"({(after - base) / base * 100:+.1f} %)")
if trend:
    lines.append(f"- during the soak: mean RSS of the second quarter of samples {trend[0]:,.0f} KiB, "
                 f"of the last quarter {trend[1]:,.0f} KiB ({(trend[1] - trend[0]) / trend[0] * 100:+.1f} %)")
lines.append(f"- reconnects: {rc.get('succeeded', 'n/a')} ({rc.get('per_sec') or 0:.0f}/s), "
             f"failed {failed}, dropped {r.get('sessions', {}).get('dropped', 'n/a')}; "
             f"server CPU per reconnect {srv.get('cpu_ms_per_reconnect') or 0:.2f} ms")
lines.append(f"- tolerance: {tol:g} % or {slack:,.0f} KiB, whichever is larger")
lines.append(f"- verdict: **{verdict}**" + ("" if ok_level else " (memory did not return to its level)")
             + ("" if ok_trend else " (memory kept growing during the soak)")
             + (f"; note: {failed} setups failed" if failed else ""))
text = "\n".join(lines)
print(text.replace("**", ""))
if md:
    open(md, "w").write(text + "\n")
    print(f"markdown written to {md}")
sys.exit(0 if verdict == "PASS" else 1)
PY
