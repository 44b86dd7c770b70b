#!/usr/bin/env bash
# Benchmarks a published port: `wrk` on the host against busybox `httpd` in a container, through
# `-p 127.0.0.1:PORT:80`, berthd (nftables DNAT from the host's loopback) vs Debian's docker.io (dockerd relays
# loopback connections through docker-proxy), in the same run, and prints
# "requests/s: berth X, docker Y, ratio berth/docker Z" with the goal (berth >= docker) and latency p50/p99.
#   - berthd runs with its own test bridge bb<pid>, a free 10.215.x.1/24 and nft table berth_bench<pid>;
#   - dockerd runs with --iptables=false --ip6tables=false --ip-forward=false (it never touches the host firewall)
#     on a bridge db<pid> (10.216.x.1/24) this script creates, with the userland proxy (docker's default);
#   - one 2 s warm-up each, then berth/docker alternate for BENCH_NET_ROUNDS rounds (default 2) of
#     `wrk -t2 -c32 -d10s --latency`, so a change in the machine's load hits both alike.
# Traffic goes only to 127.0.0.1. At exit (also on Ctrl-C/TERM) the containers are removed through the daemons,
# the daemons ended by PID, the test bridges, the nft table and the temporary root removed, and
# net.ipv4.ip_forward (berthd turns it on for its bridge) put back to its value before the run.
# Needs root, wrk (apt-get install wrk), busybox-static, curl, nft, ip; docker.io and the docker CLI.
# Usage: bench/network.sh   (CARGO_TARGET_DIR defaults to target-bench; BENCH_NO_BUILD=1 skips the build;
#        BENCH_NET_DURATION=10 seconds per wrk run; BENCH_NET_ROUNDS=2)
set -uo pipefail
BENCH_NAME=bench/network.sh
# shellcheck source=bench/lib/common.sh
. "$(dirname "$0")/lib/common.sh"
bench_reexec_private_ns "$@"
bench_require wrk curl nft ip ss awk dockerd containerd docker
bench_build
bench_tmp_root

DUR=${BENCH_NET_DURATION:-10}
ROUNDS=${BENCH_NET_ROUNDS:-2}
BBR=bb$$                   # berthd's bridge (<= 15 characters)
DBR=db$$                   # dockerd's bridge, created here
NFT=berth_bench$$          # berthd's nft table
ipfwd_before=$(cat /proc/sys/net/ipv4/ip_forward)

# Runs after common.sh's cleanup (containers removed, daemons ended, mounts and $T gone): whatever network state
# the daemons left behind, ours by name.
# shellcheck disable=SC2317 # run by the EXIT trap
net_cleanup() {
  local rc=$? fam
  bench_cleanup
  ip link show "$BBR" >/dev/null 2>&1 && ip link del "$BBR"
  ip link show "$DBR" >/dev/null 2>&1 && ip link del "$DBR"
  for fam in $(nft list tables 2>/dev/null | awk -v t="$NFT" '$3 == t { print $2 }'); do
    nft delete table "$fam" "$NFT"
  done
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$ipfwd_before" ] ||
    echo "$ipfwd_before" >/proc/sys/net/ipv4/ip_forward
  exit "$rc"
}
trap net_cleanup EXIT

# A /24 10.<b>.x.0/24 that no route covers yet (prints x).
free_subnet() { # second-octet
  local x start=$(($$ % 250 + 1))
  for i in $(seq 0 249); do
    x=$(((start + i) % 250 + 1))
    ip -4 route show | awk '{ print $1 }' | grep -q "^10\.$1\.$x\." && continue
    ip -4 route show | awk '{ print $1 }' | grep -qx "10\.$1\.$x\.0/24" && continue
    ip -4 addr show | grep -q "inet 10\.$1\.$x\." && continue
    echo "$x"; return 0
  done
  return 1
}
# A free TCP port on 127.0.0.1, below the kernel's ephemeral range (an outgoing connection could hold a port in
# it: docker-proxy's bind would then fail) and used by no socket at all, from a pid-derived start.
free_port() {
  local p lo
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  [ "$lo" -gt 11000 ] || lo=32768
  for i in $(seq 0 999); do
    p=$((10000 + ($$ * 7 + i * 13) % (lo - 10000)))
    ss -Hantu | awk '{ print $5 }' | grep -q ":$p\$" && continue
    [ "$p" != "${used_port:-}" ] || continue
    echo "$p"; return 0
  done
  return 1
}
# Poll until httpd answers through the published port.
wait_http() { bench_wait_for 300 curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/index.html"; }

bx=$(free_subnet 215) || bench_die "no free 10.215.x.0/24"
dx=$(free_subnet 216) || bench_die "no free 10.216.x.0/24"

# --- image: busybox with a small page under /www ---
"$bench_here/tests/fixtures/make-busybox-rootfs.sh" "$T/busybox-rootfs" >&2 || bench_die "make-busybox-rootfs failed"
mkdir -p "$T/busybox-rootfs/www"
{
  echo '<!DOCTYPE html><html><head><title>berth bench</title></head><body>'
  for i in $(seq 8); do echo "<p>line $i of a small page served by busybox httpd for bench/network.sh</p>"; done
  echo '</body></html>'
} >"$T/busybox-rootfs/www/index.html"
page_bytes=$(stat -c %s "$T/busybox-rootfs/www/index.html")
tar -C "$T/busybox-rootfs" --numeric-owner -cf "$T/busybox.tar" .
rm -rf "$T/busybox-rootfs"

bench_header "bench/network.sh: wrk -> 127.0.0.1:PORT -> busybox httpd in a container, berthd vs dockerd"
echo "reference: $(dockerd --version) with docker-proxy (userland proxy), --iptables=false; wrk: $(wrk -v 2>&1 | head -1)"

# --- berthd with bridge networking on test names ---
bench_spawn "$T/berthd.log" "$berthd" -H "unix://$T/berth.sock" --data-root "$T/berth" \
  --exec-root "$T/berth-exec" --group root --bridge-name "$BBR" --bip "10.215.$bx.1/24" --nft-table "$NFT"
bench_wait_for 300 "$berth" -H "unix://$T/berth.sock" version ||
  { tail -20 "$T/berthd.log" >&2; bench_die "berthd did not start"; }
# shellcheck disable=SC2016 # expanded at exit, by eval
BENCH_CLEANUP_HOOKS+=('ids=$(timeout 30 "$berth" -H "unix://$T/berth.sock" ps -aq)
  [ -n "$ids" ] && timeout 120 "$berth" -H "unix://$T/berth.sock" rm -f $ids')
bench_try "berth import busybox" bc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest ||
  bench_die "cannot import the image into berthd"

# --- dockerd on its own bridge, no firewall or forwarding changes ---
ip link add "$DBR" type bridge || bench_die "cannot create bridge $DBR"
{ ip addr add "10.216.$dx.1/24" dev "$DBR" && ip link set "$DBR" up; } || bench_die "cannot set up bridge $DBR"
bench_spawn "$T/dockerd.log" \
  dockerd --data-root "$T/docker" --exec-root "$T/docker-exec" -H "unix://$T/docker.sock" \
  --pidfile "$T/dockerd.pid" --iptables=false --ip6tables=false --ip-forward=false --bridge "$DBR" \
  --userland-proxy=true --containerd-namespace "$BENCH_NS" --log-level warn
bench_wait_for 600 docker -H "unix://$T/docker.sock" version ||
  { tail -20 "$T/dockerd.log" >&2; bench_die "dockerd did not start"; }
# shellcheck disable=SC2016
BENCH_CLEANUP_HOOKS+=('ids=$(timeout 30 docker -H "unix://$T/docker.sock" ps -aq)
  [ -n "$ids" ] && timeout 120 docker -H "unix://$T/docker.sock" rm -f $ids')
dc import -c 'CMD ["sh"]' "$T/busybox.tar" busybox:latest >/dev/null || bench_die "docker import failed"

# --- the two servers ---
bport=$(free_port) || bench_die "no free port"
used_port=$bport
dport=$(free_port) || bench_die "no free port"
httpd=(busybox httpd -f -p 80 -h /www)
echo "berthd: bridge $BBR 10.215.$bx.1/24, nft table $NFT; berth run -d -p 127.0.0.1:$bport:80 busybox ${httpd[*]}"
echo "dockerd: bridge $DBR 10.216.$dx.1/24; docker run -d -p 127.0.0.1:$dport:80 busybox ${httpd[*]}"
bench_try "berth run" bc run -d --name "bench-httpd-$$" -p "127.0.0.1:$bport:80" busybox "${httpd[@]}" ||
  bench_die "the berth server did not start"
bench_try "docker run" dc run -d --name "bench-httpd-$$" -p "127.0.0.1:$dport:80" busybox "${httpd[@]}" ||
  bench_die "the docker server did not start"
wait_http "$bport" || { bc logs "bench-httpd-$$" 2>&1 | tail -5; bench_die "no answer on 127.0.0.1:$bport (berth)"; }
wait_http "$dport" || { dc logs "bench-httpd-$$" 2>&1 | tail -5; bench_die "no answer on 127.0.0.1:$dport (docker)"; }
pgrep -f "docker-proxy.*-host-port $dport" >/dev/null && echo "docker-proxy relays 127.0.0.1:$dport"
echo "page: /index.html, $page_bytes bytes; wrk -t2 -c32 -d${DUR}s --latency, $ROUNDS rounds berth/docker alternating"

# --- wrk ---
# wrk_run TAG PORT SECONDS -> the report in $T/wrk-TAG.txt, its name on stdout
wrk_run() {
  local f=$T/wrk-$1.txt
  timeout -k 5 $(($3 + 30)) wrk -t2 -c32 -d"$3"s --latency "http://127.0.0.1:$2/index.html" >"$f" 2>&1 ||
    echo "wrk FAILED (exit status $?; 124 = hung)" >>"$f"
  echo "$f"
}
# Latency "1.23ms" / "456.00us" / "1.01s" -> ms
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n
  }'
}
# wrk_field FILE -> "req/s p50ms p99ms errors" (req/s empty when wrk failed)
wrk_field() {
  local rps p50 p99 err
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
  p50=$(awk '$1 == "50%" { print $2 }' "$1")
  p99=$(awk '$1 == "99%" { print $2 }' "$1")
  err=$(awk '/Socket errors|Non-2xx/ { sub(/^ +/, ""); printf "%s; ", $0 }' "$1")
  echo "${rps:-} $(to_ms "${p50:-0}") $(to_ms "${p99:-0}") ${err:-none}"
}

wrk_run warmup-berth "$bport" 2 >/dev/null
wrk_run warmup-docker "$dport" 2 >/dev/null
declare -A sum=() p50s=() p99s=() ok=()
for r in $(seq "$ROUNDS"); do
  for eng in berth docker; do
    if [ "$eng" = berth ]; then port=$bport; else port=$dport; fi
    f=$(wrk_run "$eng-$r" "$port" "$DUR")
    read -r rps p50 p99 err < <(wrk_field "$f")
    if [ -z "$rps" ] || ! [[ $rps =~ ^[0-9.]+$ ]]; then
      echo "  round $r $eng: wrk FAILED: $(tail -3 "$f" | tr '\n' ' ')"
      continue
    fi
    printf "  round %d %-6s %10.1f requests/s, latency p50 %.3f ms, p99 %.3f ms, errors: %s\n" \
      "$r" "$eng" "$rps" "$p50" "$p99" "$err"
    sum[$eng]=$(awk -v a="${sum[$eng]:-0}" -v b="$rps" 'BEGIN { print a + b }')
    p50s[$eng]=$(awk -v a="${p50s[$eng]:-0}" -v b="$p50" 'BEGIN { print a + b }')
    p99s[$eng]=$(awk -v a="${p99s[$eng]:-0}" -v b="$p99" 'BEGIN { print a + b }')
    ok[$eng]=$((${ok[$eng]:-0} + 1))
  done
done
avg() { awk -v s="$1" -v n="$2" -v f="$3" 'BEGIN { if (n > 0) printf f, s / n; else print "n/a" }'; }
echo
if [ "${ok[berth]:-0}" -gt 0 ] && [ "${ok[docker]:-0}" -gt 0 ]; then
  bench_ratio_line "requests/s (mean of rounds)" "$(avg "${sum[berth]}" "${ok[berth]}" %.1f)" \
    "$(avg "${sum[docker]}" "${ok[docker]}" %.1f)" req/s docker "berth >= docker's requests/s (ratio >= 1)"
  bench_ratio_line "latency p50 (mean of rounds)" "$(avg "${p50s[berth]}" "${ok[berth]}" %.3f)" \
    "$(avg "${p50s[docker]}" "${ok[docker]}" %.3f)" ms docker
  bench_ratio_line "latency p99 (mean of rounds)" "$(avg "${p99s[berth]}" "${ok[berth]}" %.3f)" \
    "$(avg "${p99s[docker]}" "${ok[docker]}" %.3f)" ms docker
else
  echo "requests/s: no complete measurement (berth ${ok[berth]:-0}, docker ${ok[docker]:-0} good rounds)"
  echo "  goal: berth >= docker's requests/s (ratio >= 1)"
fi
exit 0
