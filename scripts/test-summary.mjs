// Prints `tests: N passed, N failed` from vitest's JSON reports (the line CI reads; `npm test` writes
// reports/vitest.json and, with Docker, reports/vitest-containers.json) and exits 1 when a report is missing, shows a
// failure, or the reports count no test at all. `--run-failed`: a vitest run exited non-zero; when the reports show
// no failed test that is an error outside any test (vitest's "unhandled error", which its JSON report does not
// count: `success` stays true), and it is counted as one failed, so the line never says 0 failed for a failed run.
// `--expected-skips FILE` (a full root run): a skipped test not listed in FILE counts as failed and is named.
// Usage: node scripts/test-summary.mjs [--run-failed] [--expected-skips FILE] [REPORT...]
import { readdirSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

const args = process.argv.slice(2);
const runFailed = args.includes('--run-failed');
const skipsAt = args.indexOf('--expected-skips');
const skipsFile = skipsAt >= 0 ? args[skipsAt + 1] : undefined;
const paths = args.filter((a, i) => a !== '--run-failed' && (skipsAt < 0 || (i !== skipsAt && i !== skipsAt + 1)));
/** `<file>: <full name prefix>` lines of the expected-skips file. */
let expectedSkips;
if (skipsFile !== undefined) {
  try {
    expectedSkips = readFileSync(skipsFile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const at = l.indexOf(': ');
        return { file: l.slice(0, at), name: l.slice(at + 2) };
      });
  } catch (err) {
    console.error(`expected skips ${skipsFile} is missing or unreadable: ${err.message}`);
    console.log('tests: 0 passed, 1 failed');
    process.exit(1);
  }
}
if (paths.length === 0) {
  try {
    paths.push(
      ...readdirSync('reports')
        .filter((f) => /^vitest.*\.json$/.test(f))
        .map((f) => `reports/${f}`),
    );
  } catch {
    // no reports directory: reported as missing below
  }
  if (paths.length === 0) paths.push('reports/vitest.json');
}
let passed = 0;
let failed = 0;
let skipped = 0;
for (const path of paths) {
  let report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    console.error(`test report ${path} is missing or unreadable: ${err.message}`);
    console.log('tests: 0 passed, 1 failed');
    process.exit(1);
  }
  passed += report.numPassedTests ?? 0;
  // Suites that fail to load (syntax error, failing beforeAll) have no failed tests of their own: count them.
  const failedSuites = (report.testResults ?? []).filter(
    (r) => r.status === 'failed' && r.assertionResults?.every((a) => a.status !== 'failed'),
  ).length;
  failed += (report.numFailedTests ?? 0) + failedSuites;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  if (!expectedSkips) continue;
  for (const file of report.testResults ?? []) {
    const name = relative(process.cwd(), file.name ?? '');
    for (const a of file.assertionResults ?? []) {
      if (a.status === 'passed' || a.status === 'failed') continue;
      const full = a.fullName ?? a.title ?? '';
      if (expectedSkips.some((e) => e.file === name && full.startsWith(e.name))) continue;
      console.log(`test skipped in a full run, counted as failed (not in ${skipsFile}): ${name}: ${full}`);
      failed += 1;
    }
  }
}
if (runFailed && failed === 0) {
  console.log('vitest exited non-zero with no failed test: an error outside the tests (see "Unhandled Errors" above)');
  failed = 1;
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
