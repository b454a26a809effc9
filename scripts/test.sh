#!/usr/bin/env bash
# The whole test suite: `npm test` (as root, so the namespace, nftables and daemon tests can run).
# On a fresh Debian 12 machine it installs what it needs first: system packages, node modules, the build.
# Ends with `tests: N passed, N failed` from vitest's JSON report and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-system-deps.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
fi
[ -d node_modules ] || npm ci --no-audit --no-fund || { echo "tests: 0 passed, 1 failed"; exit 1; }
npm run --silent build >/dev/null || { npm run build; echo "tests: 0 passed, 1 failed"; exit 1; }

mkdir -p reports
report=reports/vitest.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
node scripts/test-summary.mjs "$report" || status=1
exit $status
