#!/usr/bin/env bash
# Benchmarks `berth runtime run` against `runc run` of `true` on the same busybox bundle (hyperfine, no shell),
# and prints both means and the ratio berth/runc. Goal: berth <= 0.5 x runc. Needs root, runc, hyperfine, jq.
# Usage: bench/runtime.sh   (CARGO_TARGET_DIR defaults to target-rt; BERTH_BIN=path skips the build and benchmarks
# that binary; BENCH_SECCOMP=file.json puts that OCI linux.seccomp into the bundle, e.g. docker's default profile)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target-rt}
for tool in runc hyperfine jq unshare; do
  command -v "$tool" >/dev/null || { echo "bench/runtime.sh: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: needs root" >&2; exit 1; }
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth-cli --manifest-path "$here/Cargo.toml" >&2
fi
berth=${BERTH_BIN:-$CARGO_TARGET_DIR/release/berth}
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
  "$berth" runtime --root "$work/berth-state" delete -f "berth-bench-$$" >/dev/null 2>&1 || true
  runc --root "$work/runc-state" delete -f "runc-bench-$$" >/dev/null 2>&1 || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
"$here/tests/fixtures/make-bundle.sh" "$work/bundle" "$berth" >&2
jq '.process.terminal = false | .process.args = ["true"]' "$work/bundle/config.json" > "$work/config.json"
mv "$work/config.json" "$work/bundle/config.json"
if [ -n "${BENCH_SECCOMP:-}" ]; then
  jq --slurpfile s "$BENCH_SECCOMP" '.linux.seccomp = $s[0]' "$work/bundle/config.json" > "$work/config.json"
  mv "$work/config.json" "$work/bundle/config.json"
fi
# A private mount namespace, as the tests use: container mounts never touch the host's table.
unshare -m --propagation private hyperfine -N --warmup 3 --min-runs 50 --export-json "$work/result.json" \
  -n berth "$berth runtime --root $work/berth-state run --bundle $work/bundle berth-bench-$$" \
  -n runc "runc --root $work/runc-state run --bundle $work/bundle runc-bench-$$" >&2
# Wall time is what the goal is about; user+system CPU time is printed too because it is far less sensitive to
# other load on the machine (most of the wall time is kernel waits: cgroup migration, RCU grace periods).
read -r berth_mean berth_median berth_cpu < <(jq -r '.results[] | select(.command == "berth") | "\(.mean) \(.median) \(.user + .system)"' "$work/result.json")
read -r runc_mean runc_median runc_cpu < <(jq -r '.results[] | select(.command == "runc") | "\(.mean) \(.median) \(.user + .system)"' "$work/result.json")
awk -v b="$berth_mean" -v r="$runc_mean" -v bm="$berth_median" -v rm="$runc_median" -v bc="$berth_cpu" -v rc="$runc_cpu" 'BEGIN {
  printf "berth runtime run: mean %.2f ms, median %.2f ms, cpu %.2f ms\n", b * 1000, bm * 1000, bc * 1000
  printf "runc run:          mean %.2f ms, median %.2f ms, cpu %.2f ms\n", r * 1000, rm * 1000, rc * 1000
  printf "ratio berth/runc:  %.3f mean, %.3f median, %.3f cpu (goal <= 0.5)\n", b / r, bm / rm, bc / rc
}'
