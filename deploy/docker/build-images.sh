#!/usr/bin/env bash
# Builds the lab images locally (no registry exists): a Debian 12 base from debootstrap, imported into Docker,
# then the agent (with its gobgpd sidecar), router (FRR), backend (identity server) and control (etcd, NATS) images.
# Needs root, debootstrap, a running dockerd and a built workspace (npm run build). Usage: deploy/docker/build-images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=l4fleet/base:bookworm
# The mirror apt already uses (one-line or deb822 sources), so debootstrap works where apt works.
MIRROR=${MIRROR:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# The debootstrap root and the staged context are only for this run: removed however it ends (a failed build too).
rootfs=""
stage=deploy/docker/.stage
trap 'rm -rf "$stage" ${rootfs:+"$rootfs"}' EXIT

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  rootfs=$(mktemp -d /tmp/l4f-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR"
  tar -C "$rootfs" -c . | docker import - "$BASE"
fi

# Debian 12 ships Node 18; the workspace needs Node 20: the images get this machine's node binary.
rm -rf "$stage" && mkdir -p "$stage"
cp "$(command -v node)" "$stage/node"
bash scripts/stage-runtime.sh "$stage"

for image in control router backend agent; do
  docker build --network host -t "l4fleet/$image:latest" -f "deploy/docker/$image/Dockerfile" deploy/docker
done

# Each rebuild leaves the image it replaced untagged (a few hundred MB each): remove those of l4fleet's images only.
docker image prune -f --filter label=l4fleet.image >/dev/null
