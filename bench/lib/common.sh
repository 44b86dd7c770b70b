# shellcheck shell=bash
# Shared plumbing for bench/engine.sh and bench/pull.sh (sourced, not run):
#   - re-exec in a private mount namespace, so container and overlay mounts never reach the host's table;
#   - a release build of berth/berthd (CARGO_TARGET_DIR, default target-bench);
#   - a temporary root $T, daemons started under it and ended by PID in an EXIT/INT/TERM trap, then unmounts,
#     `rm -rf --one-file-system`, and removal of containerd's per-namespace cgroup parents;
#   - hyperfine/JSON helpers and the "berth X, docker Y, ratio berth/docker Z" line.
# Benchmarks print numbers; they never fail on a time.

bench_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_NS=${BENCH_NS:-berth-bench}   # containerd namespace given to dockerd (its cgroup parents carry this name)
BENCH_PIDS=()                       # daemons we started, ended by PID at exit
BENCH_CLEANUP_HOOKS=()              # commands run first at exit (remove containers while the daemons still run)

bench_log() { echo "$*" >&2; }
bench_die() { echo "${BENCH_NAME:-bench}: $*" >&2; exit 1; }

# bench_reexec_private_ns "$@": run the calling script again inside `unshare -m --propagation private`.
bench_reexec_private_ns() {
  [ "$(id -u)" = 0 ] || bench_die "needs root"
  if [ -z "${BENCH_IN_PRIVATE_NS:-}" ]; then
    command -v unshare >/dev/null || bench_die "unshare not found (util-linux)"
    BENCH_IN_PRIVATE_NS=1 exec unshare -m --propagation private "$BASH" "$0" "$@"
  fi
}

bench_require() { # tool...
  local t
  for t in "$@"; do command -v "$t" >/dev/null || bench_die "$t not found"; done
}

# bench_build: release build of berth and berthd; sets $berth and $berthd.
bench_build() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$bench_here/target-bench}
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release -p berth-cli -p berthd -p berth-shim --manifest-path "$bench_here/Cargo.toml" >&2 ||
      bench_die "cargo build --release failed"
  fi
  berth=$CARGO_TARGET_DIR/release/berth
  berthd=$CARGO_TARGET_DIR/release/berthd
  { [ -x "$berth" ] && [ -x "$berthd" ]; } || bench_die "no $berth / $berthd after the build"
}

# bench_tmp_root: the temporary root $T (short path: unix socket paths must stay under 108 bytes).
bench_tmp_root() {
  T=$(mktemp -d /tmp/berth-bench.XXXXXX)
  export DOCKER_CONFIG=$T/docker-config   # never touch ~/.docker
  mkdir -p "$DOCKER_CONFIG"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_stop_pid() { # pid: TERM, wait up to 15 s, then KILL
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill "$p" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  return 0
}

# Processes whose command line names the temporary root (containerd shims, berth monitors, containerd): all of
# them were started by this run's daemons, so ending them by PID ends only what we started.
bench_pids_under_root() {
  local f p cmd
  for f in /proc/[0-9]*/cmdline; do
    p=${f#/proc/}; p=${p%/cmdline}
    [ "$p" = "$$" ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
    [[ $cmd == *"$T/"* ]] && echo "$p"
  done
  return 0
}

bench_cleanup() {
  local rc=$? h p m d
  trap - EXIT INT TERM
  [ -n "${T:-}" ] && [ -d "$T" ] || return "$rc"
  for h in "${BENCH_CLEANUP_HOOKS[@]}"; do eval "$h" >/dev/null 2>&1 || true; done
  for p in "${BENCH_PIDS[@]}"; do bench_stop_pid "$p"; done
  # Leftovers (a shim or monitor of a container that could not be removed): ours by construction, see above.
  for p in $(bench_pids_under_root); do bench_stop_pid "$p"; done
  # Deepest mounts first; -R -l so busy overlays still go.
  awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -R -l "$m" 2>/dev/null; done
  rm -rf --one-file-system "$T"
  # containerd names its cgroup parents after the namespace: remove the (empty) ones it left.
  for d in /sys/fs/cgroup/*/"$BENCH_NS" /sys/fs/cgroup/"$BENCH_NS"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  # berthd puts its containers under a /berth parent (like docker's /docker); rmdir takes it only when empty.
  for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/berth; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  return "$rc"
}

# bench_spawn LOG cmd...: start a daemon in its own session, so a Ctrl-C meant for the script does not stop it
# before the cleanup has removed its containers through it; sets SPAWNED_PID and records it for the cleanup.
# (setsid execs in place here: a background child of a non-interactive shell is no process-group leader.)
bench_spawn() {
  local log=$1; shift
  setsid "$@" >>"$log" 2>&1 </dev/null &
  SPAWNED_PID=$!
  BENCH_PIDS+=("$SPAWNED_PID")
}

bench_wait_for() { # tries command...: poll every 0.1 s
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# Exec roots (runtime state, sockets: what lives on /run, a tmpfs on real hosts) go under $BENCH_EXEC_BASE when
# a script sets it (bench/engine.sh mounts a tmpfs there), else under $T.
# berthd under $T (fresh data root unless it already exists). Sets BERTHD_PID; bc = berth CLI on its socket.
bench_start_berthd() {
  bench_spawn "$T/berthd.log" \
    "$berthd" -H "unix://$T/berth.sock" --data-root "${BENCH_BERTH_ROOT:-$T/berth}" \
    --exec-root "${BENCH_EXEC_BASE:-$T}/berth-exec" \
    --group root --no-bridge
  # shellcheck disable=SC2034 # used by the scripts
  BERTHD_PID=$SPAWNED_PID
  bench_wait_for 300 "$berth" -H "unix://$T/berth.sock" version ||
    { tail -20 "$T/berthd.log" >&2; bench_die "berthd did not start"; }
}
bc() { "$berth" -H "unix://$T/berth.sock" "$@"; }

# dockerd under $T (data root $BENCH_DOCKER_ROOT, default $T/docker) with its own containerd (namespace $BENCH_NS),
# no bridge, no iptables. Sets DOCKERD_PID.
bench_start_dockerd() { # extra dockerd flags...
  bench_spawn "$T/dockerd.log" \
    dockerd --data-root "${BENCH_DOCKER_ROOT:-$T/docker}" --exec-root "${BENCH_EXEC_BASE:-$T}/docker-exec" \
    -H "unix://$T/docker.sock" \
    --pidfile "$T/dockerd.pid" --iptables=false --ip6tables=false --bridge=none \
    --containerd-namespace "$BENCH_NS" "$@"
  # shellcheck disable=SC2034 # used by the scripts
  DOCKERD_PID=$SPAWNED_PID
  bench_wait_for 600 docker -H "unix://$T/docker.sock" version ||
    { tail -20 "$T/dockerd.log" >&2; bench_die "dockerd did not start"; }
}
dc() { docker -H "unix://$T/docker.sock" "$@"; }

# Stop one daemon we started (and forget its PID).
bench_stop_daemon() { # pid
  local p keep=()
  bench_stop_pid "$1"
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# hyperfine, its report on stderr, results in $T/hf-<tag>.json. Usage: bench_hf TAG [hyperfine args...]
# A hung command (a bug) must not hang the benchmark: `timeout` ends hyperfine's whole process group after
# BENCH_HF_TIMEOUT seconds (default 600).
bench_hf() {
  local tag=$1 rc; shift
  timeout -k 5 "${BENCH_HF_TIMEOUT:-600}" hyperfine -N --style basic --export-json "$T/hf-$tag.json" "$@" >&2
  rc=$?
  [ "$rc" != 124 ] || echo "hyperfine timed out after ${BENCH_HF_TIMEOUT:-600} s: a command hung" >&2
  return "$rc"
}
# bench_hf_stat TAG NAME FIELD -> seconds (mean, min, max, stddev, median)
bench_hf_stat() {
  jq -r --arg n "$2" --arg f "$3" '.results[] | select(.command == $n) | .[$f]' "$T/hf-$1.json"
}

# bench_try WHAT cmd...: run once (at most BENCH_CMD_TIMEOUT s, default 120: exit status 124 means it hung); on
# failure print the exact command and its error and return 1.
bench_try() {
  local what=$1 out; shift
  # `timeout` runs programs, not shell functions: spell out bc/dc.
  case $1 in
    bc) shift; set -- "$berth" -H "unix://$T/berth.sock" "$@" ;;
    dc) shift; set -- docker -H "unix://$T/docker.sock" "$@" ;;
  esac
  if ! out=$(timeout -k 5 "${BENCH_CMD_TIMEOUT:-120}" "$@" 2>&1); then
    echo "  $what FAILED: \`$*\`"
    echo "$out" | tail -5 | sed 's/^/    /'
    return 1
  fi
}

# bench_ratio_line LABEL BERTH REF UNIT REFNAME [GOAL]: "LABEL: berth X, docker Y, ratio berth/docker Z".
bench_ratio_line() {
  awk -v l="$1" -v b="$2" -v r="$3" -v u="$4" -v n="$5" -v g="${6:-}" 'BEGIN {
    if (r + 0 > 0) z = sprintf("%.3f", b / r); else z = "n/a"
    printf "%s: berth %s %s, %s %s %s, ratio berth/%s %s\n", l, b, u, n, r, u, n, z
    if (g != "") printf "  goal: %s\n", g
  }'
}
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

bench_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
bench_pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# USS: the process's private pages, what one more such process really costs.
bench_uss_kb() {
  awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

bench_header() {
  echo "== $1 ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "berth: release build of $(date -u -r "$berth" +%FT%TZ) ($berth), repo HEAD" \
    "$(git -C "$bench_here" rev-parse --short HEAD 2>/dev/null || echo '?')"
}
