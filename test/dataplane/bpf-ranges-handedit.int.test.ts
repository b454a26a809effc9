/**
 * A VIP with sourceRanges whose VIP entry is deleted by hand (what an apply cut between the VIP delete and its
 * ranges' delete also leaves): l4f_src_ranges keeps the VIP id's entries with no VIP to name them in a family, so
 * the read-back names them by their key (codec-ranges.ts decodeRanges). Verify puts the VIP back under that id with
 * the same prefixes; the plan must find them by key and keep them (source-ranges.ts planRanges). Matched by text
 * alone, it added each key and, after the VIP entry, deleted the same key: the VIP flagged with an empty trie (every
 * source dropped) while apply and verify reported success, until the next verify. In a network namespace (root).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, createBpfDataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { decodeVip, encodeVipKey } from '../../packages/dataplane/src/bpf/codec.js';
import { bpftool, hexArgs, loaderLog } from './bpf-driver.js';

const BPFFS = `/run/l4fleet-bpf-handedit-test-${process.pid}`;
const built = bpfAvailable() === undefined;
const PORT = 96;

let lab: NetnsLab | undefined;
let node: NetnsHost;
let pin = 0;
const open: BpfDataPlane[] = [];

function driver(): BpfDataPlane {
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: node.ns,
    bpffsPath: BPFFS,
    pinName: `h${pin}`,
    flowTableSize: 4096,
    logger: loaderLog().logger,
  });
  open.push(dp);
  return dp;
}

function vip(sourceRanges: readonly string[]): VipTable {
  const bs = Array.from({ length: 3 }, (_x, i) => ({ name: `b${i}`, address: `198.18.91.${10 + i}`, port: PORT }));
  return {
    vip: { address: '198.51.100.41', port: PORT, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends: bs,
    slots: buildTable(bs, 251),
    sourceRanges,
  };
}

const pinPath = (name: string): string => `${BPFFS}/h${pin}/${name}`;

/** The keys of l4f_src_ranges, as hex, sorted. */
function trieKeys(): string[] {
  const entries = JSON.parse(bpftool(['-j', 'map', 'dump', 'pinned', pinPath('l4f_src_ranges')])) as {
    key: string[];
  }[];
  return entries.map((e) => Buffer.from(e.key.map((x) => Number(x))).toString('hex')).sort();
}

const vipKey = encodeVipKey({ family: 4, addressHex: 'c6336429', port: PORT, protocol: 'tcp' });

/** The flags of the VIP entry (undefined: no entry). */
function vipFlag(): boolean | undefined {
  const r = spawnSync(
    'bpftool',
    ['-j', 'map', 'lookup', 'pinned', pinPath('l4f_vips'), 'key', 'hex', ...hexArgs(vipKey)],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) return undefined;
  const value = Buffer.from((JSON.parse(r.stdout) as { value: string[] }).value.map((x) => Number(x)));
  return decodeVip(value, 0, 'vip').sourceRanges;
}

beforeAll(async () => {
  if (!built) return;
  lab = await createNetnsLab('bhe');
  node = await lab.host('node');
  await node.sh('ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up');
}, 60_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  pin += 1;
});

afterAll(async () => {
  await lab?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf source ranges - VIP entry deleted by hand', () => {
  test.each([[['10.0.0.0/8']], [['10.0.0.0/8', '198.19.254.0/24', '198.18.4.7/32']]])(
    'verify puts the VIP back with its flag and every trie entry of %j, in one pass; the next finds nothing',
    async (ranges) => {
      const tables = [vip(ranges)];
      const dp = driver();
      await dp.apply(tables);
      const keys = trieKeys();
      expect(keys).toHaveLength(ranges.length);
      expect(vipFlag()).toBe(true);

      bpftool(['map', 'delete', 'pinned', pinPath('l4f_vips'), 'key', 'hex', ...hexArgs(vipKey)]);
      expect(vipFlag()).toBeUndefined();
      const repaired = await dp.verify();
      expect(repaired.transactions).toBeGreaterThan(0);
      expect(vipFlag()).toBe(true);
      // The entries are those of before (the VIP got its id back): none added, none deleted.
      expect(trieKeys()).toEqual(keys);
      expect((await dp.verify()).transactions).toBe(0);
      expect(trieKeys()).toEqual(keys);
    },
    60_000,
  );
});
