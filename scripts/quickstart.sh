#!/usr/bin/env bash
# Builds berth, starts berthd (unless one is already serving), builds the hello-world image from the example in
# this repository with `berth build` (there is no registry to pull it from offline) and runs it in a real container.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (berthd creates namespaces, mounts and cgroups)" >&2; exit 1; }
./scripts/deps.sh
cargo build --release --quiet
bin=$PWD/target/release
sock=${BERTH_SOCK:-/run/berth/berth.sock}
export BERTH_HOST=unix://$sock
if ! "$bin/berth" version >/dev/null 2>&1; then
  echo "quickstart: starting berthd (log: /run/berth/berthd.log)"
  mkdir -p /run/berth
  setsid "$bin/berthd" -H "unix://$sock" >/run/berth/berthd.log 2>&1 < /dev/null &
  for _ in $(seq 100); do [ -S "$sock" ] && "$bin/berth" version >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! "$bin/berth" image inspect hello-world:latest >/dev/null 2>&1; then
  # examples/hello-world/out becomes a build context: the static binary and the Dockerfile (FROM scratch).
  ./examples/hello-world/build.sh examples/hello-world/out >/dev/null
  "$bin/berth" build -t hello-world examples/hello-world/out
fi
"$bin/berth" run hello-world
