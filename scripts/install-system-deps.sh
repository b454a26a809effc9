#!/usr/bin/env bash
# Installs the Debian packages l4fleet's tests and lab use; idempotent, installs only what is missing.
# Needs root (apt-get). Package list: what each real component needs (see README "Requirements").
# --docker: also docker.io and debootstrap (the Docker tests and the lab's Docker runtime; `npm test` passes it).
# Debian's docker.io starts its own engine where systemd runs; the tests use scripts/docker-engine.sh's instead.
set -euo pipefail
PKGS=(
  etcd-server etcd-client
  gobgpd golang-github-osrg-gobgp-dev
  frr
  nftables iproute2 procps psmisc ethtool conntrack iputils-ping
  nats-server
  iperf3 haproxy socat ncat linux-perf
  gcc libc6-dev openssl
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool
  chromium bird2 dnsmasq-base
  prometheus
)
DOCKER_PKGS=(docker.io debootstrap)
[ "${1:-}" = --docker ] && PKGS+=("${DOCKER_PKGS[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -o DPkg::Lock::Timeout=600 -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
