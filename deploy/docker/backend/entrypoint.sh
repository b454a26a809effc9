#!/bin/sh
# Puts the VIPs of L4FLEET_VIPS (comma-separated PROTO:ADDR:PORT) on lo (DSR) and runs the identity server.
# Without arguments it listens on every TCP VIP port (wildcard, once per port) and on each UDP VIP address;
# arguments given (`--listen PROTO:ADDR:PORT ...`) replace that list. Name: L4FLEET_BACKEND_NAME, default the hostname.
set -e
name=${L4FLEET_BACKEND_NAME:-$(hostname)}
listen=""
for spec in $(echo "${L4FLEET_VIPS:-}" | tr ',' ' '); do
  addr=$(echo "$spec" | sed -E 's/^[a-z]+:\[?([^]]*)\]?:[0-9]+$/\1/')
  case "$addr" in *:*) ip -6 addr replace "$addr/128" dev lo nodad ;; *) ip addr replace "$addr/32" dev lo ;; esac
  case "$spec" in tcp:*) one="tcp:[::]:${spec##*:}" ;; *) one=$spec ;; esac
  # Each listen once: TCP VIPs sharing a port (v4 and v6 :80) share one wildcard socket; twice is EADDRINUSE.
  case "$listen " in *" --listen $one "*) ;; *) listen="$listen --listen $one" ;; esac
done
if [ $# -gt 0 ]; then
  exec node /opt/l4fleet/lab/dist/identity/main.js --name "$name" "$@"
fi
exec node /opt/l4fleet/lab/dist/identity/main.js --name "$name" $listen
