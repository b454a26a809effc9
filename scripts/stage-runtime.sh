#!/usr/bin/env bash
# Copies what l4fleet needs at run time from this built checkout (`npm run build`) into DEST: package.json,
# node_modules (the workspace links point into packages/, copied too), each package's dist, proto files, public files
# (the dashboard's page, read from packages/dashboard/public at start) and native binaries
# (packages/dataplane/native/bin: the nft batch helper, the bpf loader and objects when clang built them), and the
# lab's dist. No sources, source maps or build/lint/test tooling. Used by deploy/docker/build-images.sh (the images'
# /opt/l4fleet) and scripts/install.sh (a machine's /opt/l4fleet). Usage: scripts/stage-runtime.sh DEST
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: scripts/stage-runtime.sh DEST}
[ -f packages/cli/dist/bin.js ] || { echo "stage-runtime: packages/cli/dist/bin.js missing: run npm run build first" >&2; exit 1; }
mkdir -p "$dest"
tar -c --exclude='*.map' --exclude='*.tsbuildinfo' --exclude='node_modules/@biomejs' --exclude='node_modules/@turbo' \
  --exclude='node_modules/typescript' --exclude='node_modules/@esbuild' --exclude='node_modules/@rolldown' \
  --exclude='node_modules/esbuild' --exclude='node_modules/vite' --exclude='node_modules/vitest' \
  --exclude='node_modules/@vitest' --exclude='node_modules/turbo' --exclude='node_modules/.cache' package.json node_modules packages/*/package.json packages/*/dist \
  packages/*/proto $(ls -d packages/*/public 2>/dev/null) lab/package.json lab/dist \
  $(ls -d packages/dataplane/native/bin 2>/dev/null) | tar -C "$dest" -x
