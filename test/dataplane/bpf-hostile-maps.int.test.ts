/**
 * The bpf driver over one pinned map holding a value it never writes (root, one network namespace of its own): a key
 * with a pad byte set in l4f_vip_addrs, two backend ids for one VIP and address in l4f_backends (a hand edit, a
 * loader of another build). Such a read-back is refused at every apply, so the map must be made anew; before, every
 * pin went (the program detached, every map and every remembered flow lost). Now only that map is made anew
 * (src/bpf/repair.ts), the program is replaced over it, and the flow caches are emptied only when backend or VIP ids
 * were lost (native/bpf-loader/stale.c). A pin of another layout than the object's (which libbpf refused at every
 * start) is made anew by the loader's start alike (native/bpf-loader/layout.c).
 * docs/design/0007-bpf-dataplane.md, "Loader and restarts".
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, createBpfDataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { bpftool, hexArgs, type Loaded, loaderLog, u32le } from './bpf-driver.js';
import { countFlows, flowKey4, flowSets, writeFlow } from './flow-cache.test-helper.js';

const BPFFS = `/run/l4fleet-bpf-hostile-maps-${process.pid}`;
const FLOW_TABLE_SIZE = 4096;
const built = bpfAvailable() === undefined;
let lab: NetnsLab | undefined;
let node: NetnsHost;
let pin = 0;
const open: BpfDataPlane[] = [];

function driver(): { dp: BpfDataPlane; loads: Loaded[]; events: string[] } {
  const { logger, loads, events } = loaderLog();
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: node.ns,
    bpffsPath: BPFFS,
    pinName: `m${pin}`,
    flowTableSize: FLOW_TABLE_SIZE,
    logger,
  });
  open.push(dp);
  return { dp, loads, events };
}

/** A VIP on `port` with `n` backends at 198.18.92.{10 + i} (ids 0 to n - 1 on a first apply). */
function vip(port: number, n = 3): VipTable {
  const bs = Array.from({ length: n }, (_x, i) => ({ name: `b${i}`, address: `198.18.92.${10 + i}`, port }));
  return {
    vip: { address: '198.51.100.43', port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends: bs,
    slots: buildTable(bs, 4099),
  };
}

const pinPath = (name: string): string => `${BPFFS}/m${pin}/${name}`;
const mapId = (name: string): number =>
  (JSON.parse(bpftool(['-j', 'map', 'show', 'pinned', pinPath(name)])) as { id: number }).id;
/** The entries of a pinned hash map. */
const entries = (name: string): number =>
  (JSON.parse(bpftool(['-j', 'map', 'dump', 'pinned', pinPath(name)])) as unknown[]).length;
/** The flows a flow cache remembers (its non-empty ways; an array map's dump lists every set). */
const flows = (name: 'l4f_flows4' | 'l4f_flows6'): number => countFlows(pinPath(name));
const ids = (): Record<string, number> =>
  Object.fromEntries(['l4f_vips', 'l4f_vip_addrs', 'l4f_backends', 'l4f_flows4'].map((m) => [m, mapId(m)]));

/** A remembered TCP flow from 198.18.7.1:40000 to the VIP on `port` on `backend`, in its own set and way. */
function rememberFlow(port: number, backend: number): void {
  const flow: Flow = { src: '198.18.7.1', sport: 40_000, dst: '198.51.100.43', dport: port, protocol: 'tcp' };
  writeFlow(pinPath('l4f_flows4'), flowSets(FLOW_TABLE_SIZE), flowKey4(flow), {
    backend,
    prev: 0,
    referenced: false,
  });
}

beforeAll(async () => {
  if (!built) return;
  lab = await createNetnsLab('bhm');
  node = await lab.host('node');
  await node.sh('ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up');
}, 60_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  rmSync(`${BPFFS}/m${pin}`, { recursive: true, force: true });
  pin += 1;
});

afterAll(async () => {
  await lab?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf driver, one pinned map with a value it never writes', () => {
  test('l4f_vip_addrs key with its pad set: that map alone is made anew; the other maps and the remembered flow stay', async () => {
    const first = driver();
    await first.dp.apply([vip(80)]);
    rememberFlow(80, 1);
    await first.dp.close();
    const before = ids();
    const key = Buffer.alloc(20); // struct l4f_addr_key: addr[16], family, pad[3]
    Buffer.from([198, 51, 100, 99]).copy(key, 0);
    key[16] = 4;
    key[17] = 1;
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_vip_addrs'),
      'key',
      'hex',
      ...hexArgs(key),
      'value',
      'hex',
      ...hexArgs(u32le(1)),
    ]);

    const next = driver();
    await next.dp.apply([vip(80)]);
    // Before: bpfStateWiped, every map new (l4f_vips, l4f_backends, l4f_flows4 of other ids) and the flow gone.
    expect(next.events).toContain('bpfMapRebuilt');
    expect(next.events).not.toContain('bpfStateWiped');
    const after = ids();
    expect([after.l4f_vips, after.l4f_backends, after.l4f_flows4]).toEqual([
      before.l4f_vips,
      before.l4f_backends,
      before.l4f_flows4,
    ]);
    expect(after.l4f_vip_addrs).not.toBe(before.l4f_vip_addrs);
    expect(entries('l4f_vip_addrs')).toBe(1); // the VIP's address, written again; the bad key gone
    expect(flows('l4f_flows4')).toBe(1);
    expect(next.events).not.toContain('bpfFlowsCleared');
    expect(next.loads.map((l) => `${l.attach} ${l.from}`)).toEqual(['unchanged pins', 'attached object']);
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('l4f_backends with two ids for one VIP and address: that map alone is made anew, the flows over its ids cleared', async () => {
    const first = driver();
    await first.dp.apply([vip(81, 4)]); // backend ids 0-3
    rememberFlow(81, 1);
    await first.dp.close();
    const before = ids();
    const one = JSON.parse(
      bpftool(['-j', 'map', 'lookup', 'pinned', pinPath('l4f_backends'), 'key', 'hex', ...hexArgs(u32le(1))]),
    ) as { value: string[] };
    const copy = Buffer.from(one.value.map((x) => Number(x)));
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_backends'),
      'key',
      'hex',
      ...hexArgs(u32le(3)),
      'value',
      'hex',
      ...hexArgs(copy),
    ]);

    const next = driver();
    await next.dp.apply([vip(81, 4)]);
    // Before: bpfStateWiped, l4f_vips new too.
    expect(next.events).toContain('bpfMapRebuilt');
    expect(next.events).not.toContain('bpfStateWiped');
    const after = ids();
    expect([after.l4f_vips, after.l4f_vip_addrs, after.l4f_flows4]).toEqual([
      before.l4f_vips,
      before.l4f_vip_addrs,
      before.l4f_flows4,
    ]);
    expect(after.l4f_backends).not.toBe(before.l4f_backends);
    expect(flows('l4f_flows4')).toBe(0); // ids started again: the flow of id 1 would follow it elsewhere
    await expect.poll(() => next.events).toContain('bpfFlowsCleared');
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);

  /** `name`'s pin replaced by an empty map of another layout (bpftool map create ...), as a hand or a build could. */
  function otherLayout(name: string, def: readonly string[]): void {
    rmSync(pinPath(name));
    bpftool(['map', 'create', pinPath(name), ...def, 'name', name]);
  }
  const valueSize = (name: string): number =>
    (JSON.parse(bpftool(['-j', 'map', 'show', 'pinned', pinPath(name)])) as { bytes_value: number }).bytes_value;

  test('l4f_vip_addrs pinned with another layout: the start makes that map anew (instead of failing at every start); the other maps and the flow stay', async () => {
    const first = driver();
    await first.dp.apply([vip(82)]);
    rememberFlow(82, 1);
    await first.dp.close();
    const before = ids();
    otherLayout('l4f_vip_addrs', ['type', 'hash', 'key', '20', 'value', '8', 'entries', '4096']);

    const next = driver();
    // Before: refused at every start (libbpf: couldn't reuse pinned map ... parameter mismatch).
    await next.dp.apply([vip(82)]);
    await expect.poll(() => next.events).toContain('bpfMapRebuilt');
    const after = ids();
    expect([after.l4f_vips, after.l4f_backends, after.l4f_flows4]).toEqual([
      before.l4f_vips,
      before.l4f_backends,
      before.l4f_flows4,
    ]);
    expect(valueSize('l4f_vip_addrs')).toBe(4);
    expect(entries('l4f_vip_addrs')).toBe(1);
    expect(flows('l4f_flows4')).toBe(1);
    expect(next.events).not.toContain('bpfFlowsCleared');
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('l4f_backends pinned with another layout: made anew, the flows over its ids cleared, l4f_vips kept', async () => {
    const first = driver();
    await first.dp.apply([vip(83)]);
    rememberFlow(83, 1);
    await first.dp.close();
    const before = ids();
    otherLayout('l4f_backends', ['type', 'array', 'key', '4', 'value', '32', 'entries', '65536']);

    const next = driver();
    await next.dp.apply([vip(83)]); // before: refused at every start
    await expect.poll(() => next.events).toContain('bpfMapRebuilt');
    await expect.poll(() => next.events).toContain('bpfFlowsCleared');
    expect(mapId('l4f_vips')).toBe(before.l4f_vips);
    expect(valueSize('l4f_backends')).not.toBe(32);
    expect(flows('l4f_flows4')).toBe(0);
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('an upgrade from the flow LRU: l4f_flows4 / l4f_flows6 pinned as the LRU hash of earlier builds are made anew as flow caches, the other maps kept, and the flows are remembered again', async () => {
    const first = driver();
    await first.dp.apply([vip(84)]);
    await first.dp.close();
    const before = ids();
    // The earlier builds' definition: LRU hash of struct l4f_flow4 (16 bytes) / l4f_flow6 (40) -> {backend, hash,
    // prev} (12), flowTableSize entries.
    otherLayout('l4f_flows4', ['type', 'lru_hash', 'key', '16', 'value', '12', 'entries', '4096']);
    otherLayout('l4f_flows6', ['type', 'lru_hash', 'key', '40', 'value', '12', 'entries', '4096']);

    const next = driver();
    // Before (the fast path checked only the small maps' layout): the restart opened the LRU pins as they were, no
    // map made anew, while the attached program went on with the caches it was loaded with.
    await next.dp.apply([vip(84)]);
    await expect.poll(() => next.events).toContain('bpfMapRebuilt');
    const after = ids();
    expect([after.l4f_vips, after.l4f_backends]).toEqual([before.l4f_vips, before.l4f_backends]);
    for (const m of ['l4f_flows4', 'l4f_flows6']) {
      const show = JSON.parse(bpftool(['-j', 'map', 'show', 'pinned', pinPath(m)])) as { type: string };
      expect(show.type, m).toBe('array');
      expect(valueSize(m), m).toBe(64);
    }
    rememberFlow(84, 1);
    expect(flows('l4f_flows4')).toBe(1);
    expect((await next.dp.counters()).flowTable.entries).toBe(1);
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);
});
