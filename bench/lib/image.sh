# shellcheck shell=bash
# Builds (once, cached under $BENCH_CACHE) a multi-layer OCI image layout of a few hundred MB for bench/pull.sh:
#   - with debootstrap: a Debian bookworm minbase rootfs, split into 3 layers (all but /usr, /usr but /usr/lib,
#     /usr/lib), plus 2 generated layers (64 MB of random bytes, 64 MB of compressible text);
#   - without it: 5 generated layers of random-ish files (no network needed).
# Usage: bench_image_layout -> prints the OCI layout dir (tag "latest").

BENCH_CACHE=${BENCH_CACHE:-/var/cache/berth-bench}

# A Debian minbase rootfs, cached across runs (the dir appears only once debootstrap succeeded).
bench_debootstrap() {
  local root=$BENCH_CACHE/bookworm
  if [ ! -d "$root" ]; then
    bench_log "debootstrap --variant=minbase bookworm into $root (once; cached)"
    rm -rf --one-file-system "$root.tmp"
    debootstrap --variant=minbase bookworm "$root.tmp" http://deb.debian.org/debian >&2 || return 1
    mv "$root.tmp" "$root"
  fi
  echo "$root"
}

# Deterministic-enough filler: N files of SIZE_KB KiB from /dev/urandom (random) or base64 of it (text).
bench_gen_files() { # dir count size_kb random|text
  local i
  mkdir -p "$1"
  for i in $(seq "$2"); do
    if [ "$4" = random ]; then head -c "$(($3 * 1024))" /dev/urandom >"$1/blob-$i.bin"
    else head -c "$(($3 * 768))" /dev/urandom | base64 >"$1/text-$i.txt"; fi
  done
}

# bench_add_layer LAYOUT TARFILE COMMENT: gzip TARFILE into the layout's blobs, record diff_id/digest/size.
bench_add_layer() {
  local layout=$1 tarf=$2 diff digest size
  diff=$(sha256sum "$tarf" | cut -d' ' -f1)
  gzip -n -6 -c "$tarf" >"$layout/layer.tmp"
  digest=$(sha256sum "$layout/layer.tmp" | cut -d' ' -f1)
  size=$(stat -c %s "$layout/layer.tmp")
  mv "$layout/layer.tmp" "$layout/blobs/sha256/$digest"
  rm -f "$tarf"
  echo "$diff $digest $size $3" >>"$layout/layers.txt"
}

bench_blob() { # layout file mediatype -> "digest size", file moved into blobs
  local d s
  d=$(sha256sum "$2" | cut -d' ' -f1); s=$(stat -c %s "$2")
  mv "$2" "$1/blobs/sha256/$d"
  echo "$d $s"
}

bench_image_layout() {
  local layout root arch tarflags=(--numeric-owner --sort=name) cfg man d s
  if command -v debootstrap >/dev/null && root=$(bench_debootstrap); then
    layout=$BENCH_CACHE/oci-bookworm
  else
    bench_log "debootstrap not installed or failed: generating random-ish layers instead"
    root=; layout=$BENCH_CACHE/oci-generated
  fi
  if [ -f "$layout/index.json" ]; then echo "$layout"; return 0; fi
  bench_log "building the OCI image layout $layout (once; cached)"
  rm -rf --one-file-system "$layout" "$layout.src"
  mkdir -p "$layout/blobs/sha256" "$layout.src"
  : >"$layout/layers.txt"
  if [ -n "$root" ]; then
    # Device nodes, /proc and /sys contents are host artefacts of debootstrap, not image content.
    tar -C "$root" "${tarflags[@]}" --exclude=./usr --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      -cf "$layout/l.tar" . && bench_add_layer "$layout" "$layout/l.tar" "debootstrap: all but /usr" || return 1
    tar -C "$root" "${tarflags[@]}" --exclude=./usr/lib -cf "$layout/l.tar" ./usr &&
      bench_add_layer "$layout" "$layout/l.tar" "debootstrap: /usr but /usr/lib" || return 1
    tar -C "$root" "${tarflags[@]}" -cf "$layout/l.tar" ./usr/lib &&
      bench_add_layer "$layout" "$layout/l.tar" "debootstrap: /usr/lib" || return 1
  else
    for d in 1 2 3; do
      mkdir -p "$layout.src/$d/opt/base$d"
      bench_gen_files "$layout.src/$d/opt/base$d" 200 256 text
      bench_gen_files "$layout.src/$d/opt/base$d" 50 512 random
      tar -C "$layout.src/$d" "${tarflags[@]}" -cf "$layout/l.tar" . &&
        bench_add_layer "$layout" "$layout/l.tar" "generated base $d" || return 1
    done
  fi
  bench_gen_files "$layout.src/r/opt/bench/random" 64 1024 random
  tar -C "$layout.src/r" "${tarflags[@]}" -cf "$layout/l.tar" . &&
    bench_add_layer "$layout" "$layout/l.tar" "64 MB random" || return 1
  bench_gen_files "$layout.src/t/opt/bench/text" 64 1024 text
  tar -C "$layout.src/t" "${tarflags[@]}" -cf "$layout/l.tar" . &&
    bench_add_layer "$layout" "$layout/l.tar" "64 MB text" || return 1
  rm -rf --one-file-system "$layout.src"

  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  cfg=$(jq -n --arg arch "$arch" --rawfile layers "$layout/layers.txt" '
    ($layers | split("\n") | map(select(length > 0) | split(" "))) as $l |
    { architecture: $arch, os: "linux", created: "2026-01-01T00:00:00Z",
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: [ $l[] | "sha256:" + .[0] ] },
      history: [ $l[] | { created: "2026-01-01T00:00:00Z", created_by: (.[3:] | join(" ")) } ] }')
  printf '%s' "$cfg" >"$layout/config.tmp"
  read -r d s < <(bench_blob "$layout" "$layout/config.tmp")
  man=$(jq -n --arg cd "$d" --argjson cs "$s" --rawfile layers "$layout/layers.txt" '
    ($layers | split("\n") | map(select(length > 0) | split(" "))) as $l |
    { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: ("sha256:" + $cd), size: $cs },
      layers: [ $l[] | { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                          digest: ("sha256:" + .[1]), size: (.[2] | tonumber) } ] }')
  printf '%s' "$man" >"$layout/manifest.tmp"
  read -r d s < <(bench_blob "$layout" "$layout/manifest.tmp")
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  jq -n --arg d "$d" --argjson s "$s" '{ schemaVersion: 2, manifests: [ {
      mediaType: "application/vnd.oci.image.manifest.v1+json", digest: ("sha256:" + $d), size: $s,
      annotations: { "org.opencontainers.image.ref.name": "latest" } } ] }' >"$layout/index.tmp"
  mv "$layout/index.tmp" "$layout/index.json"
  echo "$layout"
}
