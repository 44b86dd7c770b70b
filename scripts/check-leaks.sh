#!/usr/bin/env bash
# Fails when the test suite left kernel objects behind: mounts, cgroups or processes of berth's tests.
set -u
leaks=0
m=$(grep -c 'berth' /proc/self/mountinfo 2>/dev/null || true)
if [ "${m:-0}" -gt 0 ]; then echo "leak: $m mounts mention berth"; grep berth /proc/self/mountinfo | head -5; leaks=1; fi
c=$(find /sys/fs/cgroup -maxdepth 4 -type d \( -name '*berth-test*' -o -path '*/berth/*' \) 2>/dev/null | wc -l)
if [ "$c" -gt 0 ]; then echo "leak: $c test cgroups"; find /sys/fs/cgroup -maxdepth 4 -type d \( -name '*berth-test*' -o -path '*/berth/*' \) | head -5; leaks=1; fi
p=$(pgrep -f 'berth(d)? .*(--data-root|monitor|runtime)' | grep -v "^$$\$" || true)
if [ -n "$p" ]; then echo "leak: processes:"; ps -o pid,args -p $(echo $p | tr ' ' ,) 2>/dev/null; leaks=1; fi
[ "$leaks" = 0 ] && echo "leak check: clean"
exit "$leaks"
