#!/usr/bin/env bash
# Fails when the test suite left kernel objects behind: mounts, cgroups or processes of berth's tests.
set -u
leaks=0
m=$(grep -c 'berth' /proc/self/mountinfo 2>/dev/null || true)
if [ "${m:-0}" -gt 0 ]; then echo "leak: $m mounts mention berth"; grep berth /proc/self/mountinfo | head -5; leaks=1; fi
c=$(find /sys/fs/cgroup -maxdepth 4 -type d \( -name '*berth-test*' -o -path '*/berth/*' \) 2>/dev/null | wc -l)
if [ "$c" -gt 0 ]; then echo "leak: $c test cgroups"; find /sys/fs/cgroup -maxdepth 4 -type d \( -name '*berth-test*' -o -path '*/berth/*' \) | head -5; leaks=1; fi
p=""
for d in /proc/[0-9]*; do  # processes running a berth binary (from disk or a sealed memfd copy)
  exe=$(readlink "$d/exe" 2>/dev/null) || continue
  case "${exe##*/}" in berth|berthd|berth-runtime|"memfd:berth"*) p="$p ${d#/proc/}" ;; esac
done
if [ -n "$p" ]; then echo "leak: processes:"; ps -o pid,args -p "$(echo $p | tr ' ' ,)" 2>/dev/null; leaks=1; fi
t=$(nft list tables 2>/dev/null | grep -E 'berth' || true)
if [ -n "$t" ]; then echo "leak: nft tables: $t"; leaks=1; fi
b=$(ip -o link show 2>/dev/null | grep -oE '^[0-9]+: (berth0|bt[0-9]+x[0-9]+|br-[0-9a-f]{12})[:@]' || true)
if [ -n "$b" ]; then echo "leak: links: $b"; leaks=1; fi
[ "$leaks" = 0 ] && echo "leak check: clean"
exit "$leaks"
