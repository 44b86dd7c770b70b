#!/usr/bin/env bash
# Compiles the hello-world example into a static binary and a rootfs tarball (what `berth import` takes).
# Usage: build.sh OUTDIR   ->  OUTDIR/hello, OUTDIR/rootfs.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out/rootfs"
gcc -static -Os -s -o "$out/hello" "$here/hello.c"
cp "$out/hello" "$out/rootfs/hello"
tar -C "$out/rootfs" --numeric-owner --owner=0 --group=0 -cf "$out/rootfs.tar" hello
