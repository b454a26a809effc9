/**
 * After a setup: the program generations under the pin base other than the one attached. An upgrade loads the new
 * object as a new generation beside the old one (setup.ts step 3); once the filter refers to the new one, the old
 * pins are only memory. Housekeeping: a generation that cannot be removed (a read-only bpf file system, EBUSY, a
 * permission) does not fail the setup, whose host is as asked; it is a warning naming it and rm's stderr, and the
 * next setup, which prunes whatever is there, tries again (teardown removes the whole base).
 */
import type { Exec } from '../exec.js';
import { mustRun } from './host.js';
import type { BackendChange } from './setup.js';

export interface PruneReport {
  readonly changes: readonly BackendChange[];
  readonly warnings: readonly string[];
}

const RETRY = 'the next setup tries again';

/** Removes every generation under `base` but `keep`; never throws. */
export async function prune(exec: Exec, base: string, keep: string): Promise<PruneReport> {
  const changes: BackendChange[] = [];
  const warnings: string[] = [];
  let dirs: string[];
  try {
    dirs = (await mustRun(exec, ['ls', base])).split('\n').filter(Boolean);
  } catch (err) {
    return {
      changes,
      warnings: [`previous generations under ${base} not looked for: ${(err as Error).message} (${RETRY})`],
    };
  }
  for (const dir of dirs.map((d) => `${base}/${d}`)) {
    if (dir === keep) continue;
    try {
      await mustRun(exec, ['rm', '-rf', dir]);
      changes.push({ what: 'program', detail: `previous generation ${dir} removed` });
    } catch (err) {
      warnings.push(`previous generation ${dir} not removed: ${(err as Error).message} (${RETRY})`);
    }
  }
  return { changes, warnings };
}
