/**
 * The bpf data plane's flow cache against the kernel, with real traffic (root, the DSR topology in network
 * namespaces): l4f_flows4 / l4f_flows6 are arrays of 4-way sets (native/bpf/node-flows.h, docs/design/0007 "Flow
 * cache"). What the program remembers is read, and written, at the set and fingerprint flow-cache.test-helper.ts
 * computes from the 5-tuple on its own, so each test here also proves that the TypeScript jhash of the key equals the
 * program's: a flow the program wrote is found there, and one written there is followed by the program.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow, type HashMode, type Protocol } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { dsrBpfDriver } from './bpf-driver.js';
import { flowCacheKey, flowMap, flowSets, flowSlot, readFlow, readSet, writeFlow } from './flow-cache.test-helper.js';
import {
  backend4,
  backend6,
  CLIENT4,
  CLIENT6,
  clearRecorders,
  createDsrTopology,
  type DsrTopology,
  expectedBackend as expected,
  flowKey,
  installFlowRecorders,
  landings as landingsOf,
  sendFlows as sendFlowsVia,
  VIP4,
  VIP6,
} from './topology.js';

const BPFFS = `/run/l4fleet-bpf-flow-cache-test-${process.pid}`;
const SEED = 0x5eed_1234;
const BACKENDS = 3;
/** 1,024 sets: the tests' few flows never fill one. */
const FLOW_TABLE_SIZE = 4096;
const built = bpfAvailable() === undefined;

let topo: DsrTopology;
const open: BpfDataPlane[] = [];
let pins = 0;
const sendFlows = (flows: readonly Flow[]): Promise<void> => sendFlowsVia(topo, flows);
const landings = (): Promise<Map<string, number[]>> => landingsOf(topo);

/** A driver on fresh pins (backend ids are then the backends' indices), and the path of a flow's map. */
function driver(flowTableSize = FLOW_TABLE_SIZE): { dp: BpfDataPlane; mapOf: (f: Flow) => string; sets: number } {
  const dp = dsrBpfDriver(
    topo,
    { bpffsPath: BPFFS, pinName: `c${pins}`, logger: pino({ level: 'silent' }) },
    { flowTableSize },
  );
  open.push(dp);
  const dir = `${BPFFS}/c${pins}`;
  return { dp, mapOf: (f) => `${dir}/${flowMap(f)}`, sets: flowSets(flowTableSize) };
}

function vipTable(address: string, port: number, protocol: Protocol, hash: HashMode = '5-tuple'): VipTable {
  const v6 = address.includes(':');
  const backends = Array.from({ length: BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: v6 ? backend6(i) : backend4(i),
    port,
  }));
  return { vip: { address, port, protocol }, hash, seed: SEED, backends, slots: buildTable(backends, 251) };
}

const client = (vip: string): string => (vip.includes(':') ? CLIENT6 : CLIENT4);

beforeAll(async () => {
  if (!built) return;
  topo = await createDsrTopology({ backends: BACKENDS });
  await installFlowRecorders(topo.backends);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  rmSync(`${BPFFS}/c${pins}`, { recursive: true, force: true });
  pins += 1;
  if (built) await clearRecorders(topo.backends);
});

afterAll(async () => {
  await topo?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf flow cache', () => {
  test.each([
    { vip: VIP4, hash: '5-tuple' as const },
    { vip: VIP6, hash: 'source-ip' as const },
  ])(
    'a UDP flow to $vip ($hash) is remembered at the set and fingerprint computed here: the table backend, the fingerprint check in the value, referenced from its second packet',
    async ({ vip, hash }) => {
      const { dp, mapOf, sets } = driver();
      const t = vipTable(vip, 1810, 'udp', hash);
      await dp.apply([t]);
      const flow: Flow = { src: client(vip), sport: 33_001, dst: vip, dport: 1810, protocol: 'udp' };

      await sendFlows([flow]);
      expect((await landings()).get(flowKey(flow))).toEqual([expected(t, flow)]);
      // Before (a key or seed that differs from the program's): undefined, the entry sits in another set or way.
      expect(readFlow(mapOf(flow), sets, flowCacheKey(flow))).toEqual({
        backend: expected(t, flow),
        prev: 0,
        referenced: false,
        checked: true,
      });
      expect((await dp.counters()).flowTable.entries).toBe(1);

      await sendFlows([flow]);
      expect(readFlow(mapOf(flow), sets, flowCacheKey(flow))?.referenced).toBe(true);
      expect((await dp.counters()).flowTable.entries).toBe(1);
    },
    60_000,
  );

  test('a set full of flows forgets one (CLOCK): 4 flows in one set all remembered, a 5th takes the way its fingerprint picks; after a table change that moves every flow, those remembered keep their backend, the forgotten one follows the table', async () => {
    const { dp, mapOf, sets } = driver(4); // one set of 4 ways
    expect(sets).toBe(1);
    const t = vipTable(VIP4, 1820, 'udp');
    await dp.apply([t]);
    const flows = Array.from(
      { length: 5 },
      (_x, i): Flow => ({ src: CLIENT4, sport: 33_101 + i, dst: VIP4, dport: 1820, protocol: 'udp' }),
    );
    const first = flows.slice(0, 4);
    const fifth = flows[4] as Flow;
    const map = mapOf(fifth);
    const remembered = (f: Flow) => readFlow(map, sets, flowCacheKey(f));

    // One packet each: four flows in four ways (a set with an empty way forgets none).
    await sendFlows(first);
    expect((await dp.counters()).flowTable.entries).toBe(4);
    for (const f of first) expect(remembered(f), flowKey(f)).toMatchObject({ backend: expected(t, f) });
    // A second packet each: all four referenced, so the 5th finds no way to take but by its fingerprint.
    await sendFlows(first);
    for (const f of first) expect(remembered(f)?.referenced, flowKey(f)).toBe(true);

    await sendFlows([fifth]);
    expect((await dp.counters()).flowTable.entries).toBe(4);
    expect(remembered(fifth)).toMatchObject({ backend: expected(t, fifth), referenced: false });
    const { tag } = flowSlot(flowCacheKey(fifth), sets);
    const ways = readSet(map, 0);
    expect(ways.findIndex((w) => w.tag === tag)).toBe(Number((tag >> 32n) & 3n)); // way (second hash & 3)
    // Every mark cleared: the set starts a new round.
    for (const f of first) expect(remembered(f)?.referenced ?? false, flowKey(f)).toBe(false);
    const forgotten = first.filter((f) => remembered(f) === undefined);
    expect(forgotten).toHaveLength(1);
    const lost = forgotten[0] as Flow;
    const kept = flows.filter((f) => f !== lost);

    // Every slot to the next backend: the table now sends every flow elsewhere.
    const moved: VipTable = { ...t, slots: t.slots.map((b) => (b + 1) % BACKENDS) };
    await dp.apply([moved]);
    for (const f of flows) expect(expected(moved, f)).not.toBe(expected(t, f));
    await clearRecorders(topo.backends);
    // The remembered ones first: all four then referenced, so the forgotten flow's return forgets none of them
    // before its packet (a test artefact, not the point).
    await sendFlows(kept);
    await sendFlows([lost]);
    const got = await landings();
    for (const f of kept) expect(got.get(flowKey(f)), flowKey(f)).toEqual([expected(t, f)]);
    expect(got.get(flowKey(lost)), flowKey(lost)).toEqual([expected(moved, lost)]);
  }, 60_000);

  test.each([VIP4, VIP6])(
    'an entry written here for a UDP flow to %s, naming another live backend, is followed by its next packet',
    async (vip) => {
      const { dp, mapOf, sets } = driver();
      const t = vipTable(vip, 1830, 'udp');
      await dp.apply([t]);
      const flow: Flow = { src: client(vip), sport: 33_201, dst: vip, dport: 1830, protocol: 'udp' };
      const other = (expected(t, flow) + 1) % BACKENDS;
      writeFlow(mapOf(flow), sets, flowCacheKey(flow), {
        backend: other,
        prev: 0,
        referenced: false,
      });

      await sendFlows([flow]);
      // Before (a set or fingerprint other than the program's): the table's backend, and a second entry.
      expect((await landings()).get(flowKey(flow))).toEqual([other]);
      expect(readFlow(mapOf(flow), sets, flowCacheKey(flow))).toMatchObject({ backend: other, referenced: true });
      expect((await dp.counters()).flowTable.entries).toBe(1);
    },
    60_000,
  );

  test('a TCP SYN ignores such an entry for its 5-tuple (a reused port): it takes the table backend and replaces the entry', async () => {
    const { dp, mapOf, sets } = driver();
    const t = vipTable(VIP6, 1840, 'tcp');
    await dp.apply([t]);
    const flow: Flow = { src: CLIENT6, sport: 33_301, dst: VIP6, dport: 1840, protocol: 'tcp' };
    const table = expected(t, flow);
    writeFlow(mapOf(flow), sets, flowCacheKey(flow), {
      backend: (table + 1) % BACKENDS,
      prev: 0,
      referenced: true,
    });

    await sendFlows([flow]); // a SYN (the backend, with no listener, resets it)
    expect((await landings()).get(flowKey(flow))).toEqual([table]);
    expect(readFlow(mapOf(flow), sets, flowCacheKey(flow))).toMatchObject({ backend: table });
    expect((await dp.counters()).flowTable.entries).toBe(1);
  }, 60_000);
});
