/**
 * The bpf loader against slot tables changed by hand under it (root, one network namespace of its own):
 * - a VIP's table deleted from l4f_tables, or replaced there by another map, while the loader runs: the loader
 *   keeps each table's fd and mapping, and must not read or write that map once l4f_tables no longer holds it (the
 *   dump reports the table absent or the new map's contents, so verify re-creates or rewrites it; a table write
 *   goes to the map in l4f_tables or fails, never to a map no packet reaches);
 * - a seat registry (l4f_table_seat) naming a map a VIP refers to, or one that is not all zeros: a restarted loader
 *   must not adopt it (adopted, the next seat request deleted it from l4f_tables, or a VIP's create filled a table
 *   with another's previous owners);
 * - a table put by hand at the seat's index while the loader runs: the seat's helper must neither replace nor delete
 *   it, and a create there must not fill the seat's map, which l4f_tables no longer holds (ahead.c holds()).
 * The setup is bpf-restart.int.test.ts's. docs/design/0007-bpf-dataplane.md, "Loader and restarts".
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type BpfDataPlane, bpfAvailable, createBpfDataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { bpftool, type Loaded, loaderLog } from './bpf-driver.js';

const BPFFS = `/run/l4fleet-bpf-hostile-test-${process.pid}`;
const FLOW_TABLE_SIZE = 4096;
const built = bpfAvailable() === undefined;
/** BPF_F_INNER_MAP | BPF_F_MMAPABLE: the flags of the loader's tables (tables.c create_table). */
const TABLE_FLAGS = String(0x1400);

let lab: NetnsLab | undefined;
let node: NetnsHost;
let pin = 0;
const open: BpfDataPlane[] = [];
const foreign: string[] = [];

function driver(): { dp: BpfDataPlane; loads: Loaded[] } {
  const { logger, loads } = loaderLog();
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: node.ns,
    bpffsPath: BPFFS,
    pinName: `h${pin}`,
    flowTableSize: FLOW_TABLE_SIZE,
    logger,
  });
  open.push(dp);
  return { dp, loads };
}

function vip(port: number, backends: number, firstBackend = 0, slots = 4099): VipTable {
  const bs = Array.from({ length: backends }, (_x, i) => ({
    name: `b${firstBackend + i}`,
    address: `198.18.91.${10 + firstBackend + i}`,
    port,
  }));
  return {
    vip: { address: '198.51.100.41', port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends: bs,
    slots: buildTable(bs, slots),
  };
}

const pinPath = (name: string): string => `${BPFFS}/h${pin}/${name}`;
const u32 = (v: number): string[] => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return [...b].map(String);
};

function valueBytes(out: string): Buffer {
  const v = (JSON.parse(out) as { value: number | string[] }).value;
  if (typeof v === 'number') return Buffer.from(u32(v).map(Number));
  return Buffer.from(v.map((x) => Number(x)));
}

/** The u32 at key 0 of a pinned one-entry array. */
function pinnedU32(name: string): number {
  return valueBytes(bpftool(['-j', 'map', 'lookup', 'pinned', pinPath(name), 'key', ...u32(0)])).readUInt32LE(0);
}

/** The id of the table map at `index` of l4f_tables, or undefined when the index is empty. */
function tableMapId(index: number): number | undefined {
  const r = spawnSync('bpftool', ['-j', 'map', 'lookup', 'pinned', pinPath('l4f_tables'), 'key', ...u32(index)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return undefined;
  return valueBytes(r.stdout).readUInt32LE(0);
}

/** Slot `slot` of the table map `id`: (backend id, previous owner id + 1). */
function slotOf(id: number, slot: number): [number, number] {
  const b = valueBytes(bpftool(['-j', 'map', 'lookup', 'id', String(id), 'key', ...u32(slot)]));
  return [b.readUInt32LE(0), b.readUInt32LE(4)];
}

/** A table map made by hand (all zeros), pinned beside the test's pins; removed after the test. */
function foreignTable(entries: number): string {
  const path = `${BPFFS}/foreign-${pin}-${foreign.length}`;
  foreign.push(path);
  bpftool(
    ['map', 'create', path, 'type', 'array', 'key', '4', 'value', '8', 'entries', String(entries)].concat([
      'name',
      'foreign',
      'flags',
      TABLE_FLAGS,
    ]),
  );
  return path;
}

beforeAll(async () => {
  if (!built) return;
  lab = await createNetnsLab('bht');
  node = await lab.host('node');
  await node.sh('ip link add eth0 type veth peer name eth1 && ip link set eth0 up && ip link set eth1 up');
}, 60_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  for (const f of foreign.splice(0)) rmSync(f, { force: true });
  pin += 1;
});

afterAll(async () => {
  await lab?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf loader, tables changed by hand', () => {
  test("verify - a VIP's table deleted from l4f_tables by hand while the loader runs: verify makes the VIP a table again", async () => {
    const tables = [vip(120, 3)];
    const d = driver();
    await d.dp.apply(tables); // VIP id 0: table index 0
    expect(tableMapId(0)).toBeDefined();
    bpftool(['map', 'delete', 'pinned', pinPath('l4f_tables'), 'key', ...u32(0)]);
    const repaired = await d.dp.verify();
    expect(repaired.transactions).toBeGreaterThan(0);
    // A fresh table at the VIP's other index (the VIP flipped to it) or at index 0 again.
    expect(tableMapId(0) ?? tableMapId(1)).toBeDefined();
    expect((await d.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test("verify - a VIP's table replaced in l4f_tables by another map (zeros): verify writes the slots into that map", async () => {
    const tables = [vip(121, 3)];
    const d = driver();
    await d.dp.apply(tables);
    const own = tableMapId(0);
    const path = foreignTable(4099);
    bpftool(['map', 'update', 'pinned', pinPath('l4f_tables'), 'key', ...u32(0), 'value', 'pinned', path]);
    const foreignId = tableMapId(0);
    expect(foreignId).toBeDefined();
    expect(foreignId).not.toBe(own);
    const repaired = await d.dp.verify();
    expect(repaired.transactions).toBeGreaterThan(0);
    expect((await d.dp.verify()).transactions).toBe(0);
    // Written where packets read: a restarted driver reads the same table back (nothing to send).
    const live = tableMapId(0) ?? tableMapId(1);
    await d.dp.close();
    const next = driver();
    expect((await next.dp.apply(tables)).transactions).toBe(0);
    expect(tableMapId(0) ?? tableMapId(1)).toBe(live);
  }, 60_000);

  test("apply - a table write after the VIP's table was deleted by hand fails (no write into a map no packet reaches); the next apply makes it again", async () => {
    const d = driver();
    await d.dp.apply([vip(122, 3)]);
    bpftool(['map', 'delete', 'pinned', pinPath('l4f_tables'), 'key', ...u32(0)]);
    const changed = [vip(122, 4)]; // one more backend: slots written in place
    const first = await d.dp.apply(changed).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(first).toMatchObject({ message: expect.stringContaining('no table at index 0') });
    expect((await d.dp.apply(changed)).transactions).toBeGreaterThan(0);
    expect(tableMapId(0) ?? tableMapId(1)).toBeDefined();
    expect((await d.dp.verify()).transactions).toBe(0);
  }, 60_000);

  test("seat - a registry naming a VIP's live table is refused at the start (cleared): the table stays in l4f_tables", async () => {
    // One backend (id 0): every slot holds 0 and no previous owner, so the table is all zeros like a seat, and only
    // the VIP referring to it tells them apart.
    const tables = [vip(123, 1)];
    const first = driver();
    await first.dp.apply(tables); // VIP id 0: table 0; the seat at index 2
    await first.dp.settled();
    const live = tableMapId(0);
    expect(live).toBeDefined();
    await first.dp.close();
    // The registry names table 0 (index + 1 = 1, its size, its map id), as a hand or another build could leave it.
    const rec = [...u32(1), ...u32(4099), ...u32(live as number)];
    bpftool(['map', 'update', 'pinned', pinPath('l4f_table_seat'), 'key', ...u32(0), 'value', ...rec]);
    const next = driver();
    expect((await next.dp.apply(tables)).transactions).toBe(0);
    await next.dp.settled();
    expect(tableMapId(0)).toBe(live);
    expect(pinnedU32('l4f_table_seat')).not.toBe(1);
    expect((await next.dp.verify()).transactions).toBe(0);
    expect(tableMapId(0)).toBe(live);
  }, 60_000);

  test('seat - a registry naming an unreferenced map that is not all zeros is refused: a new VIP there gets a fresh table', async () => {
    const tables = [vip(124, 3)];
    const first = driver();
    await first.dp.apply(tables);
    await first.dp.settled();
    expect(pinnedU32('l4f_table_seat')).toBe(3); // the seat at index 2, registered
    const seatId = tableMapId(2) as number;
    expect(seatId).toBeDefined();
    await first.dp.close();
    // A previous owner written into the seat by hand: a create filling this map would keep it.
    bpftool(['map', 'update', 'id', String(seatId), 'key', ...u32(0), 'value', ...u32(0), ...u32(5)]);
    const next = driver();
    expect((await next.dp.apply(tables)).transactions).toBe(0);
    await next.dp.settled();
    const two = [...tables, vip(125, 2, 3)]; // VIP id 1: table index 2
    await next.dp.apply(two);
    const made = tableMapId(2) as number;
    expect(made).toBeDefined();
    expect(made).not.toBe(seatId);
    expect(slotOf(made, 0)[1]).toBe(0);
    expect((await next.dp.verify()).transactions).toBe(0);
  }, 60_000);

  /** A driver whose VIP (id 0, table 0) is applied and whose seat (index 2) is made, with a table put by hand at index 2. */
  async function seatReplacedByHand(port: number): Promise<{ dp: BpfDataPlane; foreignId: number; seatId: number }> {
    const { dp } = driver();
    await dp.apply([vip(port, 3)]);
    await dp.settled();
    expect(pinnedU32('l4f_table_seat')).toBe(3); // the seat at index 2, registered
    const seatId = tableMapId(2) as number;
    bpftool([
      'map',
      'update',
      'pinned',
      pinPath('l4f_tables'),
      'key',
      ...u32(2),
      'value',
      'pinned',
      foreignTable(4099),
    ]);
    const foreignId = tableMapId(2) as number;
    expect(foreignId).not.toBe(seatId);
    return { dp, foreignId, seatId };
  }

  test('seat - a table put by hand over the seat stays when the seat is asked for again at that index, of another size', async () => {
    const { dp, foreignId } = await seatReplacedByHand(126);
    // The VIP's table of another size: created at its other index (1), then the seat asked for at index 2, 251 slots.
    await dp.apply([vip(126, 3, 0, 251)]);
    await dp.settled();
    // Before the fix: the helper put a new seat over it (its previous seat was at that index: not looked up).
    expect(tableMapId(2)).toBe(foreignId);
    expect(pinnedU32('l4f_table_seat')).toBe(0); // no seat made there
  }, 60_000);

  test('seat - a table put by hand over the seat stays when the seat moves to another index', async () => {
    const { dp, foreignId } = await seatReplacedByHand(127);
    // VIP id 0 removed: the seat asked for at index 0 (which keeps the retired table until the sweep).
    await dp.apply([]);
    await dp.settled();
    // Before the fix: index 2 deleted (the helper deleted its previous seat's index whatever it held by then).
    expect(tableMapId(2)).toBe(foreignId);
  }, 60_000);

  test("seat - a new VIP's create at the seat's index after the seat was replaced by hand: its table goes into l4f_tables", async () => {
    const { dp, foreignId, seatId } = await seatReplacedByHand(128);
    const two = [vip(128, 3), vip(129, 2, 3)]; // VIP id 1: a create at index 2 of the seat's size
    await dp.apply(two);
    // Before the fix: the create filled the seat's map, no longer at index 2, and the VIP pointed at the hand's zeros.
    const made = tableMapId(2);
    expect(made).not.toBe(foreignId);
    expect(made).not.toBe(seatId);
    expect((await dp.verify()).transactions).toBe(0);
  }, 60_000);
});
