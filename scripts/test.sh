#!/usr/bin/env bash
# The whole test suite, as root: installs what the tests need, checks formatting and lints, builds, then runs
# every test inside a private mount namespace so a failing test cannot leak mounts into the host.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the tests create real namespaces, mounts and cgroups)" >&2; exit 1; }
./scripts/deps.sh
export CARGO_TERM_COLOR=never
# A clean build gains nothing from incremental caches; they only cost disk and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --workspace --bins --quiet
echo "== cargo test (private mount namespace)"
unshare -m --propagation private -- cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-4}"
./scripts/check-leaks.sh
# berthd's containers live under a /berth parent cgroup (like docker's /docker); the daemons the tests started are
# gone now, so remove the empty parents (rmdir refuses non-empty ones).
rmdir /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth 2>/dev/null || true
echo "== interop: dockerd and containerd with berth as their runtime"
unshare -m --propagation private -- ./tests/interop/engines.sh "${CARGO_TARGET_DIR:-target}/debug/berth"
./scripts/check-leaks.sh
