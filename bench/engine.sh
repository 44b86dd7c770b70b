#!/usr/bin/env bash
# Benchmarks berthd + the berth CLI against Debian's docker.io (dockerd + containerd + runc) in the same run, and
# prints "berth X, docker Y, ratio berth/docker Z" with the goal for each:
#   1. `run --rm hello-world` end to end (hyperfine), berth CLI -> berthd, docker CLI -> dockerd, docker CLI -> berthd
#   2. 50 x `run --rm --network none busybox true`, 10 at a time: wall time and containers/s
#   3. `ps -a`, `images`, `info` latency (client + daemon)
#   4. daemon RSS at rest: berthd vs dockerd + containerd
#   5. memory per running container: berth monitors vs containerd-shim-runc-v2 (RSS and PSS), 10 `sleep` containers
# Every container runs with --network none (dockerd runs with --bridge=none), so no engine pays for networking.
# Without dockerd, items 1 and 2 compare with plain `runc run` on a busybox bundle and say so.
# Needs root, hyperfine, jq; dockerd/containerd (docker.io) and the docker CLI for the reference.
# Usage: bench/engine.sh   (CARGO_TARGET_DIR defaults to target-bench; BENCH_NO_BUILD=1 skips the build;
#        BENCH_RUNS=20 hyperfine runs; BENCH_NO_DOCKER=1 takes the runc fallback even when dockerd is there)
set -uo pipefail
BENCH_NAME=bench/engine.sh
# shellcheck source=bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_reexec_private_ns "$@"
bench_require hyperfine jq cargo gcc
bench_build
bench_tmp_root
# Both engines' exec roots on a tmpfs, as /run is on every real host (this script runs in a private mount
# namespace; the cleanup unmounts everything under $T).
mkdir -p "$T/run"
if mount -t tmpfs -o mode=0711,size=256m berth-bench-run "$T/run"; then
  BENCH_EXEC_BASE=$T/run
else
  echo "warning: cannot mount a tmpfs for the exec roots; they stay on $T's filesystem" >&2
fi
have_docker=1
for t in dockerd containerd runc docker; do command -v "$t" >/dev/null || have_docker=0; done
[ -z "${BENCH_NO_DOCKER:-}" ] || have_docker=0   # exercise the runc fallback
RUNS=${BENCH_RUNS:-20}
PAR_TOTAL=50
PAR=10
NCONT=10

# --- images: hello-world (static binary FROM scratch) and busybox (busybox-static FROM scratch) ---
"$bench_here/examples/hello-world/build.sh" "$T/hello" >&2 || bench_die "examples/hello-world/build.sh failed"
"$bench_here/tests/fixtures/make-busybox-rootfs.sh" "$T/busybox-rootfs" >&2 || bench_die "make-busybox-rootfs failed"
tar -C "$T/busybox-rootfs" --numeric-owner -cf "$T/busybox.tar" .
rm -rf "$T/busybox-rootfs"

bench_header "bench/engine.sh: berthd + berth CLI vs dockerd + docker CLI"
echo "all containers run with --network none (dockerd: --bridge=none --iptables=false), for fairness"

bench_start_berthd
bench_try "berth import hello-world" bc import -c 'CMD ["/hello"]' "$T/hello/rootfs.tar" hello-world:latest ||
  bench_die "cannot import images into berthd"
bench_try "berth import busybox" bc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest ||
  bench_die "cannot import images into berthd"
# shellcheck disable=SC2016 # expanded at exit, by eval
BENCH_CLEANUP_HOOKS+=('ids=$(timeout 30 "$berth" -H "unix://$T/berth.sock" ps -aq)
  [ -n "$ids" ] && timeout 120 "$berth" -H "unix://$T/berth.sock" rm -f $ids')

if [ "$have_docker" = 1 ]; then
  echo "reference: $(dockerd --version), $(containerd --version | awk '{print $1, $3}'), $(runc --version | head -1); docker CLI $(docker version -f '{{.Client.Version}}' 2>/dev/null)"
  bench_start_dockerd --log-level warn
  dc import -c 'CMD ["/hello"]' "$T/hello/rootfs.tar" hello-world:latest >/dev/null ||
    bench_die "docker import failed"
  dc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest >/dev/null || bench_die "docker import failed"
  # shellcheck disable=SC2016
  BENCH_CLEANUP_HOOKS+=('ids=$(timeout 30 docker -H "unix://$T/docker.sock" ps -aq)
    [ -n "$ids" ] && timeout 120 docker -H "unix://$T/docker.sock" rm -f $ids')
  ref=docker
else
  echo "reference: no dockerd (not installed: apt-get install docker.io; or BENCH_NO_DOCKER): items 1-2 compare with"
  echo "  plain \`runc run\` of \`true\` on a busybox bundle (no engine, no image store); items 3-5 show berth alone"
  "$bench_here/tests/fixtures/make-bundle.sh" "$T/bundle" "$berth" >&2
  jq '.process.terminal = false | .process.args = ["true"]' "$T/bundle/config.json" >"$T/config.json" &&
    mv "$T/config.json" "$T/bundle/config.json"
  ref=runc
fi
B="$berth -H unix://$T/berth.sock"
D="docker -H unix://$T/docker.sock"

# --- 1. run --rm hello-world, end to end ---
echo
echo "1. run --rm --network none hello-world, end to end (hyperfine -N, warmup 3, runs $RUNS; mean, min in ms)"
# One hyperfine per command: a command that fails (hyperfine stops at its first failure) loses only its own figure.
exec 3>&1   # the report, for messages from inside $(...)
hf1() { # tag command-line -> "mean min" in s, or nothing (the failure goes to the report)
  local rc
  bench_hf "$1" --warmup 3 --runs "$RUNS" -n "$1" "$2" 2>"$T/hf-$1.err"; rc=$?
  cat "$T/hf-$1.err" >&2
  if [ "$rc" = 0 ]; then
    echo "$(bench_hf_stat "$1" "$1" mean) $(bench_hf_stat "$1" "$1" min)"
  else
    echo "  FAILED under hyperfine (exit status $rc; 124 = hung): \`$2\`: $(grep -m1 -i error "$T/hf-$1.err")" >&3
  fi
}
read -r b bmin < <(hf1 berth "$B run --rm --network none hello-world")
if [ "$have_docker" = 1 ]; then
  read -r r rmin < <(hf1 docker "$D run --rm --network none hello-world")
  read -r x xmin < <(hf1 docker-cli-berthd "docker -H unix://$T/berth.sock run --rm --network none hello-world")
else
  read -r r rmin < <(hf1 runc "runc --root $T/runc-state run --bundle $T/bundle bench-hello-$$")
fi
if [ -n "${b:-}" ] && [ -n "${r:-}" ]; then
  if [ "$ref" = docker ]; then refl="docker CLI -> dockerd"; else refl="runc run"; fi
  bench_ratio_line "  berth CLI -> berthd vs $refl (mean)" "$(ms "$b")" "$(ms "$r")" ms "$ref" \
    "berth <= 0.1 x docker's time"
  bench_ratio_line "  (min)" "$(ms "$bmin")" "$(ms "$rmin")" ms "$ref"
fi
if [ -n "${x:-}" ] && [ -n "${r:-}" ]; then
  bench_ratio_line "  docker CLI -> berthd vs docker CLI -> dockerd (mean)" "$(ms "$x")" "$(ms "$r")" ms docker
  bench_ratio_line "  (min)" "$(ms "$xmin")" "$(ms "$rmin")" ms docker
fi

# --- 2. 50 x run --rm busybox true, 10 at a time ---
echo
echo "2. $PAR_TOTAL x run --rm --network none busybox true, $PAR at a time (xargs -P$PAR): wall time, containers/s"
par_run() { # label cmd... -> prints "seconds failures"
  local t0 t1 fails
  t0=$(date +%s.%N)
  # timeout inside sh, so a run killed for hanging is counted as a failure too.
  fails=$(seq "$PAR_TOTAL" | xargs -P"$PAR" -I{} sh -c 'timeout -k 5 120 "$@" >/dev/null 2>&1 || echo F' sh "$@" |
    grep -c F)
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v f="$fails" 'BEGIN { printf "%.3f %d\n", b - a, f }'
}
read -r bs bf < <(par_run "$berth" -H "unix://$T/berth.sock" run --rm --network none busybox true)
if [ "$have_docker" = 1 ]; then
  read -r rs rf < <(par_run docker -H "unix://$T/docker.sock" run --rm --network none busybox true)
else
  # runc needs a distinct id per container; the same bundle is fine for `true` (read-only use of the rootfs).
  read -r rs rf < <(T=$T PAR_TOTAL=$PAR_TOTAL bash -c '
    t0=$(date +%s.%N)
    f=$(seq "$PAR_TOTAL" | xargs -P10 -I{} sh -c "timeout -k 5 120 runc --root $T/runc-state run --bundle $T/bundle par-{}-$$ >/dev/null 2>&1 || echo F" | grep -c F)
    t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" -v f="$f" "BEGIN { printf \"%.3f %d\n\", b - a, f }"')
fi
awk -v bs="$bs" -v rs="$rs" -v n="$PAR_TOTAL" -v ref="$ref" 'BEGIN {
  printf "  wall time: berth %.2f s, %s %.2f s, ratio berth/%s %.3f\n", bs, ref, rs, ref, bs / rs
  printf "  throughput: berth %.1f containers/s, %s %.1f containers/s, ratio berth/%s %.2f\n", n / bs, ref, n / rs, ref, rs / bs
  print "  goal: berth >= 10 x docker'"'"'s throughput"
}'
[ "$bf" = 0 ] || echo "  berth: $bf of $PAR_TOTAL runs failed (\`$B run --rm --network none busybox true\`)"
[ "$rf" = 0 ] || echo "  $ref: $rf of $PAR_TOTAL runs failed"

# --- 3. ps -a / images / info ---
echo
echo "3. ps -a / images / info latency, client + daemon (hyperfine -N, warmup 3, runs $RUNS; mean in ms)"
for verb in "ps -a" images info; do
  tag=${verb%% *}
  read -r b _ < <(hf1 "berth-$tag" "$B $verb")
  if [ "$have_docker" = 1 ]; then
    read -r r _ < <(hf1 "docker-$tag" "$D $verb")
    [ -n "${b:-}" ] && [ -n "${r:-}" ] && bench_ratio_line "  $verb" "$(ms "$b")" "$(ms "$r")" ms docker
  else
    [ -n "${b:-}" ] && echo "  $verb: berth $(ms "$b") ms"
  fi
done

# --- 4. daemon RSS at rest ---
echo
echo "4. daemon memory at rest, after the above (VmRSS)"
sleep 2
brss=$(bench_rss_kb "$BERTHD_PID")
if [ "$have_docker" = 1 ]; then
  drss=$(bench_rss_kb "$DOCKERD_PID")
  cpid=$(for p in $(bench_pids_under_root); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd ] && echo "$p"; done | head -1)
  crss=$(bench_rss_kb "${cpid:-0}")
  echo "  dockerd $(mb "$drss") MB + containerd $(mb "$crss") MB"
  bench_ratio_line "  daemon RSS" "$(mb "$brss")" "$(mb $((drss + crss)))" MB docker "berthd <= 15 MB"
else
  echo "  berthd $(mb "$brss") MB (no dockerd to compare with)"
  echo "  goal: berthd <= 15 MB"
fi

# --- 5. memory per running container ---
echo
echo "5. memory per running container: $NCONT x run -d --network none busybox sleep 300"
started=0
for _ in $(seq "$NCONT"); do
  if out=$(timeout -k 5 120 "$berth" -H "unix://$T/berth.sock" run -d --network none busybox sleep 300 2>&1); then started=$((started + 1));
  else echo "  berth FAILED: \`$B run -d --network none busybox sleep 300\`: $out"; break; fi
done
if [ "$have_docker" = 1 ]; then
  for _ in $(seq "$NCONT"); do dc run -d --network none busybox sleep 300 >/dev/null || break; done
fi
sleep 1
# berth's per-container monitors: `berth monitor --data-root $T/berth ...`.
mon_rss=0; mon_pss=0; mon_uss=0; nmon=0
for p in $(bench_pids_under_root); do
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
  [[ $cmd == *" monitor "*"--data-root $T/berth "* ]] || continue
  nmon=$((nmon + 1)); mon_rss=$((mon_rss + $(bench_rss_kb "$p"))); mon_pss=$((mon_pss + $(bench_pss_kb "$p")))
  mon_uss=$((mon_uss + $(bench_uss_kb "$p")))
done
brun=$(bc ps -q | wc -l)
echo "  berth: $brun containers running, $nmon monitor processes"
if [ "$have_docker" = 1 ]; then
  shim_rss=0; shim_pss=0; shim_uss=0; nshim=0
  for p in $(bench_pids_under_root); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd-shim ] || continue
    nshim=$((nshim + 1)); shim_rss=$((shim_rss + $(bench_rss_kb "$p"))); shim_pss=$((shim_pss + $(bench_pss_kb "$p")))
    shim_uss=$((shim_uss + $(bench_uss_kb "$p")))
  done
  dn=$(dc ps -q | wc -l)
  echo "  docker: $dn containers running, $nshim containerd-shim-runc-v2 processes"
  bn=$brun
  [ "$bn" -gt 0 ] || bn=1
  [ "$dn" -gt 0 ] || dn=1
  bench_ratio_line "  RSS per container" "$(mb $((mon_rss / bn)))" "$(mb $((shim_rss / dn)))" MB docker \
    "<= 2 MB per container"
  bench_ratio_line "  PSS per container" "$(mb $((mon_pss / bn)))" "$(mb $((shim_pss / dn)))" MB docker
  bench_ratio_line "  USS (private) per container" "$(mb $((mon_uss / bn)))" "$(mb $((shim_uss / dn)))" MB docker
else
  bn=$brun
  [ "$bn" -gt 0 ] || bn=1
  echo "  berth per container: RSS $(mb $((mon_rss / bn))) MB, PSS $(mb $((mon_pss / bn))) MB," \
    "USS $(mb $((mon_uss / bn))) MB"
  echo "  goal: <= 2 MB per container"
fi
ids=$(bc ps -aq)
# shellcheck disable=SC2086 # one id per word
[ -z "$ids" ] || bc rm -f $ids >/dev/null || echo "  berth FAILED: \`$B rm -f <ids>\`"
# shellcheck disable=SC2086
if [ "$have_docker" = 1 ]; then ids=$(dc ps -aq); [ -z "$ids" ] || dc rm -f $ids >/dev/null; fi
left=$(bc ps -aq | wc -l)
[ "$left" = 0 ] || echo "  berth: $left containers left after \`rm -f\`"
exit 0
