#!/usr/bin/env bash
# Compiles the hello-world example into a static binary; OUTDIR is then a build context (the binary and the
# Dockerfile: `berth build -t hello-world OUTDIR`), and OUTDIR/rootfs.tar the same rootfs for `berth import`.
# Usage: build.sh OUTDIR   ->  OUTDIR/hello, OUTDIR/Dockerfile, OUTDIR/rootfs.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out/rootfs"
gcc -static -Os -s -o "$out/hello" "$here/hello.c"
cp "$out/hello" "$out/rootfs/hello"
cp "$here/Dockerfile" "$out/Dockerfile"
printf 'rootfs\nrootfs.tar\n' > "$out/.dockerignore"
tar -C "$out/rootfs" --numeric-owner --owner=0 --group=0 -cf "$out/rootfs.tar" hello
