#!/usr/bin/env bash
# Builds the lab images locally (no registry exists): a Debian 12 base from debootstrap, imported into Docker,
# then the agent (with its gobgpd sidecar), router (FRR), backend (identity server) and control (etcd, NATS) images.
# Needs root, debootstrap, a running dockerd and a built workspace (npm run build). Build them again after every
# git pull or edit and build: the lab's Docker runtime refuses images of another tree. Usage: deploy/docker/build-images.sh
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

# What the images are built from, as labels: the Docker runtime computes the same digests from the tree it runs from
# and refuses images whose labels differ (lab/src/runtime/image-tree.ts), so a git pull or an edit and
# `npm run build` never leaves the lab running old code unnoticed. The tree digest is taken of the staged copy itself
# (laid out like the checkout), so it is what went into the images even if the checkout is rebuilt meanwhile; the
# recipe digest of deploy/docker's Dockerfiles and entrypoints.
digests=$(node --input-type=module -e '
  const { imageTree } = await import("./lab/dist/runtime/image-tree.js");
  console.log(imageTree(process.argv[1]).tree, imageTree(process.cwd()).recipe);' "$stage")
read -r tree recipe <<<"$digests"
[ -n "$tree" ] && [ -n "$recipe" ] || { echo "build-images: no digests from lab/dist/runtime/image-tree.js" >&2; exit 1; }

for image in control router backend agent; do
  docker build --network host --label "l4fleet.tree=$tree" --label "l4fleet.recipe=$recipe" \
    -t "l4fleet/$image:latest" -f "deploy/docker/$image/Dockerfile" deploy/docker
done
echo "build-images: l4fleet/{control,router,backend,agent}:latest built from l4fleet.tree=$tree l4fleet.recipe=$recipe"

# Each rebuild leaves the image it replaced untagged (a few hundred MB each): remove those of l4fleet's images only.
docker image prune -f --filter label=l4fleet.image >/dev/null
