#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine, as root: installs what the lab needs, builds l4fleet, brings up the
# lab fleet (client -> FRR router -> 3 balancer nodes -> 4 backends, etcd and NATS) and shows the flows live.
# Extra arguments go to `lab watch` (e.g. --flows 50). Leave with Ctrl-C; `npx l4fleet lab down` removes the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
if [ "$(id -u)" -ne 0 ]; then
  echo "the lab creates network namespaces, nftables tables and daemons: run as root (sudo)" >&2
  exit 1
fi
bash scripts/install-system-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
node packages/cli/dist/bin.js lab up
exec node packages/cli/dist/bin.js lab watch "$@"
