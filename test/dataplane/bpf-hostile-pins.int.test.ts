/**
 * The bpf loader's start over pins that are partly gone or wrong (root, one network namespace of its own): what an
 * operator's `rm`, a half-copied pins directory or a hand edit leaves. Each start must neither hand out a backend id
 * that a remembered flow or a live entry still holds (ids.ts: ids are never reused while the pins live) nor fail
 * for good:
 * - l4f_backends or l4f_vips missing (created empty by the load) while the flow caches keep their entries: the flows
 *   are cleared (they re-hash by the table, which every node shares), else a flow of a backend id handed out again
 *   lands on another backend;
 * - the same, with a start that pinned the new map and then failed (at the tc or XDP attach) in between: the next
 *   start must still clear the flows (and not take the fast path over a map the attached program does not read);
 * - a backend high-water mark set too low: ids in use at or above it are found (rescan), not handed out again;
 * - with XDP, l4f_ifaces missing: the start takes the full path and pins a new one, instead of the fast path
 *   failing on it at every start.
 * docs/design/0007-bpf-dataplane.md, "Loader and restarts".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, createBpfDataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { bpftool, hexArgs, type Loaded, loaderLog, u32le } from './bpf-driver.js';
import { countFlows, flowKey4, flowSets, writeFlow } from './flow-cache.test-helper.js';

const BPFFS = `/run/l4fleet-bpf-hostile-test-${process.pid}`;
const FLOW_TABLE_SIZE = 4096;
const built = bpfAvailable() === undefined;

let lab: NetnsLab | undefined;
let node: NetnsHost;
let pin = 0;
const open: BpfDataPlane[] = [];

/** A driver over this test's pins whose `programLoaded` log events are collected. */
function driver(
  xdp: 'off' | 'native' = 'off',
  iface = 'eth0',
): { dp: BpfDataPlane; loads: Loaded[]; events: string[] } {
  const { logger, loads, events } = loaderLog();
  const dp = createBpfDataPlane({
    interface: iface,
    netns: node.ns,
    bpffsPath: BPFFS,
    pinName: `h${pin}`,
    flowTableSize: FLOW_TABLE_SIZE,
    xdp,
    logger,
  });
  open.push(dp);
  return { dp, loads, events };
}

/** A VIP on `port` with backends b{i} at 198.18.90.{10 + i} for each i of `ids`. */
function vip(port: number, ids: readonly number[]): VipTable {
  const bs = ids.map((i) => ({ name: `b${i}`, address: `198.18.90.${10 + i}`, port }));
  return {
    vip: { address: '198.51.100.40', port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends: bs,
    slots: buildTable(bs, 4099),
  };
}

const pinPath = (name: string): string => `${BPFFS}/h${pin}/${name}`;

/** The entries of a pinned hash map. */
function entries(name: string): number {
  return (JSON.parse(bpftool(['-j', 'map', 'dump', 'pinned', pinPath(name)])) as unknown[]).length;
}

/** The flows a flow cache remembers (its non-empty ways; an array map's dump lists every set). */
const flows = (name: 'l4f_flows4' | 'l4f_flows6'): number => countFlows(pinPath(name));

/** A remembered TCP flow from 198.18.7.1:40000 to the VIP on `port` on `backend`, in its own set and way. */
function rememberFlow(port: number, backend: number): void {
  const flow: Flow = { src: '198.18.7.1', sport: 40_000, dst: '198.51.100.40', dport: port, protocol: 'tcp' };
  writeFlow(pinPath('l4f_flows4'), flowSets(FLOW_TABLE_SIZE), flowKey4(flow), {
    backend,
    prev: 0,
    referenced: false,
  });
}

/** id -> IPv4 address of the l4f_backends entries in use (family set) among ids 0 to n - 1. */
function backendIds(n: number): Map<number, string> {
  const ids = new Map<number, string>();
  for (let id = 0; id < n; id++) {
    const out = JSON.parse(
      bpftool(['-j', 'map', 'lookup', 'pinned', pinPath('l4f_backends'), 'key', 'hex', ...hexArgs(u32le(id))]),
    ) as { value: string[] };
    const v = Buffer.from(out.value.map((x) => Number(x)));
    if (v[22] !== 0) ids.set(id, [...v.subarray(0, 4)].join('.'));
  }
  return ids;
}

beforeAll(async () => {
  if (!built) return;
  lab = await createNetnsLab('bhp');
  node = await lab.host('node');
  await node.sh('ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up');
}, 60_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  // A test that failed before its driver removed the state: its pins go all the same.
  rmSync(`${BPFFS}/h${pin}`, { recursive: true, force: true });
  pin += 1;
});

afterAll(async () => {
  await lab?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf loader over hostile pins', () => {
  test.each(['l4f_backends', 'l4f_vips'])(
    '%s pin removed while the flow caches keep their entries: the flows are cleared, so none lands on an id handed out again',
    async (removed) => {
      const first = driver();
      await first.dp.apply([vip(80, [0, 1, 2])]); // ids 0-2 for b0-b2
      expect(backendIds(3).get(1)).toBe('198.18.90.11');
      rememberFlow(80, 1);
      await first.dp.close();

      // A restart over the same pins keeps the flow (the fix clears only when ids start again).
      const same = driver();
      await same.dp.apply([vip(80, [0, 1, 2])]);
      expect(flows('l4f_flows4')).toBe(1);
      expect(same.events).not.toContain('bpfFlowsCleared');
      await same.dp.close();

      rmSync(pinPath(removed));
      const next = driver();
      await next.dp.apply([vip(80, [0, 2, 3])]);
      expect(next.loads.map((l) => l.from)).toEqual(['object']);
      if (removed === 'l4f_backends') expect(backendIds(3).get(1)).toBe('198.18.90.12'); // id 1 handed out again
      // Before the fix: 1 (the flow of 198.18.90.11 went on to 198.18.90.12).
      expect(flows('l4f_flows4')).toBe(0);
      expect(flows('l4f_flows6')).toBe(0);
      await expect.poll(() => next.events).toContain('bpfFlowsCleared'); // the agent's log says so (loader.ts)
    },
    60_000,
  );

  test('l4f_backends pin removed, then a start that pins a new one and fails at the tc attach: the next start still clears the flows', async () => {
    const first = driver();
    await first.dp.apply([vip(82, [0, 1, 2])]); // ids 0-2 for b0-b2
    rememberFlow(82, 1);
    await first.dp.close();
    rmSync(pinPath('l4f_backends'));
    // Our filter swapped for one of another kind (u32) at its priority: bpf_tc_attach (kind bpf, prio 1) is refused.
    await node.sh(
      'tc filter del dev eth0 ingress && tc filter add dev eth0 ingress prio 1 protocol all u32 match u32 0 0',
    );
    try {
      const failing = driver();
      await expect(failing.dp.apply([vip(82, [0, 2, 3])])).rejects.toThrow(/attach to eth0 ingress/);
    } finally {
      await node.sh('tc filter del dev eth0 ingress');
    }
    expect(existsSync(pinPath('l4f_backends'))).toBe(true); // pinned by the failed start's load, empty
    expect(flows('l4f_flows4')).toBe(1);

    const next = driver();
    await next.dp.apply([vip(82, [0, 2, 3])]);
    expect(backendIds(3).get(1)).toBe('198.18.90.12'); // id 1 handed out again
    // Before the fix: 1 (every pin was there, so this start did not know the flows' ids had started again).
    expect(flows('l4f_flows4')).toBe(0);
    await expect.poll(() => next.events).toContain('bpfFlowsCleared');
    expect(existsSync(pinPath('l4f_flows_stale'))).toBe(false); // the record goes once the flows are cleared
  }, 60_000);

  test('l4f_backends pin removed, then a start that fails at the XDP attach elsewhere: the next start clears the flows and replaces the program (not the fast path over maps it does not read)', async () => {
    const first = driver();
    await first.dp.apply([vip(83, [0, 1, 2])]);
    const progId = first.loads[0]?.progId;
    rememberFlow(83, 1);
    await first.dp.close();
    rmSync(pinPath('l4f_backends'));
    // A bridge has no native XDP: a start there loads (pinning a new l4f_backends), attaches at tc, then fails. The
    // program on eth0 stays, and l4f_meta still names it.
    await node.sh('ip link add hb0 type bridge && ip link set hb0 up');
    try {
      const failing = driver('native', 'hb0');
      await expect(failing.dp.apply([vip(83, [0, 2, 3])])).rejects.toThrow(/native XDP|native mode/);
    } finally {
      await node.sh('ip link del hb0');
    }
    expect(flows('l4f_flows4')).toBe(1);

    const next = driver();
    await next.dp.apply([vip(83, [0, 2, 3])]);
    // Before the fix: from pins, the program left as it was (reading the l4f_backends whose pin was removed), and
    // the flow kept.
    expect(next.loads.map((l) => l.from)).toEqual(['object']);
    expect(next.loads[0]?.progId).not.toBe(progId);
    expect(flows('l4f_flows4')).toBe(0);
    await expect.poll(() => next.events).toContain('bpfFlowsCleared');
  }, 60_000);

  test('a restart over more than 4,096 backend ids reads every one back: nothing to write, no id handed out again', async () => {
    // One VIP with 4,097 backends: ids 0-4096, the last one past the dump's first batch of 4,096.
    const bs = Array.from({ length: 4097 }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${64 + (i >> 8)}.${i & 255}`,
      port: 110,
    }));
    const tables: VipTable[] = [
      {
        vip: { address: '198.51.100.41', port: 110, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 7,
        backends: bs,
        slots: buildTable(bs, 65_537),
      },
    ];
    const first = driver();
    await first.dp.apply(tables);
    await first.dp.close();
    const next = driver();
    // Before the fix (maps.c passed the batch's first id as in_batch, which the kernel reads AFTER): id 4096 was
    // left out of the dump, so the restart wrote its member again under a new id.
    expect((await next.dp.apply(tables)).transactions).toBe(0);
    expect(next.loads.map((l) => l.from)).toEqual(['pins']);
  }, 120_000);

  test("the counters of backend id 1024 (past the stats dump's first batch of 1,024) are read", async () => {
    const bs = Array.from({ length: 1025 }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${64 + (i >> 8)}.${i & 255}`,
      port: 120,
    }));
    const tables: VipTable[] = [
      {
        vip: { address: '198.51.100.42', port: 120, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 7,
        backends: bs,
        slots: buildTable(bs, 65_537),
      },
    ];
    const { dp } = driver();
    await dp.apply(tables);
    // 7 packets and 700 bytes on backend id 1024 written by hand: bpftool writes the value to every CPU's copy of
    // a per-CPU array, so the driver's sum is that times the CPUs.
    const cpus = Number(spawnSync('nproc', ['--all'], { encoding: 'utf8' }).stdout.trim());
    const counter = Buffer.alloc(16);
    counter.writeBigUInt64LE(7n, 0);
    counter.writeBigUInt64LE(700n, 8);
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_backend_stats'),
      'key',
      'hex',
      ...hexArgs(u32le(1024)),
      'value',
      'hex',
      ...hexArgs(counter),
    ]);
    const owner = JSON.parse(
      bpftool(['-j', 'map', 'lookup', 'pinned', pinPath('l4f_backends'), 'key', 'hex', ...hexArgs(u32le(1024))]),
    ) as { value: string[] };
    const address = Buffer.from(owner.value.map((x) => Number(x)))
      .subarray(0, 4)
      .join('.');
    // Before the fix (maps.c read each batch from the key after its first): id 1024's counter was left out.
    const counted = (await dp.counters()).backends.filter((b) => b.packets > 0);
    expect(counted).toEqual([{ address, packets: 7 * cpus, bytes: 700 * cpus }]);
  }, 120_000);

  test('backend high-water mark set too low by hand: ids in use above it are found, none is handed out again', async () => {
    const first = driver();
    await first.dp.apply([vip(90, [0, 1, 2, 3])]); // ids 0-3 for b0-b3
    await first.dp.close();
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_backend_hwm'),
      'key',
      'hex',
      ...hexArgs(u32le(0)),
      'value',
      'hex',
      ...hexArgs(u32le(1)),
    ]);

    const next = driver();
    await next.dp.apply([vip(90, [0, 2, 3])]);
    expect(next.loads.map((l) => l.from)).toEqual(['pins']);
    // Before the fix: id 1 = .12, id 2 = .13, id 3 = .13 (ids 1-3 left out of the dump, handed out again).
    const ids = backendIds(8);
    expect([ids.get(0), ids.get(2), ids.get(3)]).toEqual(['198.18.90.10', '198.18.90.12', '198.18.90.13']);
    expect(new Set(ids.values()).size).toBe(ids.size);
    const mark = JSON.parse(
      bpftool(['-j', 'map', 'lookup', 'pinned', pinPath('l4f_backend_hwm'), 'key', 'hex', ...hexArgs(u32le(0))]),
    ) as { value: string[] };
    expect(Buffer.from(mark.value.map((x) => Number(x))).readUInt32LE(0)).toBeGreaterThanOrEqual(4);
  }, 60_000);

  test('XDP native, l4f_ifaces pin removed: the start takes the full path and pins it again, the next start is fast', async () => {
    const tables = [vip(100, [0, 1, 2])];
    const first = driver('native');
    await first.dp.apply(tables);
    await first.dp.close();
    rmSync(pinPath('l4f_ifaces'));

    // Before the fix: every start failed ("xdp: map l4f_ifaces: not found").
    const next = driver('native');
    expect((await next.dp.apply(tables)).transactions).toBe(0);
    expect(next.loads.map((l) => l.from)).toEqual(['object']);
    expect(existsSync(pinPath('l4f_ifaces'))).toBe(true);
    expect(entries('l4f_ifaces')).toBe(1);
    await next.dp.close();

    const fast = driver('native');
    expect((await fast.dp.apply(tables)).transactions).toBe(0);
    expect(fast.loads.map((l) => l.from)).toEqual(['pins']);
  }, 60_000);
});
