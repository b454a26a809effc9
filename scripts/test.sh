#!/usr/bin/env bash
# The whole test suite: `npm test` (as root, so the namespace, nftables, daemon and Docker tests can run).
# On a fresh Debian 12 machine it installs what it needs first: system packages, node modules, the build.
# The whole suite (no arguments) also runs the Docker tests: it installs docker.io and debootstrap, starts a Docker
# engine of its own (scripts/docker-engine.sh: own socket and data root, no firewall or sysctl change on the host),
# builds the lab images (deploy/docker/build-images.sh), runs the store's etcd-in-a-container tests and the lab's
# Docker fault tests in a second vitest run (L4FLEET_TEST_RUNTIME=containers) and stops the engine at the end if it
# started it (an engine of its own that already answered, e.g. for a Docker lab, is left running).
# L4FLEET_TEST_DOCKER=0 leaves Docker out (the lab's Docker tests are then reported as skipped; the files collected
# only with L4FLEET_TEST_RUNTIME=containers are not run); =1 brings it in when only some test files are named.
# Ends with `tests: N passed, N failed` from vitest's JSON reports and exits non-zero on any failure; in that whole
# run as root, a skipped test not listed in scripts/expected-skips.txt counts as failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
fail() { echo "test: $1 failed"; echo "tests: 0 passed, 1 failed"; exit 1; }

root=0
[ "$(id -u)" -eq 0 ] && root=1
docker_wanted=${L4FLEET_TEST_DOCKER:-$([ $# -eq 0 ] && echo 1 || echo 0)}
[ $root -eq 1 ] || docker_wanted=0
CONTAINER_TESTS=(packages/store/src/etcd-containers.int.test.ts test/lab-docker-faults.int.test.ts)

if [ $root -eq 1 ]; then
  deps=()
  [ "$docker_wanted" = 1 ] && deps=(--docker)
  bash scripts/install-system-deps.sh "${deps[@]}" || fail "system packages"
fi
[ -d node_modules ] || npm ci --no-audit --no-fund || fail "npm ci"
npm run --silent build >/dev/null || { npm run build; fail "build"; }

mkdir -p reports
rm -f reports/vitest*.json reports/expected-skips.txt
excludes=()
if [ "$docker_wanted" = 1 ]; then
  started=$(date +%s)
  # Not `eval "$(...)" || fail`: eval of the empty output of a failed start succeeds, and the run would go on
  # without DOCKER_HOST (aborting with no `tests:` line) or against the machine's own engine.
  # docker-engine: begin (test/docker-engine-script.test.ts runs the lines up to the end marker)
  engine=$(bash scripts/docker-engine.sh start) || fail "docker engine"
  eval "$engine"
  [ -n "${DOCKER_HOST:-}" ] || fail "docker engine (no DOCKER_HOST)"
  # Stopped at the end only if this run started it: one that already answered is someone's (a Docker lab on it).
  if [ "${L4FLEET_DOCKER_STARTED:-0}" = 1 ]; then trap 'bash scripts/docker-engine.sh stop >/dev/null' EXIT; fi
  # docker-engine: end
  # testcontainers' reaper image cannot be pulled (no registry); the helpers remove their containers themselves.
  export TESTCONTAINERS_RYUK_DISABLED=true
  bash deploy/docker/build-images.sh >reports/docker-images.log 2>&1 || { tail -30 reports/docker-images.log; fail "lab images"; }
  echo "docker: engine up and lab images built in $(($(date +%s) - started)) s (DOCKER_HOST=$DOCKER_HOST)"
  # They run in their own vitest run below, with etcd in containers.
  if [ $# -eq 0 ]; then for f in "${CONTAINER_TESTS[@]}"; do excludes+=(--exclude "$f"); done; fi
fi

npx vitest run --reporter=default --reporter=json --outputFile.json=reports/vitest.json "${excludes[@]}" "$@"
status=$?
if [ ${#excludes[@]} -gt 0 ]; then
  L4FLEET_TEST_RUNTIME=containers npx vitest run --reporter=default --reporter=json \
    --outputFile.json=reports/vitest-containers.json "${CONTAINER_TESTS[@]}" || status=1
fi
summary=()
[ $status -ne 0 ] && summary=(--run-failed)
# The whole suite as root with Docker (CI) has every precondition: a skip there is a check that stopped holding.
# A shallow clone (or no git) cannot build the previous bpf loader the upgrade test starts from: its `shallow: ` lines.
if [ $root -eq 1 ] && [ "$docker_wanted" = 1 ] && [ $# -eq 0 ]; then
  if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = false ]; then
    grep -v '^shallow: ' scripts/expected-skips.txt
  else
    sed 's/^shallow: //' scripts/expected-skips.txt
  fi >reports/expected-skips.txt
  summary+=(--expected-skips reports/expected-skips.txt)
fi
node scripts/test-summary.mjs "${summary[@]}" reports/vitest*.json || status=1
exit $status
