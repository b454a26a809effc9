import { readFileSync } from 'node:fs';
import { BPF_MAX_VIP_MEMBERS } from '@l4fleet/config';
import { buildTable, NO_BACKEND } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import {
  decodeBackend,
  decodeVip,
  decodeVipKey,
  encodeBackend,
  encodeVip,
  encodeVipKey,
  MAX_BACKENDS,
  MapId,
} from './codec.js';
import { Op } from './loader.js';
import { emptyState, type KernelState, planApply } from './plan.js';
import { planSweep, RETIRE_AFTER_MS, SWEEP_MAX_DELETES } from './sweep.js';

const backends = [
  { name: 'a', address: '198.18.0.1', port: 80 },
  { name: 'b', address: '198.18.0.2', port: 80 },
  { name: 'c', address: '198.18.0.3', port: 80 },
];
const table = (bs = backends, size = 251): VipTable => ({
  vip: { address: '198.51.100.7', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 9,
  backends: bs,
  slots: buildTable(bs, size),
});
const plan = (state: KernelState, ts: VipTable[], now = 0) =>
  planApply(state, validateDesired(ts, { requireSamePort: true }), { src4: 'c6124802' }, now);

describe('bpf plan', () => {
  test('a new VIP: node address, backends, a filled table, the VIP, its address; in that order', () => {
    const p = plan(emptyState(), [table()]);
    expect(p.requests.map((r) => r.op)).toEqual([Op.update, Op.update, Op.tableCreate, Op.update, Op.update]);
    expect(p.requests.map((r) => r.what)).toEqual([
      'config',
      'backends',
      'table-create 198.51.100.7:80/tcp',
      'vips',
      'vip addresses',
    ]);
    expect(p.vips).toEqual([{ vip: '198.51.100.7:80/tcp', action: 'added', slotsChanged: 251, rulesReplaced: false }]);
    expect(p.backendsAdded).toBe(3);
    const slots = p.next.tables.get(0) as Uint32Array;
    expect(new Set(slots)).toEqual(new Set([0, 1, 2]));
  });

  test('the same state again sends nothing; one moved slot is one table write of one slot', () => {
    const first = plan(emptyState(), [table()]);
    expect(plan(first.next, [table()]).requests).toEqual([]);
    const t = table();
    const slots = Int32Array.from(t.slots);
    slots[5] = ((slots[5] as number) + 1) % 3;
    const p = plan(first.next, [{ ...t, slots }]);
    expect(p.requests.map((r) => [r.op, r.payload.readUInt32LE(4)])).toEqual([[Op.tableWrite, 1]]);
    expect(p.vips[0]).toMatchObject({ action: 'updated', slotsChanged: 1, rulesReplaced: false });
  });

  test('a new size is a fresh table at the idle index and a flip; the old table goes after the retire delay', () => {
    const first = plan(emptyState(), [table()]);
    const p = plan(first.next, [table(backends, 257)], 100);
    expect(p.requests.map((r) => r.what)).toEqual(['table-create 198.51.100.7:80/tcp', 'vips']);
    expect(p.requests[0]?.payload.readUInt32LE(0)).toBe(1);
    expect(p.vips[0]).toMatchObject({ rulesReplaced: true, slotsChanged: 257 });
    expect(planSweep(p.next, 100 + RETIRE_AFTER_MS - 1).requests).toEqual([]);
    const swept = planSweep(p.next, 100 + RETIRE_AFTER_MS);
    expect(swept.requests.map((r) => [r.op, r.payload.readUInt32LE(0)])).toEqual([[Op.tableDelete, 0]]);
    expect([...swept.next.tables.keys()]).toEqual([1]);
  });

  test('a backend that leaves is marked not live, never reused; when it returns it gets its old id', () => {
    const first = plan(emptyState(), [table()]);
    const idOfB = [...first.next.backends].find(([, b]) => b.addressHex === 'c6120002')?.[0];
    const without = backends.filter((b) => b.name !== 'b');
    const left = plan(first.next, [table(without)]);
    expect(left.backendsRemoved).toBe(1);
    expect(left.next.backends.get(idOfB as number)?.live).toBe(false);
    expect([...(left.next.tables.get(0) as Uint32Array)].includes(idOfB as number)).toBe(false);
    // A new backend takes a fresh id, not b's.
    const d = { name: 'd', address: '198.18.0.4', port: 80 };
    const added = plan(left.next, [table([...without, d])]);
    expect([...added.next.backends].find(([, b]) => b.addressHex === 'c6120004')?.[0]).not.toBe(idOfB);
    const back = plan(added.next, [table([...without, d, backends[1] as (typeof backends)[number]])]);
    expect(back.next.backends.get(idOfB as number)?.live).toBe(true);
  });

  test('a previous owner carried only for second chance (no slot) stays live: the node names only live hops', () => {
    // b left the table (disabled or removed) and is carried as the previous owner of its former slots.
    const now = table(backends.filter((x) => x.name !== 'b'));
    const before = buildTable(backends, 251);
    // b (index 1 before) named at its new index 2 wherever it owned the slot.
    const previousSlots = Int32Array.from(before, (i) => (i === 1 ? 2 : NO_BACKEND));
    const carried: VipTable = {
      ...now,
      forwarding: 'gue',
      backends: [...now.backends, backends[1] as (typeof backends)[number]],
      previousSlots,
    };
    const p = plan(emptyState(), [carried]);
    const idOfB = [...p.next.backends].find(([, x]) => x.addressHex === 'c6120002')?.[0];
    // Live, so node-core.h previous_owner() can name it as the hop; the same flag keeps the flows the node remembers
    // on it (pick()) until it is no longer carried (secondChance.retainS): docs/design/0011 "Disabled and removed".
    expect(p.next.backends.get(idOfB as number)?.live).toBe(true);
    const core = readFileSync(new URL('../../native/bpf/node-core.h', import.meta.url), 'utf8');
    const hop = core.slice(core.indexOf('previous_owner(const struct l4f_vip'));
    expect(hop.slice(0, hop.indexOf('return p;'))).toContain('!(p->flags & L4F_BACKEND_LIVE)');
  });

  test('removing a VIP deletes it and its address, marks its backends dead, retires its table', () => {
    const first = plan(emptyState(), [table()]);
    const p = plan(first.next, [], 5);
    expect(p.requests.map((r) => r.what)).toEqual(['vip addresses', 'vips', 'backends leaving']);
    expect(p.vips).toEqual([{ vip: '198.51.100.7:80/tcp', action: 'removed', slotsChanged: 0, rulesReplaced: false }]);
    expect([...p.next.retired.keys()]).toEqual([0]);
    // An apply long after deletes nothing itself (each delete is an RCU wait): the sweeps do.
    const later = plan(p.next, [], 5 + 10 * RETIRE_AFTER_MS);
    expect(later.requests).toEqual([]);
    expect(planSweep(later.next, 5 + 10 * RETIRE_AFTER_MS).requests.map((r) => r.what)).toEqual(['table-delete 0']);
  });

  test('a sweep deletes at most SWEEP_MAX_DELETES tables and says when the next is due', () => {
    const vips = Array.from({ length: SWEEP_MAX_DELETES + 2 }, (_x, i) => ({
      ...table(),
      vip: { address: `198.51.100.${10 + i}`, port: 80, protocol: 'tcp' as const },
    }));
    const all = plan(emptyState(), vips);
    const gone = plan(all.next, [], 0);
    expect(gone.next.retired.size).toBe(SWEEP_MAX_DELETES + 2);
    expect(planSweep(gone.next, RETIRE_AFTER_MS - 300).nextDueMs).toBe(300);
    const first = planSweep(gone.next, RETIRE_AFTER_MS);
    expect(first.requests).toHaveLength(SWEEP_MAX_DELETES);
    expect(first.nextDueMs).toBe(0);
    const second = planSweep(first.next, RETIRE_AFTER_MS);
    expect(second.requests).toHaveLength(2);
    expect(second.nextDueMs).toBeUndefined();
    expect(second.next.tables.size).toBe(0);
  });

  test('slots without a backend hold NO_BACKEND_ID', () => {
    const t = table();
    const slots = Int32Array.from(t.slots).fill(NO_BACKEND, 0, 3);
    const p = plan(emptyState(), [{ ...t, slots }]);
    expect([...(p.next.tables.get(0) as Uint32Array).slice(0, 3)]).toEqual([0xffff_ffff, 0xffff_ffff, 0xffff_ffff]);
  });
});

describe('bpf plan - backend ids', () => {
  test('every id taken: the apply is refused with a coded error naming the VIP and the address, nothing planned', () => {
    const first = plan(emptyState(), [table()]);
    // Ids are never reused while the pins live (a flow LRU entry may still name one): fill the rest with
    // not-live backends of the VIP, as addresses that came and went would.
    const full = new Map(first.next.backends);
    for (let id = full.size; id < MAX_BACKENDS; id++) {
      full.set(id, { family: 4, addressHex: (0x0a000000 + id).toString(16), live: false, vipId: 0 });
    }
    const state = { ...first.next, backends: full };
    const fresh = [...backends, { name: 'd', address: '198.18.0.4', port: 80 }];
    let err: unknown;
    try {
      plan(state, [table(fresh)]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('BPF_IDS_EXHAUSTED');
    expect((err as Error).message).toMatch(/vip 198\.51\.100\.7:80\/tcp: backend 198\.18\.0\.4: all 65536 backend ids/);
    expect(state.backends.size).toBe(MAX_BACKENDS);
    // A backend that had an id gets it back: no new id needed.
    expect(plan(state, [table()]).requests).toEqual([]);
  });
});

describe('bpf plan - capacity', () => {
  /** `vips` VIPs (198.51.100.0/24 and on), each with the same `members` backends (one pool shared by all). */
  const shared = (vips: number, members: number, size = 1_009): VipTable[] => {
    const bs = Array.from({ length: members }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${i >> 8}.${i & 255}`,
      port: 80,
    }));
    const slots = Int32Array.from({ length: size }, (_x, s) => s % members);
    return Array.from({ length: vips }, (_x, v) => ({
      vip: { address: `198.51.${100 + (v >> 8)}.${v & 255}`, port: 80, protocol: 'tcp' as const },
      hash: '5-tuple' as const,
      seed: 9,
      backends: bs,
      slots,
    }));
  };
  const refusal = (state: KernelState, ts: VipTable[]): DataPlaneError => {
    try {
      plan(state, ts);
    } catch (e) {
      return e as DataPlaneError;
    }
    throw new Error('the plan was not refused');
  };

  test('the maps hold MAX_BACKENDS ids, the number of node-maps.h and of config BPF_MAX_VIP_MEMBERS', () => {
    const h = readFileSync(new URL('../../native/bpf/node-maps.h', import.meta.url), 'utf8');
    expect(Number(/#define L4F_MAX_BACKENDS (\d+)/.exec(h)?.[1])).toBe(MAX_BACKENDS);
    expect(BPF_MAX_VIP_MEMBERS).toBe(MAX_BACKENDS);
  });

  test('more VIP x backend pairs than ids (66 VIPs on one 1,000-member pool): TOO_LARGE with the count, not exhaustion', () => {
    const err = refusal(emptyState(), shared(66, 1_000));
    expect(err).toBeInstanceOf(DataPlaneError);
    expect(err.code).toBe('TOO_LARGE');
    expect(err.message).toContain('66,000 backend ids');
    expect(err.message).toContain('66 VIPs');
    expect(err.message).toContain('65,536');
    expect(err.message).not.toContain('removeState');
  });

  test('a state within the ids, refused only because retired ids hold the rest: BPF_IDS_EXHAUSTED', () => {
    const first = plan(emptyState(), shared(1, 3));
    const full = new Map(first.next.backends);
    for (let id = full.size; id < MAX_BACKENDS; id++) {
      full.set(id, { family: 4, addressHex: (0x0a000000 + id).toString(16), live: false, vipId: 0 });
    }
    const err = refusal({ ...first.next, backends: full }, shared(1, 4));
    expect(err.code).toBe('BPF_IDS_EXHAUSTED');
    expect(err.message).toContain('removeState');
  });

  test('exactly MAX_BACKENDS pairs (64 VIPs x 1,024 backends) are planned', () => {
    const p = plan(emptyState(), shared(64, 1_024, 1_031));
    expect(p.next.backends.size).toBe(MAX_BACKENDS);
    expect(p.backendsAdded).toBe(MAX_BACKENDS);
  });

  test('one address given twice in a VIP is one backend id (ids are per VIP and address)', () => {
    const [t] = shared(1, 2);
    const twice = {
      ...(t as VipTable),
      backends: [...(t as VipTable).backends, { name: 'again', address: '198.18.0.0', port: 80 }],
    };
    const p = plan(emptyState(), [twice]);
    expect(p.next.backends.size).toBe(2);
    expect(new Set(p.next.tables.get(0))).toEqual(new Set([0, 1]));
  });
});

describe('bpf codec', () => {
  test('keys and values round-trip through their byte layouts (node-maps.h)', () => {
    const k = {
      family: 6 as const,
      addressHex: '20010db8000000000000000000000001',
      port: 443,
      protocol: 'udp' as const,
    };
    expect(decodeVipKey(encodeVipKey(k), 0)).toEqual(k);
    const v = {
      id: 3,
      table: 7,
      size: 65_537,
      seed: 0xdead_beef,
      hash: 'source-ip' as const,
      forwarding: 'gue' as const,
      guePort: 6080,
      sourceRanges: true,
      draining: true,
    };
    expect(decodeVip(encodeVip(v), 0, 'v')).toEqual(v);
    expect(encodeVip(v)[20]).toBe(3);
    expect(decodeVip(encodeVip({ ...v, sourceRanges: false }), 0, 'v')).toEqual({ ...v, sourceRanges: false });
    expect(decodeVip(encodeVip({ ...v, draining: false }), 0, 'v')).toEqual({ ...v, draining: false });
    const b = { family: 4 as const, addressHex: 'c6120001', mac: '02:00:00:00:00:01', live: true, vipId: 3 };
    expect(decodeBackend(encodeBackend(b), 0, 0)).toEqual(b);
    expect(encodeVipKey(k).length).toBe(20);
    expect(MapId.config).toBe(3);
  });
});
