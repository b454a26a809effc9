#!/usr/bin/env bash
# Installs the Debian packages l4fleet's tests and lab use; idempotent, installs only what is missing.
# Needs root (apt-get). Package list: what each real component needs (see README "Requirements").
# --docker: also docker.io and debootstrap (the Docker tests and the lab's Docker runtime; `npm test` passes it).
# Debian's docker.io postinst enables and starts the machine's own engine (docker.service: ip_forward on, the
# FORWARD policy DROP, NAT rules); the tests use scripts/docker-engine.sh's, which changes none of that. So docker.io
# is installed with service starts refused (a policy-rc.d answering 101, removed after; one the machine has is left
# as it is) and docker.service and docker.socket are disabled after: `systemctl enable --now docker` undoes it.
# L4FLEET_POLICY_RC_D: that file's path (default /usr/sbin/policy-rc.d).
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
docker_new=0
for p in "${missing[@]}"; do [ "$p" = docker.io ] && docker_new=1; done
POLICY_RC_D=${L4FLEET_POLICY_RC_D:-/usr/sbin/policy-rc.d}
if [ $docker_new = 1 ] && [ ! -e "$POLICY_RC_D" ]; then
  # 101: "action not allowed" (invoke-rc.d and deb-systemd-invoke ask it before starting a package's service).
  trap 'rm -f "$POLICY_RC_D"' EXIT
  # Interrupted: exit (so the EXIT trap runs) rather than leave every service start on this machine refused.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  printf '#!/bin/sh\n# l4fleet scripts/install-system-deps.sh: no service starts while it installs docker.io\nexit 101\n' \
    >"$POLICY_RC_D"
  chmod 755 "$POLICY_RC_D"
fi
apt-get update -o DPkg::Lock::Timeout=600 -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
if [ $docker_new = 1 ] && command -v systemctl >/dev/null; then
  # Enabled by the postinst, they would start the machine's engine at the next boot (or the socket's first use).
  systemctl disable docker.service docker.socket >/dev/null 2>&1 ||
    echo "system packages: could not disable docker.service/docker.socket (systemctl disable failed)" >&2
  # Where systemd runs and a start got past the policy (a policy-rc.d of the machine's own allowing it): stop it.
  if [ -d /run/systemd/system ]; then systemctl stop docker.service docker.socket >/dev/null 2>&1 || true; fi
fi
