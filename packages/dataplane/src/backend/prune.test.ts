import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { readRecord } from './record.js';
import { setupBackend } from './setup.js';
import { fakeHost, hostDeps as fakeHostDeps, INPUT, PRISTINE } from './setup-fake-host.test-helper.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const hostDeps = (exec: Exec) => fakeHostDeps(exec, cleanups);

describe('backend prune', () => {
  test('backend prune - an upgrade removes the previous generation of the program', async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const old = (await setupBackend(INPUT, deps)).pinDir;
    await writeFile(deps.objectPath, 'a newer object');
    const report = await setupBackend(INPUT, deps);
    expect(report.pinDir).not.toBe(old);
    expect(report.changes).toContainEqual({ what: 'program', detail: `previous generation ${old} removed` });
    expect(report.warnings).toEqual([]);
    expect([...host.paths].filter((p) => p.startsWith(old))).toEqual([]);
  });

  test("backend prune - a previous generation that cannot be removed is a warning naming it and rm's stderr, not a failure; the next setup removes it", async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const old = (await setupBackend(INPUT, deps)).pinDir;
    await writeFile(deps.objectPath, 'a newer object');
    const failing: Exec = async (argv, input) =>
      argv.join(' ') === `rm -rf ${old}`
        ? { code: 1, stdout: '', stderr: `rm: cannot remove '${old}/prog': Operation not permitted\n` }
        : host.exec(argv, input);
    const report = await setupBackend(INPUT, { ...deps, exec: failing });
    expect(report.warnings).toEqual([
      `previous generation ${old} not removed: rm -rf ${old}: exit 1: rm: cannot remove '${old}/prog': ` +
        'Operation not permitted (the next setup tries again)',
    ]);
    expect(report.changes.map((c) => c.detail)).not.toContain(`previous generation ${old} removed`);
    // The setup itself stands: the new generation is recorded, nothing rolled back.
    expect(host.lo.size).toBe(2);
    expect([...host.paths]).toContain(`${report.pinDir}/prog`);
    const record = await readRecord(report.recordPath);
    expect(record?.pinDir).toBe(report.pinDir);
    expect(record?.incomplete).toBeUndefined();
    expect([...host.paths].filter((p) => p.startsWith(old)).length).toBeGreaterThan(0);
    const again = await setupBackend(INPUT, deps);
    expect(again.warnings).toEqual([]);
    expect(again.changes).toContainEqual({ what: 'program', detail: `previous generation ${old} removed` });
    expect([...host.paths].filter((p) => p.startsWith(old))).toEqual([]);
  });

  test("backend prune - a pin base that cannot be listed is a warning naming it and ls's stderr, not a failure; the next setup looks again", async () => {
    const host = fakeHost(PRISTINE);
    const deps = await hostDeps(host.exec);
    const old = (await setupBackend(INPUT, deps)).pinDir;
    const base = old.slice(0, old.lastIndexOf('/'));
    await writeFile(deps.objectPath, 'a newer object');
    // ls exits 2 with nothing on stdout: read as an empty list, the failure would pass for "nothing to prune".
    const failing: Exec = async (argv, input) =>
      argv.join(' ') === `ls ${base}`
        ? { code: 2, stdout: '', stderr: `ls: cannot open directory '${base}': Permission denied\n` }
        : host.exec(argv, input);
    const report = await setupBackend(INPUT, { ...deps, exec: failing });
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0]).toMatch(/previous generations under .* not looked for: .*the next setup tries again/);
    expect(report.warnings).toEqual([
      `previous generations under ${base} not looked for: ls ${base}: exit 2: ls: cannot open directory ` +
        `'${base}': Permission denied (the next setup tries again)`,
    ]);
    expect(report.changes.map((c) => c.detail)).not.toContain(`previous generation ${old} removed`);
    expect([...host.paths]).toContain(`${report.pinDir}/prog`);
    expect([...host.paths].filter((p) => p.startsWith(old)).length).toBeGreaterThan(0);
    const again = await setupBackend(INPUT, deps);
    expect(again.warnings).toEqual([]);
    expect(again.changes).toContainEqual({ what: 'program', detail: `previous generation ${old} removed` });
  });
});
