import { existsSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { readRecord, recordPath } from './record.js';
import { setupBackend } from './setup.js';
import { fakeHost, hostDeps as fakeHostDeps, INPUT, NETNS, PRISTINE } from './setup-fake-host.test-helper.js';
import { teardownBackend } from './teardown.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const hostDeps = (exec: Exec) => fakeHostDeps(exec, cleanups);

describe('backend teardown', () => {
  // Setup on PRISTINE sets arp_ignore 0 -> 1, arp_announce 0 -> 2 and eth0's rp_filter 0 -> 2 (all's is strict).
  test.each([
    ['net/ipv4/conf/eth0/rp_filter', '2'],
    ['net/ipv4/conf/all/arp_ignore', '1'],
  ])(
    'backend teardown - a sysctl -n read of %s that fails: the other steps are done, that sysctl is named with the error and kept in the record; the next teardown finishes',
    async (key, set) => {
      const host = fakeHost(PRISTINE);
      const deps = await hostDeps(host.exec);
      await setupBackend(INPUT, deps);
      const stderr = `sysctl: cannot stat /proc/sys/${key}: Permission denied`;
      const failing: Exec = async (argv, input) =>
        argv[0] === 'sysctl' && argv[1] === '-n' && argv.includes(key)
          ? { code: 255, stdout: '', stderr: `${stderr}\n` }
          : host.exec(argv, input);
      const down = teardownBackend({ ...deps, exec: failing });
      await expect(down).rejects.toThrow(/^backend teardown did not finish: .* is kept/);
      await expect(down).rejects.toThrow(
        `left alone: sysctl ${key} cannot be read, not restored to ${PRISTINE[key as keyof typeof PRISTINE]}: ` +
          `sysctl -n ${key}: exit 255: ${stderr}`,
      );
      // Everything else was undone, and says so.
      await expect(down).rejects.toThrow('filter   eth0 ingress pref 1 removed');
      await expect(down).rejects.toThrow('vip      198.51.100.7/32 removed from lo');
      expect(host.tc).toEqual({ clsact: false, filter: undefined });
      expect([...host.paths]).toEqual([]);
      expect([...host.lo.values()]).toEqual([]);
      expect(Object.fromEntries(host.sysctls)).toEqual({ ...PRISTINE, [key]: set });
      const path = recordPath(deps.stateDir, NETNS);
      const kept = await readRecord(path);
      expect(kept?.sysctls.map((s) => s.key)).toEqual([key]);
      expect(kept?.addedVips).toEqual([]);
      expect(kept?.clsactCreated).toBe(false);
      const again = await teardownBackend(deps);
      expect(again.leftAlone).toEqual([]);
      expect(again.changes.map((c) => c.what)).toEqual(['sysctl']);
      expect(Object.fromEntries(host.sysctls)).toEqual(PRISTINE);
      expect(existsSync(deps.stateDir)).toBe(false);
    },
  );
});
