#!/usr/bin/env bash
# A Docker engine of l4fleet's own, for the Docker tests and the lab's Docker runtime (`npm test` starts and stops it).
# Everything is its own: socket, data root, exec root, pidfile, containerd namespace and bridge, so a Docker engine
# the machine already runs is left alone. It changes no firewall rule and no sysctl of the host
# (--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false): the lab wires its containers itself
# (`--network none`, then veths), and the only published ports (testcontainers' etcd) go through docker-proxy on
# the host's loopback, which needs neither NAT nor forwarding. The bridge gets a lab address (198.18.240.1/24).
#
#   scripts/docker-engine.sh start    starts it (idempotent) and prints `export DOCKER_HOST=unix://...` for eval,
#                                     and L4FLEET_DOCKER_STARTED=1 if this call started it, =0 if it already answered
#                                     (someone else's to stop: `npm test` stops only an engine it started);
#                                     one that does not answer within L4FLEET_DOCKER_START_TIMEOUT_S (60) is stopped
#                                     again, its bridge removed, and the exit is non-zero; one that exits first is
#                                     reported at once with its exit code and log; a live dockerd the pidfile names
#                                     (another start's) is waited for, never touched
#   scripts/docker-engine.sh stop     stops it (its containers with it) and removes the bridge; after a dockerd that
#                                     had to be killed (or had died) also its containers that outlived it and the
#                                     mounts it left at or below the data root (said on stderr)
#   scripts/docker-engine.sh status   exit 0 if it answers
# Needs root and dockerd (`apt-get install docker.io`: scripts/install-system-deps.sh --docker).
set -euo pipefail

RUN_DIR=${L4FLEET_DOCKER_RUN_DIR:-/run/l4fleet-docker}
DATA_ROOT=${L4FLEET_DOCKER_DATA_ROOT:-/var/lib/l4fleet-docker}
# As /proc/self/mountinfo spells it (no symlink, no trailing slash).
DATA_ROOT_REAL=$(realpath -m "$DATA_ROOT")
MOUNTINFO=/proc/self/mountinfo
SOCKET=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
LOG=$RUN_DIR/dockerd.log
BRIDGE=l4f-docker0
BRIDGE_ADDRESS=198.18.240.1/24
START_TIMEOUT_S=${L4FLEET_DOCKER_START_TIMEOUT_S:-60}
STOP_TIMEOUT_S=30
export DOCKER_HOST=unix://$SOCKET

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  if answers; then
    echo "export DOCKER_HOST=$DOCKER_HOST"
    echo "L4FLEET_DOCKER_STARTED=0"
    return 0
  fi
  # An engine of ours already runs (its pidfile names a live dockerd) but does not answer yet, say one another start
  # is bringing up: a second dockerd would fail on its pidfile, and undoing that start would unmount the live
  # engine's exec root and delete its pidfile. Wait for it instead; it is not this call's to stop.
  local other
  other=$(live_dockerd)
  if [ -n "$other" ]; then
    for _ in $(seq $((START_TIMEOUT_S * 5))); do
      if answers; then
        echo "export DOCKER_HOST=$DOCKER_HOST"
        echo "L4FLEET_DOCKER_STARTED=0"
        return 0
      fi
      [ -n "$(live_dockerd)" ] || break
      sleep 0.2
    done
    echo "docker-engine: dockerd $other (pidfile $PIDFILE) runs but does not answer on $SOCKET; left alone (stop it with: bash $0 stop); last lines of $LOG:" >&2
    tail -20 "$LOG" >&2 2>/dev/null || true
    return 1
  fi
  command -v dockerd >/dev/null || { echo "docker-engine: no dockerd (apt-get install docker.io)" >&2; return 1; }
  mkdir -p "$RUN_DIR" "$DATA_ROOT"
  made_bridge=0
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    made_bridge=1
    ip addr add "$BRIDGE_ADDRESS" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # setsid: the engine outlives the shell that started it and gets none of its terminal's signals; --wait: should
  # setsid have to fork, $! still lives exactly as long as dockerd (the loop below watches it).
  setsid --wait dockerd --host "$DOCKER_HOST" --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" \
    --pidfile "$PIDFILE" --containerd-namespace l4fleet --containerd-plugins-namespace l4fleet-plugins \
    --bridge "$BRIDGE" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false >"$LOG" 2>&1 </dev/null &
  local pid=$!
  local exited=""
  for _ in $(seq $((START_TIMEOUT_S * 5))); do
    if answers; then
      echo "export DOCKER_HOST=$DOCKER_HOST"
      echo "L4FLEET_DOCKER_STARTED=1"
      return 0
    fi
    # A dockerd that already exited will not answer: say so now, not after the whole timeout.
    if ! kill -0 "$pid" 2>/dev/null; then
      local code=0
      wait "$pid" || code=$?
      answers && {
        echo "export DOCKER_HOST=$DOCKER_HOST"
        echo "L4FLEET_DOCKER_STARTED=1"
        return 0
      }
      exited="exited with code $code"
      break
    fi
    sleep 0.2
  done
  if [ -n "$exited" ]; then
    echo "docker-engine: dockerd $exited before it answered on $SOCKET; last lines of $LOG:" >&2
  else
    echo "docker-engine: dockerd did not answer on $SOCKET within ${START_TIMEOUT_S} s; last lines of $LOG:" >&2
  fi
  tail -20 "$LOG" >&2
  # A half-started engine left running would hold the socket and data root for the next start: undo this one (only
  # this one: should another start's dockerd own the pidfile by now, its exec root's mounts are its own).
  [ -n "$exited" ] || halt "$pid"
  [ -n "$(live_dockerd)" ] || unmount_exec_root
  [ "$made_bridge" = 0 ] || ip link del "$BRIDGE" 2>/dev/null || true
  return 1
}

# The pid in PIDFILE if a dockerd runs with it (a stale pidfile, or a pid since reused by another program: nothing).
live_dockerd() {
  local p
  p=$(cat "$PIDFILE" 2>/dev/null) || return 0
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dockerd ] && echo "$p"
  return 0
}

# Stops process PID: TERM, then KILL after STOP_TIMEOUT_S.
halt() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq $((STOP_TIMEOUT_S * 5))); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$1" 2>/dev/null && kill -9 "$1" 2>/dev/null || true
  # Only its own pidfile: one naming another dockerd is that engine's.
  [ "$(cat "$PIDFILE" 2>/dev/null)" != "$1" ] || rm -f "$PIDFILE"
}

# dockerd leaves its network-namespace bind mounts under the exec root when it is stopped: remove them too.
unmount_exec_root() {
  for m in $(awk -v root="$RUN_DIR/exec/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts); do
    umount "$m" 2>/dev/null || true
  done
}

# A dockerd that did not exit cleanly (halt's KILL after STOP_TIMEOUT_S, a crash) leaves its containers running: its
# containerd goes with it, but each container's shim outlives it, and the container keeps its overlay mounted under
# the data root. They are this engine's by its own runc root and containerd socket: removed with runc, shims stopped.
reap_containers() {
  local runc_root=$RUN_DIR/exec/runtime-runc/l4fleet id p
  if [ -d "$runc_root" ] && command -v runc >/dev/null; then
    for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
      echo "docker-engine: container $id outlived dockerd: removed (runc delete --force)" >&2
      runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
  local address=$RUN_DIR/exec/containerd/containerd.sock
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" in
      *containerd-shim*" -address $address "*) kill -9 "${p#/proc/}" 2>/dev/null || true ;;
    esac
  done
}

# Whether the top mount at the data root is a bind mount of that same directory (same device, same path inside it as
# under its parent mount): dockerd's own (it makes the data root a mount point to share it), never a file system the
# machine mounts there (another device, or another directory of it).
data_root_self_bind() {
  awk -v path="$DATA_ROOT_REAL" '
    { dev[$1] = $3; root[$1] = $4; point[$1] = $5; if ($5 == path) { top = $1; parent = $2 } }
    END {
      if (top == "" || !(parent in dev) || dev[parent] != dev[top]) exit 1
      expected = root[parent] "/" substr(path, length(point[parent]) + 1)
      gsub(/\/+/, "/", expected)
      exit(expected == root[top] ? 0 : 1)
    }' "$MOUNTINFO"
}

# dockerd unmounts its data root's bind mount only on a clean exit; one killed leaves it (and a later dockerd takes
# it for the machine's own mount and never unmounts it): after dockerd is gone, the mounts below the data root
# (overlays of containers that outlived it), deepest first, then the data root's bind mount. Nothing outside it.
unmount_data_root() {
  local n=0 m
  for m in $(awk -v root="$DATA_ROOT_REAL/" 'index($5, root) == 1 { print $5 }' "$MOUNTINFO" | tac); do
    if umount "$m" 2>/dev/null; then n=$((n + 1)); fi
  done
  for _ in 1 2 3; do
    data_root_self_bind || break
    umount "$DATA_ROOT_REAL" || break
    n=$((n + 1))
  done
  rm -f "$RUN_DIR/exec/unmount-on-shutdown"
  [ "$n" -eq 0 ] || echo "docker-engine: unmounted $n mount(s) at or below $DATA_ROOT_REAL that dockerd left (it did not exit cleanly)" >&2
}

stop() {
  # Only a dockerd: a stale pidfile's pid may since belong to another program, which stop must not kill.
  local p
  p=$(live_dockerd)
  [ -z "$p" ] || halt "$p"
  rm -f "$PIDFILE"
  # What a dockerd that did not exit cleanly left, only once none of ours runs (its containers and mounts are live).
  if [ -z "$(live_dockerd)" ]; then
    reap_containers
    unmount_data_root
  fi
  unmount_exec_root
  ip link del "$BRIDGE" 2>/dev/null || true
  echo "docker-engine: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
