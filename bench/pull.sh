#!/usr/bin/env bash
# Benchmarks pulling a multi-layer image of a few hundred MB from a local registry (Debian's docker-registry on
# 127.0.0.1, plain HTTP), all in the same run:
#   - `berth pull` through berthd, a fresh berthd data root for every run (download + verify + unpack to overlay2);
#   - `docker pull` through dockerd (Debian's docker.io, --insecure-registry), a fresh data root for every run;
#   - `skopeo copy docker://... dir:` into a fresh dir (download + verify only, nothing unpacked).
# Nothing is deleted until the end (see fresh_berthd below): ~1.1 GB of disk per run.
# Prints mean and min of each and the ratios berth/docker and berth/skopeo. Goal: berth faster than both.
# The image is a debootstrap'd bookworm minbase (cached in /var/cache/berth-bench) split into layers, plus generated
# layers; without debootstrap, generated layers only. Built once and cached (bench/lib/image.sh).
# Needs root, skopeo, docker-registry, jq, gzip; debootstrap (optional), dockerd + docker CLI (optional).
# Usage: bench/pull.sh   (BENCH_PULL_RUNS, default 5, timed runs after 1 warm-up; BENCH_NO_BUILD=1 skips the build)
set -uo pipefail
BENCH_NAME=bench/pull.sh
# shellcheck source=bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
# shellcheck source=bench/lib/image.sh
. "$(dirname "$0")/lib/image.sh"
bench_reexec_private_ns "$@"
bench_require skopeo docker-registry jq gzip python3 cargo
bench_build
bench_tmp_root
RUNS=${BENCH_PULL_RUNS:-5}
have_docker=1
for t in dockerd containerd docker; do command -v "$t" >/dev/null || have_docker=0; done

layout=$(bench_image_layout) || bench_die "could not build the benchmark image"

# --- the registry on a free loopback port, storage under $T ---
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
mkdir -p "$T/registry"
cat >"$T/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/registry
http:
  addr: $reg
YML
bench_spawn "$T/registry.log" docker-registry serve "$T/registry.yml"
bench_wait_for 100 python3 -c "import urllib.request; urllib.request.urlopen('http://$reg/v2/')" ||
  { cat "$T/registry.log" >&2; bench_die "docker-registry did not start"; }
img=$reg/bench/bookworm:latest
skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$layout:latest" "docker://$img" >&2 ||
  bench_die "skopeo could not push the image to $reg"

bench_header "bench/pull.sh: pull of a multi-layer image from a local registry"
man=$(skopeo inspect --raw --tls-verify=false "docker://$img")
echo "image: $img, $(echo "$man" | jq '.layers | length') layers, $(echo "$man" |
  jq '[.layers[].size] | add / 1048576 | floor') MB of gzip layers" \
  "($(basename "$layout")), Docker schema2 manifest"
echo "runs: 1 warm-up + $RUNS timed per tool, the tools taking turns; times include the CLI"

# time_cmd cmd... -> seconds on stdout, the command's output to $T/last.log; returns the command's status.
time_cmd() {
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" >"$T/last.log" 2>&1; rc=$?
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
  return "$rc"
}
stats() { # seconds... -> "mean min" (an empty line without figures)
  [ "$#" -gt 0 ] || { echo; return 0; }
  printf '%s\n' "$@" | awk '{ s += $1; if (NR == 1 || $1 < m) m = $1 } END { if (NR) printf "%.3f %.3f\n", s / NR, m }'
}

# Fresh state for each tool before each run, without deleting anything until the end: berthd restarted on a
# new data root, a new dir for skopeo, dockerd restarted on a new data root (not `docker rmi`). Why: ext4
# without a journal (as on the bench VMs) will not reuse an inode freed in the last 60 s (300 s while its
# inode-table block is dirty), and every inode allocation rescans the recently freed ones from the start of
# its block group (recently_deleted() in find_inode_bit), so unpacking 7,000 files soon after deleting
# thousands costs seconds of kernel time (seen in `perf`: find_get_block_common and recently_deleted at half
# of the samples). Deleting one round's pulls would bill that to the unpackers of the next round (berth and
# dockerd, not skopeo). Needs ~1.1 GB of disk per round under $T. Between tools the page cache is flushed
# (`sync`, untimed), so no tool's run pays for the previous tool's writeback.
fresh_berthd() { # round
  [ -n "${BERTHD_PID:-}" ] && bench_stop_daemon "$BERTHD_PID"
  BERTHD_PID=
  BENCH_BERTH_ROOT=$T/berth-$1 bench_start_berthd
}
fresh_dockerd() { # round
  [ -n "${DOCKERD_PID:-}" ] && bench_stop_daemon "$DOCKERD_PID"
  DOCKERD_PID=
  BENCH_DOCKER_ROOT=$T/docker-$1 bench_start_dockerd --log-level warn --insecure-registry "$reg"
}
failed() { # tool command...: report a failed pull once, with its exact command and the end of its output
  echo "$1 FAILED: \`${*:2}\`:"
  tail -5 "$T/last.log" | sed 's/^/    /'
}
B=("$berth" -H "unix://$T/berth.sock")
D=(docker -H "unix://$T/docker.sock")
# The tools take turns within each round, so a change in the machine's load hits all three alike.
berth_times=(); skopeo_times=(); docker_times=()
berth_ok=1; skopeo_ok=1; docker_ok=$have_docker
# Inodes freed before the bench (its build, earlier runs) age past the 60 s first.
sync
sleep 62
for i in $(seq 0 "$RUNS"); do
  if [ "$berth_ok" = 1 ]; then
    fresh_berthd "$i"
    if s=$(time_cmd timeout -k 5 900 "${B[@]}" pull "$img"); then
      [ "$i" = 0 ] || berth_times+=("$s")
    else failed berth "${B[@]}" pull "$img"; berth_ok=0; berth_times=(); fi
  fi
  sync
  if [ "$skopeo_ok" = 1 ]; then
    if s=$(time_cmd timeout -k 5 900 skopeo copy --quiet --src-tls-verify=false "docker://$img" "dir:$T/skopeo-$i")
    then [ "$i" = 0 ] || skopeo_times+=("$s")
    else failed skopeo skopeo copy --src-tls-verify=false "docker://$img" "dir:$T/skopeo-$i"; skopeo_ok=0
      skopeo_times=(); fi
  fi
  sync
  if [ "$docker_ok" = 1 ]; then
    fresh_dockerd "$i"
    if s=$(time_cmd timeout -k 5 900 "${D[@]}" pull "$img"); then
      [ "$i" = 0 ] || docker_times+=("$s")
    else failed docker "${D[@]}" pull "$img"; docker_ok=0; docker_times=(); fi
  fi
  [ -n "${DOCKERD_PID:-}" ] && bench_stop_daemon "$DOCKERD_PID"
  DOCKERD_PID=
  sync
done
[ "$have_docker" = 1 ] || echo "docker: dockerd not installed (apt-get install docker.io): no docker pull figures"
if [ "$berth_ok" = 1 ]; then
  timeout -k 5 60 "${B[@]}" run --rm --network none "$img" \
    sh -c 'cat /etc/debian_version; ls /opt/bench' >"$T/check.log" 2>&1
  rc=$?
  check=$(tr '\n' ' ' <"$T/check.log")
  if [ "$rc" = 0 ]; then
    echo "berth: the pulled image runs: $check"
  else
    echo "berth FAILED (exit status $rc; 124 = still running after 60 s): \`${B[*]} run --rm --network none" \
      "$img sh -c 'cat /etc/debian_version; ls /opt/bench'\`, output: $check"
  fi
fi
echo "times (s): berth ${berth_times[*]:-none}; docker ${docker_times[*]:-none}; skopeo ${skopeo_times[*]:-none}"

echo
read -r bm bmin < <(stats "${berth_times[@]}")
read -r sm smin < <(stats "${skopeo_times[@]}")
read -r dm dmin < <(stats "${docker_times[@]}")
for tool in "berth pull|$bm|$bmin" "docker pull|$dm|$dmin" "skopeo copy (dir:)|$sm|$smin"; do
  IFS='|' read -r n m mi <<<"$tool"
  if [ -n "$m" ]; then printf '%-20s mean %7.3f s, min %7.3f s\n' "$n" "$m" "$mi"
  else printf '%-20s no figures (failed or not installed)\n' "$n"; fi
done
[ -n "${bm:-}" ] && [ -n "${dm:-}" ] && bench_ratio_line "pull (mean)" "$bm" "$dm" s docker
[ -n "${bm:-}" ] && [ -n "${sm:-}" ] && bench_ratio_line "pull vs skopeo copy (mean)" "$bm" "$sm" s skopeo
echo "  goal: berth faster than both (ratios < 1); skopeo only downloads, berth and docker also unpack"
exit 0
