#!/bin/sh
# bfdd first when /etc/frr/bfdd.conf is mounted (BFD towards the router, RFC 5880/5881: standalone, no zebra, its
# peer configured with local-address), then the gobgpd sidecar (no config: the agent sends StartBgp/AddPeer), then
# the agent in the foreground. Both are sidecars of the node, not of the agent (0010: an agent restart must not take
# BFD down). When the agent exits (SIGTERM drains first), the container stops and takes them with it.
set -e
# Under containerlab the node's addresses come from `exec` commands run after the start (its interfaces too): with
# L4FLEET_WAIT_ADDRESSES (comma-separated) wait until each is on an interface, at most L4FLEET_WAIT_S (120) seconds.
wait_s=${L4FLEET_WAIT_S:-120}
for a in $(echo "${L4FLEET_WAIT_ADDRESSES:-}" | tr ',' ' '); do
  tries=0
  until ip -o addr show | grep -qF " $a/"; do
    tries=$((tries + 1))
    if [ "$tries" -gt $((wait_s * 5)) ]; then
      echo "l4fleet-node: address $a is on no interface after ${wait_s} s (L4FLEET_WAIT_ADDRESSES)" >&2
      exit 1
    fi
    sleep 0.2
  done
done
if [ -f /etc/frr/bfdd.conf ]; then
  mkdir -p /run/frr && chown frr:frr /run/frr
  /usr/lib/frr/bfdd -d -u frr -g frr -f /etc/frr/bfdd.conf -i /run/frr/bfdd.pid -A 127.0.0.1
fi
gobgpd --api-hosts 127.0.0.1:50051 --pprof-disable -l info &
exec node /opt/l4fleet/packages/cli/dist/bin.js agent "$@"
