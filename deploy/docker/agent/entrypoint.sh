#!/bin/sh
# bfdd first when /etc/frr/bfdd.conf is mounted (BFD towards the router, RFC 5880/5881: standalone, no zebra, its
# peer configured with local-address), then the gobgpd sidecar (no config: the agent sends StartBgp/AddPeer), then
# the agent in the foreground. Both are sidecars of the node, not of the agent (0010: an agent restart must not take
# BFD down). When the agent exits (SIGTERM drains first), the container stops and takes them with it.
set -e
if [ -f /etc/frr/bfdd.conf ]; then
  mkdir -p /run/frr && chown frr:frr /run/frr
  /usr/lib/frr/bfdd -d -u frr -g frr -f /etc/frr/bfdd.conf -i /run/frr/bfdd.pid -A 127.0.0.1
fi
gobgpd --api-hosts 127.0.0.1:50051 --pprof-disable -l info &
exec node /opt/l4fleet/packages/cli/dist/bin.js agent "$@"
