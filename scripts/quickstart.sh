#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine, as root: installs what the lab needs, builds l4fleet, brings up the
# lab fleet (client -> FRR router -> 3 balancer nodes -> 4 backends, etcd and NATS) and shows the flows live.
# Extra arguments go to `lab watch` (e.g. --flows 50; `--duration 20 --check` ends after 20 s and exits 1 if any flow
# broke, none is open, a flow went more than --max-pause-ms (default 5,000 ms) without an answer, or the flow worker
# died). Leave with Ctrl-C; the lab stays up until `npx l4fleet lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
if [ "$(id -u)" -ne 0 ]; then
  echo "the lab creates network namespaces, nftables tables and daemons: run as root (sudo bash scripts/quickstart.sh)" >&2
  exit 1
fi
bash scripts/install-system-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
# The installed command, as the README's walk-through uses it (npm links it at `npm ci`).
npx --no-install l4fleet lab up --no-install
exec npx --no-install l4fleet lab watch "$@"
