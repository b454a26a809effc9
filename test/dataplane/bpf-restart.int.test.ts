/**
 * The bpf loader's restart paths against the kernel (root), in one network namespace of its own:
 * - the fast path: when the pinned l4f_meta names this object file (its hash) and the program still attached,
 *   the loader opens the pins by path and never parses the object (start reply "... pins");
 * - the full path otherwise (another object hash in l4f_meta, the program detached): libbpf opens the object
 *   ("... object"), and the start after it is fast again;
 * - the backends' high-water mark (l4f_backend_hwm, the loader's own pin): a restart reads l4f_backends only
 *   below it, and pins without one (an older loader's) are scanned once and get one.
 * - the seat (native/bpf-loader/ahead.c): a fresh table put at the next new VIP's table index ahead of time, so
 *   that VIP's create only fills it; a restart adopts it.
 * Each restart must rebuild the driver's exact model: nothing sent for the same state, one request for a
 * one-slot delta. docs/design/0007-bpf-dataplane.md, "Loader and restarts".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, createBpfDataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { encodeVipKey } from '../../packages/dataplane/src/bpf/codec.js';
import { bpftool, type Loaded, loaderLog } from './bpf-driver.js';

const BPFFS = `/run/l4fleet-bpf-restart-test-${process.pid}`;
const FLOW_TABLE_SIZE = 4096;
const built = bpfAvailable() === undefined;

let lab: NetnsLab | undefined;
let node: NetnsHost;
let pin = 0;
const open: BpfDataPlane[] = [];

/** A driver over this test's pins whose `programLoaded` log events are collected. */
function driver(iface = 'eth0'): { dp: BpfDataPlane; loads: Loaded[] } {
  const { logger, loads } = loaderLog();
  const dp = createBpfDataPlane({
    interface: iface,
    netns: node.ns,
    bpffsPath: BPFFS,
    pinName: `r${pin}`,
    flowTableSize: FLOW_TABLE_SIZE,
    logger,
  });
  open.push(dp);
  return { dp, loads };
}

function vip(port: number, backends: number, firstBackend = 0, slots = 4099): VipTable {
  const bs = Array.from({ length: backends }, (_x, i) => ({
    name: `b${firstBackend + i}`,
    address: `198.18.90.${10 + firstBackend + i}`,
    port,
  }));
  return {
    vip: { address: '198.51.100.40', port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends: bs,
    slots: buildTable(bs, slots),
  };
}

const pinPath = (name: string): string => `${BPFFS}/r${pin}/${name}`;

/** The u32 at key 0 of a pinned one-entry array. */
function pinnedU32(name: string): number {
  const out = JSON.parse(
    bpftool(['-j', 'map', 'lookup', 'pinned', pinPath(name), 'key', 'hex', '00', '00', '00', '00']),
  );
  const bytes = (out.value as string[]).map((x) => Number(x));
  return Buffer.from(bytes).readUInt32LE(0);
}

/** The id of the table map at `index` of l4f_tables, or undefined when the index is empty. */
function tableMapId(index: number): number | undefined {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  const r = spawnSync(
    'bpftool',
    ['-j', 'map', 'lookup', 'pinned', pinPath('l4f_tables'), 'key', ...[...key].map(String)],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) return undefined;
  const v = (JSON.parse(r.stdout) as { value: number | string[] }).value;
  return typeof v === 'number' ? v : Buffer.from(v.map((x) => Number(x))).readUInt32LE(0);
}

/** Closes a driver (pins and program stay) and applies `tables` with a new one: the agent restarting. */
async function restart(
  dp: BpfDataPlane,
  tables: VipTable[],
): Promise<{ dp: BpfDataPlane; loaded: Loaded; transactions: number }> {
  await dp.close();
  const next = driver();
  const r = await next.dp.apply(tables);
  expect(next.loads).toHaveLength(1);
  return { dp: next.dp, loaded: next.loads[0] as Loaded, transactions: r.transactions };
}

beforeAll(async () => {
  if (!built) return;
  lab = await createNetnsLab('brs');
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

describe.skipIf(!built)('bpf loader restart', () => {
  test('fast path - the same object and program: the pins are opened without parsing the object, the model is exact', async () => {
    const tables = [vip(80, 3), vip(81, 4, 3)];
    const first = driver();
    await first.dp.apply(tables);
    expect(first.loads).toEqual([{ attach: 'attached', progId: expect.any(Number), from: 'object' }]);
    const progId = (first.loads[0] as Loaded).progId;

    const again = await restart(first.dp, tables);
    expect(again.loaded).toEqual({ attach: 'unchanged', progId, from: 'pins' });
    expect(again.transactions).toBe(0);
    const t0 = tables[0] as VipTable;
    const slots = Int32Array.from(t0.slots);
    slots[11] = ((slots[11] as number) + 1) % 3;
    const delta = await again.dp.apply([{ ...t0, slots }, tables[1] as VipTable]);
    expect([delta.slotsChanged, delta.transactions]).toEqual([1, 1]);
    // removeState over a fast-path start (no object open): every pin goes, the loader's own mark too.
    await again.dp.close({ removeState: true });
    expect(existsSync(`${BPFFS}/r${pin}`)).toBe(false);
  }, 60_000);

  test('full path - l4f_meta naming another object hash, then a detached program, make the loader open the object', async () => {
    const tables = [vip(90, 3)];
    const first = driver();
    await first.dp.apply(tables);
    const progId = (first.loads[0] as Loaded).progId;
    await first.dp.close();

    // l4f_meta: { u64 object_hash, u32 prog_id, u32 flows } (node-maps.h) with a hash no object has.
    const meta = Buffer.alloc(16);
    meta.writeBigUInt64LE(1n, 0);
    meta.writeUInt32LE(progId, 8);
    meta.writeUInt32LE(FLOW_TABLE_SIZE, 12);
    const hex = [...meta].map((b) => b.toString(16).padStart(2, '0'));
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_meta'),
      'key',
      'hex',
      '00',
      '00',
      '00',
      '00',
      'value',
      'hex',
      ...hex,
    ]);
    const other = driver();
    const r = await other.dp.apply(tables);
    // The same instructions (tag): loaded, compared, left attached.
    expect(other.loads).toEqual([{ attach: 'unchanged', progId, from: 'object' }]);
    expect(r.transactions).toBe(0);
    // The full path wrote the meta again: the next start is fast.
    const fast = await restart(other.dp, tables);
    expect(fast.loaded).toEqual({ attach: 'unchanged', progId, from: 'pins' });

    await fast.dp.close();
    await node.run(['tc', 'filter', 'del', 'dev', 'eth0', 'ingress']);
    const detached = driver();
    const d = await detached.dp.apply(tables);
    expect(detached.loads).toEqual([{ attach: 'attached', progId: expect.any(Number), from: 'object' }]);
    expect((detached.loads[0] as Loaded).progId).not.toBe(progId);
    expect(d.transactions).toBe(0);
  }, 60_000);

  test('verify - tc qdisc del (the program detached) and a VIP entry deleted by hand: verify repairs both, and finds nothing after', async () => {
    const tables = [vip(95, 3, 0, 65_537)];
    const d = driver();
    await d.dp.apply(tables);
    // Nothing to repair: an attach check, a read-back of the maps, nothing sent. Its cost, for the README.
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await d.dp.verify()).transactions).toBe(0);
      runs.push(Math.round(performance.now() - started));
    }
    console.log(`bpf verify, nothing to repair, 1 VIP of 65,537 slots: ${runs.join(', ')} ms`);

    await node.run(['tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact']);
    // The program no packet reaches is not reported as counting (the next call starts a loader that attaches it).
    await expect(d.dp.counters()).rejects.toMatchObject({ code: 'BPF_FAILED' });
    const started = performance.now();
    const reattached = await d.dp.verify();
    console.log(`bpf verify, program detached: ${Math.round(performance.now() - started)} ms`);
    expect(reattached.transactions).toBeGreaterThan(0);
    expect((await node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout).toContain('l4f_node');
    expect((await d.dp.verify()).transactions).toBe(0);

    const key = encodeVipKey({ family: 4, addressHex: 'c6336428', port: 95, protocol: 'tcp' });
    bpftool(['map', 'delete', 'pinned', pinPath('l4f_vips'), 'key', 'hex', ...[...key].map((b) => b.toString(16))]);
    // The driver's model still holds the VIP: an apply of the same state sends nothing.
    expect((await d.dp.apply(tables)).transactions).toBe(0);
    const repaired = await d.dp.verify();
    expect(repaired.transactions).toBeGreaterThan(0);
    expect(repaired.vips.map((v) => v.action)).not.toContain('unchanged');
    expect((await d.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('backend high-water mark - raised before backends are written; pins without one are scanned once and get one', async () => {
    const first = driver();
    await first.dp.apply([vip(100, 3)]);
    expect(pinnedU32('l4f_backend_hwm')).toBe(3);
    // A second VIP: ids 3-7; the first VIP's backends stay below.
    const tables = [vip(100, 3), vip(101, 5, 3)];
    await first.dp.apply(tables);
    expect(pinnedU32('l4f_backend_hwm')).toBe(8);

    // An older loader's pins: no mark. The restart scans l4f_backends, finds all 8, pins the mark.
    await first.dp.close();
    rmSync(pinPath('l4f_backend_hwm'));
    const d = driver();
    const r = await d.dp.apply(tables);
    expect(d.loads[0]?.from).toBe('pins');
    expect(r.transactions).toBe(0);
    expect(pinnedU32('l4f_backend_hwm')).toBe(8);
    // And with the mark: the same model (a backend below it dropped by the dump would be written again).
    const again = await restart(d.dp, tables);
    expect(again.transactions).toBe(0);
  }, 60_000);

  test("seat - the next new VIP's table is put in l4f_tables ahead; its create fills that map; a restart adopts it", async () => {
    const first = driver();
    await first.dp.apply([vip(110, 3)]); // VIP id 0: table index 0; the seat goes to index 2
    await first.dp.settled();
    const seat2 = tableMapId(2);
    expect(seat2).toBeDefined();
    expect(pinnedU32('l4f_table_seat')).toBe(3); // index + 1
    const tables = [vip(110, 3), vip(111, 4, 3)];
    await first.dp.apply(tables); // VIP id 1: its table is the seat's map, filled in place
    expect(tableMapId(2)).toBe(seat2);
    await first.dp.settled();
    const seat4 = tableMapId(4);
    expect(seat4).toBeDefined();
    expect(pinnedU32('l4f_table_seat')).toBe(5);

    // A restart reads the filled seat back exactly (nothing to send) and adopts the seat at index 4.
    const again = await restart(first.dp, tables);
    expect(again.loaded.from).toBe('pins');
    expect(again.transactions).toBe(0);
    await again.dp.settled();
    expect(tableMapId(4)).toBe(seat4);
    const three = [...tables, vip(112, 2, 7)];
    expect((await again.dp.apply(three)).transactions).toBeGreaterThan(0);
    expect(tableMapId(4)).toBe(seat4);
    await again.dp.settled();
    const seat6 = tableMapId(6);
    expect(seat6).toBeDefined();

    // A new VIP of another size replaces the seat's map; every table reads back exactly after a restart.
    const four = [...three, vip(113, 2, 9, 251)];
    await again.dp.apply(four);
    expect(tableMapId(6)).not.toBe(seat6);
    const last = await restart(again.dp, four);
    expect(last.transactions).toBe(0);
  }, 60_000);

  test('seat - a registry naming a map that is no longer there (another loader replaced it) adopts nothing and takes nothing', async () => {
    const first = driver();
    const tables = [vip(130, 3)];
    await first.dp.apply(tables);
    await first.dp.settled();
    expect(pinnedU32('l4f_table_seat')).toBe(3);
    await first.dp.close();
    // What a loader without seats would leave: another table at the seat's index (here: made with bpftool).
    const foreign = `${BPFFS}/foreign${pin}`;
    try {
      bpftool([
        'map',
        'create',
        foreign,
        'type',
        'array',
        'key',
        '4',
        'value',
        '8',
        'entries',
        '4099',
        'name',
        'foreign',
        'flags',
        String(0x1400),
      ]);
      bpftool([
        'map',
        'update',
        'pinned',
        pinPath('l4f_tables'),
        'key',
        '2',
        '0',
        '0',
        '0',
        'value',
        'pinned',
        foreign,
      ]);
      const foreignId = tableMapId(2);
      const next = driver();
      expect((await next.dp.apply(tables)).transactions).toBe(0);
      await next.dp.settled();
      expect(pinnedU32('l4f_table_seat')).toBe(0);
      expect(tableMapId(2)).toBe(foreignId);
    } finally {
      rmSync(foreign, { force: true });
    }
  }, 60_000);

  test('sweep - retired tables leave l4f_tables after the retire delay, a few per sweep, none by an apply', async () => {
    const d = driver();
    const six = Array.from({ length: 6 }, (_x, i) => ({
      ...vip(120, 2, 2 * i),
      vip: { address: `198.51.100.${50 + i}`, port: 120, protocol: 'tcp' as const },
    }));
    await d.dp.apply(six); // VIP ids 0-5: tables at 0, 2, ..., 10
    await d.dp.settled();
    expect([0, 2, 4, 6, 8, 10].map(tableMapId).every((id) => id !== undefined)).toBe(true);
    const removed = await d.dp.apply([six[0] as VipTable]);
    expect(removed.transactions).toBeGreaterThan(0);
    // Retired, not deleted yet: a program run may still hold a removed VIP's entry for RETIRE_AFTER_MS.
    expect(tableMapId(10)).toBeDefined();
    const deadline = Date.now() + 10_000;
    let left = [4, 6, 8, 10].filter((t) => tableMapId(t) !== undefined);
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = left.filter((t) => tableMapId(t) !== undefined);
    }
    expect(left).toEqual([]);
    expect(tableMapId(0)).toBeDefined();
    // Index 2 (the lowest free VIP id's) was deleted too: the next VIP's seat could be made there.
    await d.dp.settled();
    expect(pinnedU32('l4f_table_seat')).toBe(3);
    // Nothing left for an apply or a restart to do.
    expect((await d.dp.apply([six[0] as VipTable])).transactions).toBe(0);
    expect((await restart(d.dp, [six[0] as VipTable])).transactions).toBe(0);
  }, 60_000);

  test('remove - an interface deleted under the loader (tc detach: ENODEV): every pin goes all the same, the loader ends', async () => {
    await node.sh('ip link add gone0 type veth peer name gone1 && ip link set gone0 up && ip link set gone1 up');
    const d = driver('gone0');
    await d.dp.apply([vip(130, 3)]);
    await node.sh('ip link del gone0');
    await d.dp.close({ removeState: true });
    expect(existsSync(`${BPFFS}/r${pin}`)).toBe(false);
  }, 60_000);

  test('interface made again - deleted and recreated under the same name while the loader runs: the next apply fails naming it, the one after attaches the program again', async () => {
    await node.sh('ip link add again0 type veth peer name again1 && ip link set again0 up && ip link set again1 up');
    const d = driver('again0');
    const t = vip(140, 3);
    await d.dp.apply([t]);
    const attachedProg = async (): Promise<string> => node.sh('tc filter show dev again0 ingress');
    expect(await attachedProg()).toMatch(/l4f_node/);
    await node.sh(
      'ip link del again0 && ip link add again0 type veth peer name again1 && ip link set again0 up && ip link set again1 up',
    );
    const slots = Int32Array.from(t.slots);
    slots[3] = ((slots[3] as number) + 1) % 3;
    // Without the check this apply succeeded: map writes only, with no program on again0 reading the maps.
    await expect(d.dp.apply([{ ...t, slots }])).rejects.toThrow(
      /interface again0: ifindex \d+, not \d+ as at the start/,
    );
    await d.dp.apply([{ ...t, slots }]);
    expect(await attachedProg()).toMatch(/l4f_node/);
    expect(d.loads.map((l) => l.attach)).toEqual(['attached', 'attached']);
    await node.sh('ip link del again0');
  }, 60_000);
});
