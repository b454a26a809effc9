/**
 * deploy/examples is a pair scripts/install.sh installs as defaults and the operator guide calls the lab's node1: the
 * example agent.yaml's data plane must accept the example fleet, or the first apply is refused
 * (FORWARDING_UNSUPPORTED: the nftables driver does not encapsulate, the lab's default fleet forwards `gue`).
 * Each driver is built with an exec that stops at its first kernel call: reaching it means the desired state passed
 * the driver's own checks (validateDesired, and bpf's node addresses for encapsulation), which run before it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFleetText } from '@l4fleet/config';
import { createBpfDataPlane, createNftablesDataPlane, type DataPlane, type Exec } from '@l4fleet/dataplane';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { parseAgentConfigText } from '../config/load.js';
import type { AgentConfig } from '../config/types.js';
import { planTables, toDataPlaneTable } from './plan.js';

const EXAMPLES = new URL('../../../../deploy/examples/', import.meta.url);
const logger = pino({ level: 'silent' });

class KernelReached extends Error {}
const stopAtKernel: Exec = async (argv) => {
  throw new KernelReached(`the driver reached the kernel: ${argv.join(' ')}`);
};

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The example's driver, as drivers.ts builds it from the config, with every kernel call stopped. */
async function driverOf(config: AgentConfig): Promise<DataPlane> {
  const dp = config.dataplane;
  switch (dp.driver) {
    case 'nftables':
      return createNftablesDataPlane({
        interface: config.node.interface,
        logger,
        exec: stopAtKernel,
        deltaWriter: 'nft',
      });
    case 'bpf':
      dir = await mkdtemp(join(tmpdir(), 'l4fleet-examples-'));
      return createBpfDataPlane({
        interface: config.node.interface,
        nodeAddresses: [dp.encapSourceAddress, dp.encapSourceAddress6].filter((a): a is string => a !== undefined),
        logger,
        exec: stopAtKernel,
        // Not a bpffs: the driver's first step is `mount -t bpf` there, which stopAtKernel answers.
        bpffsPath: join(dir, 'bpffs'),
      });
    default:
      throw new Error(`deploy/examples/agent.yaml: driver "${dp.driver}" has no check here; add one`);
  }
}

describe('deploy examples - agent.yaml and lab-fleet.yaml', () => {
  test('the example agent.yaml parses, and its data plane accepts every VIP of the example fleet', async () => {
    const config = parseAgentConfigText(await readFile(new URL('agent.yaml', EXAMPLES), 'utf8'));
    const fleet = parseFleetText(await readFile(new URL('lab-fleet.yaml', EXAMPLES), 'utf8'), 'yaml');
    const tables = planTables({ ...fleet, hashSeed: 1 }, new Map()).map((t) => toDataPlaneTable(t.table));
    expect(tables.map((t) => t.forwarding)).toEqual(fleet.vips.map(() => 'gue'));

    const dp = await driverOf(config);
    try {
      const err = await dp.apply(tables).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `driver "${config.dataplane.driver}": ${(err as Error | undefined)?.message}`).toBeInstanceOf(
        KernelReached,
      );
    } finally {
      await dp.close();
    }
  });
});
