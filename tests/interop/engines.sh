#!/usr/bin/env bash
# Real engines use `berth runtime` in runc's place:
#   - dockerd (Debian's docker.io) with --add-runtime berth=<berth-runtime> runs a busybox image with --runtime berth;
#   - containerd's `ctr run --runc-binary <berth-runtime>` runs the same image.
# Everything lives under a temporary root; dockerd and containerd are started here and ended by PID.
# Usage: engines.sh BERTH_BINARY      (prints "engines: N passed, M failed")
set -uo pipefail
berth=$(readlink -f "${1:?usage: engines.sh BERTH_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
for t in dockerd containerd ctr /usr/local/bin/docker; do
  command -v "$t" >/dev/null || { echo "engines: SKIP: $t not installed (apt-get install docker.io containerd)"; exit 0; }
done
tmp=$(mktemp -d /tmp/berth-engines.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -9 "$p" 2>/dev/null; done
  grep -o " $tmp[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf --one-file-system "$tmp"
  # containerd names its cgroups after the namespace: remove the (empty) parents it made.
  for d in /sys/fs/cgroup/*/berth-engines /sys/fs/cgroup/berth-engines; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  return 0
}
trap cleanup EXIT
passed=0; failed=0
check() { # name expected actual
  if [ "$2" = "$3" ]; then passed=$((passed+1)); echo "ok: $1";
  else failed=$((failed+1)); echo "FAIL: $1: expected [$2], got [$3]"; fi
}
mkdir -p "$tmp/bin"
ln -s "$berth" "$tmp/bin/berth-runtime"
"$here/../fixtures/make-busybox-rootfs.sh" "$tmp/rootfs"
tar -C "$tmp/rootfs" --numeric-owner -cf "$tmp/busybox.tar" .

# --- dockerd ---
sock=$tmp/docker.sock
dockerd --data-root "$tmp/docker" --exec-root "$tmp/docker-exec" --pidfile "$tmp/dockerd.pid" -H "unix://$sock" \
  --iptables=false --ip6tables=false --bridge=none --containerd-namespace berth-engines --log-level warn \
  --add-runtime "berth=$tmp/bin/berth-runtime" >"$tmp/dockerd.log" 2>&1 &
pids+=($!)
export DOCKER_HOST=unix://$sock DOCKER_CONFIG=$tmp/docker-config
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
docker version >/dev/null 2>&1 || { echo "FAIL: dockerd did not start"; tail -20 "$tmp/dockerd.log"; exit 1; }
docker import "$tmp/busybox.tar" berth-bb:latest >/dev/null
out=$(docker run --rm --runtime berth --network none berth-bb:latest sh -c 'echo hello from pid $$' 2>&1)
check "docker run --runtime berth prints its output" "hello from pid 1" "$out"
docker run --rm --runtime berth --network none berth-bb:latest sh -c 'exit 7' >/dev/null 2>&1
check "docker run --runtime berth returns the exit code" 7 "$?"
out=$(docker run --rm --runtime berth --network none -u 65534 --cap-drop ALL berth-bb:latest id -u 2>&1)
check "docker run --runtime berth honours -u" 65534 "$out"
cid=$(docker run -d --runtime berth --network none berth-bb:latest sleep 30)
out=$(docker exec "$cid" sh -c 'echo exec-ok')
check "docker exec through berth" exec-ok "$out"
docker rm -f "$cid" >/dev/null 2>&1
[ "$failed" = 0 ] || { echo "--- dockerd log"; tail -20 "$tmp/dockerd.log"; }
docker save berth-bb:latest -o "$tmp/bb-archive.tar"

# --- containerd / ctr ---
cat > "$tmp/containerd.toml" <<TOML
version = 2
root = "$tmp/containerd-root"
state = "$tmp/containerd-state"
[grpc]
  address = "$tmp/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
TOML
containerd --config "$tmp/containerd.toml" --log-level warn >"$tmp/containerd.log" 2>&1 &
pids+=($!)
ctr_() { ctr --address "$tmp/containerd.sock" --namespace berth-engines "$@"; }
for _ in $(seq 300); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ images import --no-unpack=false "$tmp/bb-archive.tar" >/dev/null 2>&1 || ctr_ images import "$tmp/bb-archive.tar" >/dev/null
img=$(ctr_ images ls -q | head -1)
out=$(ctr_ run --rm --runc-binary "$tmp/bin/berth-runtime" "$img" berth-ctr-$$ sh -c 'echo ctr-ok' 2>&1)
check "ctr run --runc-binary berth prints its output" ctr-ok "$out"
ctr_ run --rm --runc-binary "$tmp/bin/berth-runtime" "$img" berth-ctr2-$$ sh -c 'exit 5' >/dev/null 2>&1
check "ctr run --runc-binary berth returns the exit code" 5 "$?"
[ "$failed" = 0 ] || { echo "--- containerd log"; tail -20 "$tmp/containerd.log"; }
echo "engines: $passed passed, $failed failed"
[ "$failed" = 0 ]
