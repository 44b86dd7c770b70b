#!/usr/bin/env bash
# Soak test (not part of CI): runs SOAK_COUNT containers one after another (`berth run --rm busybox true`) against
# a berthd on a temporary data root, and prints, at the start and every 100 runs, berthd's open fds and RSS, the
# mount count (of this private mount namespace, where berthd and its monitors mount), the berth cgroups left by
# the soak's containers and the berth processes besides berthd. Fails when one of them grows beyond a small
# tolerance, or a run fails.
# Usage (root): SOAK_COUNT=100 scripts/soak.sh      (default 1000; binaries from ${CARGO_TARGET_DIR:-target}/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root" >&2; exit 1; }
if [ -z "${SOAK_IN_NS:-}" ]; then
  exec unshare -m --propagation private env SOAK_IN_NS=1 "$0" "$@"
fi
count=${SOAK_COUNT:-1000}
case "$count" in ''|*[!0-9]*) echo "soak.sh: SOAK_COUNT must be a number" >&2; exit 1 ;; esac
bin=$(realpath "${BERTH_BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}")
for b in berth berthd; do
  [ -x "$bin/$b" ] || { echo "soak.sh: $bin/$b not built (cargo build --workspace --bins)" >&2; exit 1; }
done
# Tolerances over the values at the start.
fd_tol=${SOAK_FD_TOLERANCE:-8}
rss_tol_kb=${SOAK_RSS_TOLERANCE_KB:-16384}
mount_tol=${SOAK_MOUNT_TOLERANCE:-0}

tmp=$(mktemp -d /tmp/berth-soak.XXXXXX)
x=$(( $$ % 250 ))
bridge="bsoak$(( $$ % 100000 ))"
table="berth_soak_$$"
sock="$tmp/berth.sock"
berthd_pid=""
cleanup() {
  set +e
  if [ -n "$berthd_pid" ]; then kill "$berthd_pid" 2>/dev/null; wait "$berthd_pid" 2>/dev/null; fi
  ip link del "$bridge" 2>/dev/null
  nft delete table ip "$table" 2>/dev/null
  umount -R -l "$tmp" 2>/dev/null
  grep " $tmp/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

"$bin/berthd" -H "unix://$sock" --data-root "$tmp/data" --exec-root "$tmp/exec" --group root \
  --berth-binary "$bin/berth" --bridge-name "$bridge" --bip "10.215.$x.1/24" \
  --default-address-pool "base=10.216.$x.0/24,size=26" --nft-table "$table" >"$tmp/berthd.log" 2>&1 &
berthd_pid=$!
berth() { DOCKER_HOST="unix://$sock" "$bin/berth" "$@"; }
for _ in $(seq 1 300); do
  berth version >/dev/null 2>&1 && break
  kill -0 "$berthd_pid" 2>/dev/null || { echo "soak.sh: berthd exited"; cat "$tmp/berthd.log"; exit 1; }
  sleep 0.1
done
./tests/fixtures/make-busybox-rootfs.sh "$tmp/busybox" >/dev/null
tar -C "$tmp/busybox" -cf "$tmp/busybox.tar" .
berth import --change 'CMD ["sh"]' "$tmp/busybox.tar" busybox:latest >/dev/null
touch "$tmp/ids"

fds() { ls "/proc/$berthd_pid/fd" | wc -l; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$berthd_pid/status"; }
mounts() { wc -l </proc/self/mountinfo; }
cgroups() {  # cgroup dirs still there for containers the soak ran (and removed)
  local n=0 id d
  while read -r id; do
    for d in /sys/fs/cgroup/*/berth/"$id" /sys/fs/cgroup/berth/"$id"; do
      [ -d "$d" ] && n=$((n + 1))
    done
  done <"$tmp/ids"
  echo "$n"
}
procs() {  # berth processes for this soak's data root, besides berthd
  local n=0 p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$berthd_pid" ] && continue
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "$tmp/data" && n=$((n + 1))
  done
  echo "$n"
}

printf '%8s %6s %10s %7s %8s %6s\n' runs fds rss_kb mounts cgroups procs
report() { printf '%8s %6s %10s %7s %8s %6s\n' "$1" "$(fds)" "$(rss)" "$(mounts)" "$(cgroups)" "$(procs)"; }
# One warm-up run, so lazily opened things (the image store, seccomp cache, the sealed binary) are counted in the
# baseline rather than as growth.
berth run --rm --cidfile "$tmp/cid" busybox true
cat "$tmp/cid" >>"$tmp/ids"; echo >>"$tmp/ids"; rm -f "$tmp/cid"
fd0=$(fds); rss0=$(rss); m0=$(mounts)
report 0
fail=0
for i in $(seq 1 "$count"); do
  if ! berth run --rm --cidfile "$tmp/cid" busybox true; then
    echo "soak.sh: run $i failed"; tail -20 "$tmp/berthd.log"; exit 1
  fi
  cat "$tmp/cid" >>"$tmp/ids"; echo >>"$tmp/ids"; rm -f "$tmp/cid"
  if [ $((i % 100)) = 0 ] || [ "$i" = "$count" ]; then
    report "$i"
  fi
done
# Removal is asynchronous to the CLI's exit only by a hair; let the last monitor go before the final verdict.
for _ in $(seq 1 50); do [ "$(procs)" = 0 ] && break; sleep 0.1; done
f=$(fds); r=$(rss); m=$(mounts); c=$(cgroups); p=$(procs)
[ "$f" -le $((fd0 + fd_tol)) ] || { echo "FAIL: berthd fds grew from $fd0 to $f"; fail=1; }
[ "$r" -le $((rss0 + rss_tol_kb)) ] || { echo "FAIL: berthd RSS grew from ${rss0}kB to ${r}kB"; fail=1; }
[ "$m" -le $((m0 + mount_tol)) ] || { echo "FAIL: mounts grew from $m0 to $m"; grep " $tmp/" /proc/self/mountinfo | head; fail=1; }
[ "$c" = 0 ] || { echo "FAIL: $c cgroups of removed containers left"; fail=1; }
[ "$p" = 0 ] || { echo "FAIL: $p berth processes left"; fail=1; }
left=$(berth ps -aq | wc -l)
[ "$left" = 0 ] || { echo "FAIL: $left containers left"; fail=1; }
[ "$fail" = 0 ] && echo "soak: $count runs, no growth beyond tolerance"
exit "$fail"
