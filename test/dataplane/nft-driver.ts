/** Helpers the nftables driver's real-kernel tests share: drivers on a namespace's eth0, closed after each test. */
import { createNftablesDataPlane, type DataPlane } from '@l4fleet/dataplane';
import type { NetnsHost } from '@l4fleet/test-support/netns';
import { pino } from 'pino';

/** Data planes on `node()`'s eth0; closeAll() closes every one (and removes its tables): call it after each test. */
export function nftDrivers(node: () => NetnsHost): { open(): DataPlane; closeAll(): Promise<void> } {
  const open: DataPlane[] = [];
  const logger = pino({ level: 'silent' });
  return {
    open() {
      const dp = createNftablesDataPlane({ interface: 'eth0', netns: node().ns, logger });
      open.push(dp);
      return dp;
    },
    async closeAll() {
      for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
    },
  };
}
