#!/usr/bin/env bash
# Installs l4fleet on this machine from a built checkout (`npm ci && npm run build`; with clang installed, the build
# includes the bpf data plane): a balancer node (the agent and its gobgpd sidecar), an encapsulating backend host or
# a management host (the dashboard).
#   /opt/l4fleet            the runtime files (scripts/stage-runtime.sh) and bin/node, this machine's Node (>= 20;
#                           Debian 12's own is 18)
#   /usr/local/bin/l4fleet  the command
#   /etc/systemd/system/    l4fleet-agent.service, l4fleet-gobgpd.service, l4fleet-backend.service,
#                           l4fleet-backend-agent.service, l4fleet-dashboard.service (deploy/systemd)
#                           (without FRR's group frrvty, which the agent's unit joins for bfdd, a drop-in
#                           l4fleet-agent.service.d/no-frrvty.conf without it, and a warning)
#   /etc/l4fleet/           agent.yaml, backend.env (mode 0640), backend-agent.env (0644) and dashboard.env (0600:
#                           the dashboard's write token) from deploy/examples, only where none exists (never replaced)
# and the Debian packages they run with, only those missing (gobgpd, nftables, iproute2, frr for bfdd and vtysh,
# libbpf1, bpftool; procps for the agent unit's reload). Nothing is enabled or started: write
# /etc/l4fleet/agent.yaml, backend.env or dashboard.env first (docs/operator-guide.md sections 3 and 7,
# docs/backend-host.md), then `systemctl enable --now l4fleet-gobgpd l4fleet-agent`, `l4fleet-backend` or
# `l4fleet-dashboard`, and `l4fleet-backend-agent` on a backend whose pool has an agent check. Run again to upgrade: /opt/l4fleet is replaced whole; restart the services after.
# Usage (root): scripts/install.sh [--root DIR] [--no-apt]
#   --root DIR  install under DIR instead of / (a package or image build): no apt-get, no systemctl
#   --no-apt    do not install Debian packages
set -euo pipefail
root=/
apt=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2:?--root needs a directory}; apt=0; shift 2 ;;
    --no-apt) apt=0; shift ;;
    *) echo "install: unknown argument \"$1\" (usage: scripts/install.sh [--root DIR] [--no-apt])" >&2; exit 2 ;;
  esac
done
# A relative --root is the caller's, not the checkout's we change to next.
case "$root" in /*) ;; *) root="$PWD/$root" ;; esac
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || [ "$root" != / ] || { echo "install: needs root (or --root DIR)" >&2; exit 1; }
node_bin=$(command -v node)
major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "install: $node_bin is Node $major; l4fleet needs Node >= 20" >&2; exit 1; }

if [ "$apt" = 1 ]; then
  pkgs=(gobgpd nftables iproute2 frr libbpf1 bpftool procps)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install: apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

opt="${root%/}/opt/l4fleet"
mkdir -p "$(dirname "$opt")"
next="$opt.new.$$"
# A copy that fails (disk full, an interrupt) must not leave its staging directory behind.
trap 'rm -rf "$next"' EXIT
# Those of earlier runs killed before their trap ran (the suffix is the run's pid; a running one is left alone).
for stale in "$opt".new.*; do
  [ -d "$stale" ] || continue
  kill -0 "${stale##*.}" 2>/dev/null || rm -rf "$stale"
done
rm -rf "$next"
bash scripts/stage-runtime.sh "$next"
mkdir -p "$next/bin"
cp "$node_bin" "$next/bin/node"
rm -rf "$opt.old"
[ -e "$opt" ] && mv "$opt" "$opt.old"
mv "$next" "$opt"
rm -rf "$opt.old"

install -D -m 0755 /dev/stdin "${root%/}/usr/local/bin/l4fleet" <<'WRAPPER'
#!/bin/sh
exec /opt/l4fleet/bin/node /opt/l4fleet/packages/cli/dist/bin.js "$@"
WRAPPER
for unit in deploy/systemd/*.service; do
  install -D -m 0644 "$unit" "${root%/}/etc/systemd/system/$(basename "$unit")"
done
# The agent's unit joins FRR's group frrvty (bfdd's vty socket, for bfd.enabled); where the group does not exist
# (no frr) systemd refuses to start the unit (216/GROUP): a drop-in resets the list, removed again once frr is there.
no_frrvty="${root%/}/etc/systemd/system/l4fleet-agent.service.d/no-frrvty.conf"
if [ "$root" = / ]; then has_frrvty() { getent group frrvty >/dev/null; }; else
  has_frrvty() { grep -q '^frrvty:' "${root%/}/etc/group" 2>/dev/null; }
fi
if has_frrvty; then
  rm -f "$no_frrvty"
  rmdir "$(dirname "$no_frrvty")" 2>/dev/null || true
else
  install -D -m 0644 /dev/stdin "$no_frrvty" <<'DROPIN'
# Written by scripts/install.sh: no group frrvty here (frr not installed). bfd.enabled needs frr; install it
# (apt-get install frr) and run scripts/install.sh again, which removes this file.
[Service]
SupplementaryGroups=
DROPIN
  echo "install: no group frrvty (frr not installed): the agent runs without it ($no_frrvty); bfd.enabled needs frr" >&2
fi
# dashboard.env holds the dashboard's write token: root's alone.
for example in agent.yaml:0640 backend.env:0640 backend-agent.env:0644 dashboard.env:0600; do
  target="${root%/}/etc/l4fleet/${example%%:*}"
  [ -e "$target" ] || install -D -m "${example##*:}" "deploy/examples/${example%%:*}" "$target"
done

if [ "$root" = / ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "install: l4fleet $("$opt/bin/node" "$opt/packages/cli/dist/bin.js" --version) in $opt (Node $("$opt/bin/node" --version))"
