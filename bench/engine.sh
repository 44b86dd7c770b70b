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
# Usage: bench/engine.sh   (CARGO_TARGET_DIR defaults to target-bench; BENCH_NO_BUILD=1 skips the build)
set -uo pipefail
BENCH_NAME=bench/engine.sh
# shellcheck source=bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_reexec_private_ns "$@"
bench_require hyperfine jq cargo gcc
bench_build
bench_tmp_root

have_docker=1
for t in dockerd containerd runc docker; do command -v "$t" >/dev/null || have_docker=0; done
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
BENCH_CLEANUP_HOOKS+=('ids=$(bc ps -aq); [ -n "$ids" ] && bc rm -f $ids')

if [ "$have_docker" = 1 ]; then
  echo "reference: $(dockerd --version), $(containerd --version | awk '{print $1, $3}'), $(runc --version | head -1); docker CLI $(docker version -f '{{.Client.Version}}' 2>/dev/null)"
  bench_start_dockerd --log-level warn
  dc import -c 'CMD ["/hello"]' "$T/hello/rootfs.tar" hello-world:latest >/dev/null ||
    bench_die "docker import failed"
  dc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest >/dev/null || bench_die "docker import failed"
  # shellcheck disable=SC2016
  BENCH_CLEANUP_HOOKS+=('ids=$(dc ps -aq); [ -n "$ids" ] && dc rm -f $ids')
  ref=docker
else
  echo "reference: dockerd/containerd not installed (apt-get install docker.io): items 1-2 compare with plain"
  echo "  \`runc run\` of \`true\` on a busybox bundle (no engine, no image store), items 3-5 show berth alone"
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
args=(-n berth "$B run --rm --network none hello-world")
ok_b=1; bench_try "berth" bc run --rm --network none hello-world || ok_b=0
if [ "$have_docker" = 1 ]; then
  args+=(-n docker "$D run --rm --network none hello-world"
    -n docker-cli-berthd "docker -H unix://$T/berth.sock run --rm --network none hello-world")
  ok_x=1; bench_try "docker CLI -> berthd" docker -H "unix://$T/berth.sock" run --rm --network none hello-world || ok_x=0
else
  args+=(-n runc "runc --root $T/runc-state run --bundle $T/bundle bench-hello-$$")
fi
# Drop the commands that fail once: hyperfine would abort on them and lose the others' numbers.
[ "$ok_b" = 1 ] || args=("${args[@]:2}")
if [ "$have_docker" = 1 ] && [ "${ok_x:-1}" = 0 ]; then
  args=("${args[@]:0:${#args[@]}-2}")
fi
if bench_hf hello --warmup 3 --runs "$RUNS" "${args[@]}"; then
  r=$(bench_hf_stat hello "$ref" mean); rmin=$(bench_hf_stat hello "$ref" min)
  if [ "$ok_b" = 1 ]; then
    b=$(bench_hf_stat hello berth mean); bmin=$(bench_hf_stat hello berth min)
    bench_ratio_line "  berth CLI -> berthd vs $ref CLI -> ${ref}d (mean)" "$(ms "$b")" "$(ms "$r")" ms "$ref" \
      "berth <= 0.1 x docker's time"
    bench_ratio_line "  (min)" "$(ms "$bmin")" "$(ms "$rmin")" ms "$ref"
  fi
  if [ "$have_docker" = 1 ] && [ "${ok_x:-1}" = 1 ]; then
    x=$(bench_hf_stat hello docker-cli-berthd mean); xmin=$(bench_hf_stat hello docker-cli-berthd min)
    bench_ratio_line "  docker CLI -> berthd vs docker CLI -> dockerd (mean)" "$(ms "$x")" "$(ms "$r")" ms docker
    bench_ratio_line "  (min)" "$(ms "$xmin")" "$(ms "$rmin")" ms docker
  fi
else
  echo "  hyperfine failed (see stderr)"
fi

# --- 2. 50 x run --rm busybox true, 10 at a time ---
echo
echo "2. $PAR_TOTAL x run --rm --network none busybox true, $PAR at a time (xargs -P$PAR): wall time, containers/s"
par_run() { # label cmd... -> prints "seconds failures"
  local t0 t1 fails
  t0=$(date +%s.%N)
  fails=$(seq "$PAR_TOTAL" | xargs -P"$PAR" -I{} timeout -k 5 120 sh -c '"$@" >/dev/null 2>&1 || echo F' sh "$@" |
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
    f=$(seq "$PAR_TOTAL" | xargs -P10 -I{} sh -c "runc --root $T/runc-state run --bundle $T/bundle par-{}-$$ >/dev/null 2>&1 || echo F" | grep -c F)
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
  args=()
  # shellcheck disable=SC2086 # "ps -a" is two words
  bench_try "berth $verb" bc $verb && args+=(-n berth "$B $verb")
  [ "$have_docker" = 1 ] && args+=(-n docker "$D $verb")
  [ "${#args[@]}" -gt 0 ] || continue
  if bench_hf "$tag" --warmup 3 --runs "$RUNS" "${args[@]}"; then
    b=$(bench_hf_stat "$tag" berth mean); r=0
    [ "$have_docker" = 1 ] && r=$(bench_hf_stat "$tag" docker mean)
    bench_ratio_line "  $verb" "$(ms "${b:-0}")" "$(ms "$r")" ms docker
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
mon_rss=0; mon_pss=0; nmon=0
for p in $(bench_pids_under_root); do
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
  [[ $cmd == *" monitor "*"--data-root $T/berth "* ]] || continue
  nmon=$((nmon + 1)); mon_rss=$((mon_rss + $(bench_rss_kb "$p"))); mon_pss=$((mon_pss + $(bench_pss_kb "$p")))
done
brun=$(bc ps -q | wc -l)
echo "  berth: $brun containers running, $nmon monitor processes"
if [ "$have_docker" = 1 ]; then
  shim_rss=0; shim_pss=0; nshim=0
  for p in $(bench_pids_under_root); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = containerd-shim ] || continue
    nshim=$((nshim + 1)); shim_rss=$((shim_rss + $(bench_rss_kb "$p"))); shim_pss=$((shim_pss + $(bench_pss_kb "$p")))
  done
  dn=$(dc ps -q | wc -l)
  echo "  docker: $dn containers running, $nshim containerd-shim-runc-v2 processes"
  bn=$brun
  [ "$bn" -gt 0 ] || bn=1
  [ "$dn" -gt 0 ] || dn=1
  bench_ratio_line "  RSS per container" "$(mb $((mon_rss / bn)))" "$(mb $((shim_rss / dn)))" MB docker \
    "<= 2 MB per container"
  bench_ratio_line "  PSS per container" "$(mb $((mon_pss / bn)))" "$(mb $((shim_pss / dn)))" MB docker
else
  bn=$brun
  [ "$bn" -gt 0 ] || bn=1
  echo "  berth RSS per container $(mb $((mon_rss / bn))) MB, PSS $(mb $((mon_pss / bn))) MB"
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
