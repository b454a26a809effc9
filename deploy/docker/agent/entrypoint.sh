#!/bin/sh
# gobgpd sidecar first (no config: the agent sends StartBgp/AddPeer), then the agent in the foreground.
# When the agent exits (SIGTERM drains first), the container stops and takes gobgpd with it.
set -e
gobgpd --api-hosts 127.0.0.1:50051 --pprof-disable -l info &
exec node /opt/l4fleet/packages/cli/dist/bin.js agent "$@"
