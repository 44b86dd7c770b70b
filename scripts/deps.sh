#!/usr/bin/env bash
# Installs what building and testing berth needs on a Debian machine (as root). Fast when all is present.
set -euo pipefail
pkgs=(busybox-static docker-registry skopeo umoci runc libseccomp-dev pkg-config apache2-utils jq curl gcc libc6-dev
      iproute2 util-linux procps docker.io containerd hyperfine tmux nftables bzip2 xz-utils openssl systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-py for the API-client tests (PyPI `docker`).
if ! python3 -c 'import docker' 2>/dev/null; then
  python3 -m pip install -q docker >/dev/null 2>&1 || echo "deps: pip install docker failed; docker-py tests will skip"
fi
# Debian's docker-registry package starts a system registry on :5000; tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
