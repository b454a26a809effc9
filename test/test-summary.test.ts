/** scripts/test-summary.mjs, the line CI reads: counts from vitest's JSON reports, and a failed run never reads 0 failed. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../scripts/test-summary.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'l4fleet-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function report(name: string, r: Record<string, unknown>): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify({ testResults: [], ...r }));
  return f;
}

async function summary(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('node', [SCRIPT, ...args]);
    return { code: 0, out: r.stdout.trim() };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, out: e.stdout.trim() };
  }
}

describe('scripts/test-summary.mjs', () => {
  const ok = report('ok.json', { numPassedTests: 10, numFailedTests: 0, success: true });
  const more = report('more.json', { numPassedTests: 5, numFailedTests: 0, numPendingTests: 2 });

  test('sums the reports; exit 0 when nothing failed', async () => {
    expect(await summary(ok, more)).toEqual({ code: 0, out: 'tests: 15 passed, 0 failed, 2 skipped' });
  });

  test('a failed test, and a suite that failed to load (no failed test of its own), count', async () => {
    const bad = report('bad.json', {
      numPassedTests: 3,
      numFailedTests: 1,
      testResults: [{ status: 'failed', assertionResults: [] }],
    });
    expect(await summary(bad)).toEqual({ code: 1, out: 'tests: 3 passed, 2 failed' });
  });

  test('--run-failed with no failed test (an unhandled error): counted as one failed, and said why', async () => {
    const r = await summary('--run-failed', ok);
    expect(r.code).toBe(1);
    expect(r.out.split('\n')).toEqual([
      'vitest exited non-zero with no failed test: an error outside the tests (see "Unhandled Errors" above)',
      'tests: 10 passed, 1 failed',
    ]);
  });

  test('a missing report is a failure', async () => {
    expect(await summary(join(dir, 'none.json'))).toEqual({ code: 1, out: 'tests: 0 passed, 1 failed' });
  });

  test('--expected-skips: a skipped test not listed counts as failed and is named; a listed one does not', async () => {
    const skips = join(dir, 'skips.txt');
    writeFileSync(skips, '# comment\ntest/a.int.test.ts: suite a - gre drain\n');
    const file = (name: string, title: string) => ({
      name: join(process.cwd(), name),
      status: 'passed',
      assertionResults: [{ status: 'skipped', fullName: title }],
    });
    const listed = report('listed.json', {
      numPassedTests: 4,
      numPendingTests: 1,
      testResults: [file('test/a.int.test.ts', 'suite a - gre drain a VIP')],
    });
    expect(await summary('--expected-skips', skips, listed)).toEqual({
      code: 0,
      out: 'tests: 4 passed, 0 failed, 1 skipped',
    });
    const gated = report('gated.json', {
      numPassedTests: 4,
      numPendingTests: 1,
      testResults: [file('test/b.int.test.ts', 'suite b - every node is up')],
    });
    expect(await summary(listed, '--expected-skips', skips, gated)).toEqual({
      code: 1,
      out: [
        `test skipped in a full run, counted as failed (not in ${skips}): test/b.int.test.ts: suite b - every node is up`,
        'tests: 8 passed, 1 failed, 2 skipped',
      ].join('\n'),
    });
    // Without the option (a partial or non-root run) skips are only counted.
    expect(await summary(gated)).toEqual({ code: 0, out: 'tests: 4 passed, 0 failed, 1 skipped' });
  });
});
