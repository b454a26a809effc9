#!/bin/sh
set -e
name=${L4FLEET_BACKEND_NAME:-$(hostname)}
listen=""
for spec in $(echo "${L4FLEET_VIPS:-}" | tr ',' ' '); do
  addr=$(echo "$spec" | sed -E 's/^[a-z]+:\[?([^]]*)\]?:[0-9]+$/\1/')
  case "$addr" in *:*) ip -6 addr replace "$addr/128" dev lo nodad ;; *) ip addr replace "$addr/32" dev lo ;; esac
  case "$spec" in tcp:*) port=${spec##*:}; listen="$listen --listen tcp:[::]:$port" ;; *) listen="$listen --listen $spec" ;; esac
done
exec node /opt/l4fleet/lab/dist/identity/main.js --name "$name" $listen
