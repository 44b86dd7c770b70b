#!/usr/bin/env bash
# Benchmarks the classic builder: berth CLI -> berthd against docker CLI (DOCKER_BUILDKIT=0) -> Debian's dockerd,
# in the same run, on the same context (busybox base, ENV/WORKDIR/ARG, a COPY of 300 small files and a 4 MB
# file, three RUN steps, CMD), and prints "berth X, docker Y, ratio berth/docker Z" for
#   1. an uncached build (`--no-cache`): every RUN is a real container, every COPY a new layer;
#   2. a fully cached rebuild of the unchanged context (every step "Using cache");
# plus the docker CLI against berthd (`DOCKER_BUILDKIT=0 docker build` through berthd's POST /build).
# RUN steps use `--network none` in both engines (dockerd runs with --bridge=none), so neither pays for networking.
# Needs root, hyperfine, jq; dockerd/containerd (docker.io) and the docker CLI for the reference.
# Usage: bench/build.sh   (CARGO_TARGET_DIR defaults to target-bench; BENCH_NO_BUILD=1 skips the build;
#        BENCH_RUNS=5 hyperfine runs of the uncached build, 3 x that of the cached one)
set -uo pipefail
BENCH_NAME=bench/build.sh
# shellcheck source=bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_reexec_private_ns "$@"
bench_require hyperfine jq cargo
bench_build
bench_tmp_root

have_docker=1
for t in dockerd containerd runc docker; do command -v "$t" >/dev/null || have_docker=0; done
RUNS=${BENCH_RUNS:-5}
CRUNS=$((RUNS * 3))

# --- the base image and the context ---
"$bench_here/tests/fixtures/make-busybox-rootfs.sh" "$T/busybox-rootfs" >&2 || bench_die "make-busybox-rootfs failed"
tar -C "$T/busybox-rootfs" --numeric-owner -cf "$T/busybox.tar" .
rm -rf "$T/busybox-rootfs"
ctx=$T/ctx
mkdir -p "$ctx/src/lib" "$ctx/ignored"
for i in $(seq 300); do echo "file $i $(seq "$i" | tr '\n' ' ')" >"$ctx/src/lib/f$i.txt"; done
head -c 4194304 /dev/urandom >"$ctx/src/blob.bin"
for i in $(seq 50); do echo "never sent $i" >"$ctx/ignored/x$i"; done
printf 'ignored\n*.md\n' >"$ctx/.dockerignore"
echo "# not sent" >"$ctx/README.md"
cat >"$ctx/Dockerfile" <<'EOF'
FROM busybox
ARG VERSION=1.0
ENV APP_HOME=/srv/app APP_VERSION=$VERSION
WORKDIR $APP_HOME
COPY src/ ./src/
RUN mkdir -p out && for f in src/lib/*.txt; do wc -c "$f" >> out/sizes; done
RUN sha256sum src/blob.bin > out/blob.sum && cat out/blob.sum
RUN adduser -D -H app 2>/dev/null || echo 'app:x:1000:1000::/srv/app:/bin/sh' >> /etc/passwd
USER app
EXPOSE 8080
CMD ["sh", "-c", "cat out/blob.sum"]
EOF
steps=$(grep -c '^[A-Z]' "$ctx/Dockerfile")

bench_header "bench/build.sh: the classic builder, berth build vs DOCKER_BUILDKIT=0 docker build"
echo "context: busybox base, $steps steps (3 RUN, COPY of 301 files / 4.1 MB), RUN with --network none"

bench_start_berthd
bench_try "berth import busybox" bc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest ||
  bench_die "cannot import busybox into berthd"
B="$berth -H unix://$T/berth.sock"
if [ "$have_docker" = 1 ]; then
  echo "reference: $(dockerd --version), $(containerd --version | awk '{print $1, $3}'), $(runc --version | head -1); docker CLI $(docker version -f '{{.Client.Version}}' 2>/dev/null)"
  bench_start_dockerd --log-level warn
  dc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest >/dev/null || bench_die "docker import failed"
  D="docker -H unix://$T/docker.sock"
else
  echo "reference: no dockerd (not installed: apt-get install docker.io): berth's figures only"
fi
export DOCKER_BUILDKIT=0

# A first build of each, checked (and the cache warm for item 2).
bench_try "berth build" bc build --network none -t bench-app "$ctx" || bench_die "berth build failed"
bench_try "berth run" bc run --rm --network none bench-app || bench_die "the built image does not run"
if [ "$have_docker" = 1 ]; then
  bench_try "docker build" dc build --network none -t bench-app "$ctx" || bench_die "docker build failed"
fi

exec 3>&1
hf() { # tag runs command-line -> mean and min in s, or nothing (the failure goes to the report)
  local rc
  bench_hf "$1" --warmup 1 --runs "$2" -n "$1" "$3" 2>"$T/hf-$1.err"; rc=$?
  cat "$T/hf-$1.err" >&2
  if [ "$rc" = 0 ]; then
    echo "$(bench_hf_stat "$1" "$1" mean) $(bench_hf_stat "$1" "$1" min)"
  else
    echo "  FAILED under hyperfine (exit status $rc; 124 = hung): \`$3\`: $(grep -m1 -i error "$T/hf-$1.err")" >&3
  fi
}
report() { # label berth-mean ref-mean [goal]
  [ -n "${2:-}" ] && [ -n "${3:-}" ] && bench_ratio_line "$1" "$(ms "$2")" "$(ms "$3")" ms docker "${4:-}"
  [ -n "${2:-}" ] && [ -z "${3:-}" ] && echo "$1: berth $(ms "$2") ms"
  return 0
}

echo
echo "1. uncached build (--no-cache), hyperfine -N, warmup 1, runs $RUNS; mean in ms"
read -r bu _ < <(hf berth-nocache "$RUNS" "$B build -q --no-cache --network none $ctx")
ru=""; xu=""
if [ "$have_docker" = 1 ]; then
  read -r ru _ < <(hf docker-nocache "$RUNS" "$D build -q --no-cache --network none $ctx")
  read -r xu _ < <(hf docker-cli-berthd-nocache "$RUNS" "docker -H unix://$T/berth.sock build -q --no-cache --network none $ctx")
fi
report "  berth CLI -> berthd vs docker CLI -> dockerd" "${bu:-}" "$ru" "berth faster than docker's classic builder"
[ -n "$xu" ] && report "  docker CLI -> berthd vs docker CLI -> dockerd" "$xu" "$ru"

echo
echo "2. fully cached rebuild of the unchanged context, hyperfine -N, warmup 1, runs $CRUNS; mean in ms"
read -r bc_ _ < <(hf berth-cached "$CRUNS" "$B build -q --network none -t bench-app $ctx")
rc_=""; xc=""
if [ "$have_docker" = 1 ]; then
  read -r rc_ _ < <(hf docker-cached "$CRUNS" "$D build -q --network none -t bench-app $ctx")
  read -r xc _ < <(hf docker-cli-berthd-cached "$CRUNS" "docker -H unix://$T/berth.sock build -q --network none -t bench-app $ctx")
fi
report "  berth CLI -> berthd vs docker CLI -> dockerd" "${bc_:-}" "$rc_" "berth faster than docker's classic builder"
[ -n "$xc" ] && report "  docker CLI -> berthd vs docker CLI -> dockerd" "$xc" "$rc_"
# Check that the cached rebuild really was all cache hits.
hits=$(bc build --network none -t bench-app "$ctx" 2>&1 | grep -c -- '---> Using cache')
echo "  (berth's rebuild: $hits of $((steps - 1)) steps after FROM from the cache)"
exit 0
