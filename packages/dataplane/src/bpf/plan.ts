/**
 * Plans an apply of the bpf data plane: the desired VIPs against what the maps hold (read back from the
 * kernel after a restart), as an ordered list of loader requests that changes only what differs.
 *
 * - Backend ids are per (VIP, backend address), MAX_BACKENDS of them (a state needing more is refused whole:
 *   ids.ts checkBackendIds): the slot tables and the flow cache hold ids, and the program keeps a remembered flow
 *   only while its id is live for the flow's VIP. A backend leaving a VIP is marked not live (its flows are
 *   hashed again), not deleted: its id is never given to another backend while it is remembered, and a backend
 *   that comes back gets its old id (its old flows are valid again: same machine).
 * - A VIP's table is written in place (one batch of the changed slots: each slot changes atomically, every
 *   packet sees the old or the new backend of its slot). A new VIP or a new size M gets a fresh table at the
 *   VIP's idle index (vip id * 2 + the other generation) and the VIP entry flips to it in one update: packets
 *   in flight see the whole old table or the whole new one. The old table is deleted by a later sweep
 *   (sweep.ts planSweep, the driver's timer), once no program run can still hold the old VIP entry.
 * - Source ranges (source-ranges.ts) are trie entries per VIP id, written as a delta; the VIP entry carries only a
 *   flag, so a change of ranges alone touches neither its table nor its flows.
 * - Order inside an apply: node addresses, backends, tables, source ranges added, VIPs, VIP addresses added; then
 *   addresses, VIPs removed, source ranges removed, backends marked not live: a packet never finds a VIP whose
 *   table, backends or ranges are not there yet, and a VIP given ranges never admits every source meanwhile.
 */
import { vipKey } from '@l4fleet/config';
import type { VipApplyReport } from '../types.js';
import type { NormalizedVip } from '../validate.js';
import {
  addressText,
  type BackendValue,
  type ConfigValue,
  type Dump,
  encodeAddrKey,
  encodeBackend,
  encodeConfig,
  encodeVip,
  encodeVipKey,
  type KernelRanges,
  MAX_BACKENDS,
  MAX_VIPS,
  MapId,
  type VipKey,
  type VipValue,
} from './codec.js';
import { checkBackendIds, freeIds } from './ids.js';
import { Op, type Request } from './loader.js';
import { planPrevious, previousIds } from './previous.js';
import { planRanges } from './source-ranges.js';
import { RETIRE_AFTER_MS } from './sweep.js';
import { planTableCreate, planTableWrite } from './table-plan.js';

export interface KernelVip {
  readonly key: VipKey;
  readonly value: VipValue;
}

/** What the maps hold (kept by the driver between applies; rebuilt from a dump after a restart). */
export interface KernelState {
  readonly vips: Map<string, KernelVip>;
  readonly addrs: Set<string>;
  readonly backends: Map<number, BackendValue>;
  readonly tables: Map<number, Uint32Array>;
  /** Second chance: previous owners per table (id + 1, 0 = none); absent = none (src/bpf/previous.ts). */
  readonly previous: Map<number, Uint32Array>;
  readonly config: ConfigValue | undefined;
  /** l4f_src_ranges: per VIP id, its prefixes (source-ranges.ts); absent = none. */
  readonly ranges: KernelRanges;
  /** Tables no VIP points at any more, with when (ms, performance.now()) they stopped being used. */
  readonly retired: Map<number, number>;
}

const vipMapKey = (k: VipKey): string => `${k.family}/${k.addressHex}/${k.protocol}/${k.port}`;
const addrMapKey = (family: 4 | 6, hex: string): string => `${family}/${hex}`;

export function stateFromDump(d: Dump, now: number): KernelState {
  const vips = new Map(d.vips.map((v) => [vipMapKey(v.key), v]));
  const used = new Set(d.vips.map((v) => v.value.table));
  // Tables no VIP points at: left by an apply that was interrupted, or replaced just before a restart.
  const retired = new Map([...d.tables.keys()].filter((t) => !used.has(t)).map((t) => [t, now - RETIRE_AFTER_MS]));
  return {
    vips,
    addrs: new Set(d.addrs.map((a) => addrMapKey(a.family, a.addressHex))),
    backends: new Map(d.backends),
    tables: new Map(d.tables),
    previous: new Map(d.previous),
    config: d.config,
    ranges: new Map(d.ranges),
    retired,
  };
}

export function emptyState(): KernelState {
  return {
    vips: new Map(),
    addrs: new Set(),
    backends: new Map(),
    tables: new Map(),
    previous: new Map(),
    config: undefined,
    ranges: new Map(),
    retired: new Map(),
  };
}

export interface Plan {
  readonly requests: Request[];
  readonly next: KernelState;
  readonly vips: VipApplyReport[];
  readonly slotsChanged: number;
  readonly backendsAdded: number;
  readonly backendsRemoved: number;
}

function u32s(...xs: number[]): Buffer {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => {
    b.writeUInt32LE(x >>> 0, 4 * i);
  });
  return b;
}

function elements(map: MapId, entries: readonly Buffer[][]): Buffer {
  return Buffer.concat([u32s(map, entries.length), ...entries.flat()]);
}

export function planApply(
  state: KernelState,
  desired: readonly NormalizedVip[],
  config: ConfigValue,
  now: number,
): Plan {
  const vips = new Map(state.vips);
  const addrs = new Set(state.addrs);
  const backends = new Map(state.backends);
  const tables = new Map(state.tables);
  const previous = new Map(state.previous);
  const retired = new Map(state.retired);
  const early: Request[] = [];
  const tableReqs: Request[] = [];
  const vipUps: Buffer[][] = [];
  const backendUps: Buffer[][] = [];
  const backendDowns: Buffer[][] = [];
  const reports: VipApplyReport[] = [];
  /** Per desired VIP id: its source ranges (undefined: every source); and the VIP id of each report. */
  const wantRanges = new Map<number, NormalizedVip['sources']>();
  const reportIds: number[] = [];
  let slotsChanged = 0;
  let backendsAdded = 0;
  let backendsRemoved = 0;

  if ((state.config?.src4 ?? '') !== (config.src4 ?? '') || (state.config?.src6 ?? '') !== (config.src6 ?? '')) {
    early.push({ op: Op.update, payload: elements(MapId.config, [[u32s(0), encodeConfig(config)]]), what: 'config' });
  }

  checkBackendIds(desired, MAX_BACKENDS);
  const wanted = new Set<string>();
  const usedVipIds = new Set([...vips.values()].map((v) => v.value.id));
  const nextVipId = freeIds((i) => usedVipIds.has(i), MAX_VIPS, 'VIP');
  const nextBackendId = freeIds((i) => backends.has(i), MAX_BACKENDS, 'backend');
  for (const v of desired) {
    const key: VipKey = {
      family: v.family,
      addressHex: v.addressHex,
      port: v.table.vip.port,
      protocol: v.table.vip.protocol,
    };
    const mk = vipMapKey(key);
    wanted.add(mk);
    const old = vips.get(mk);
    const id = old?.value.id ?? nextVipId(`vip ${v.label}`);
    usedVipIds.add(id);
    wantRanges.set(id, v.sources);

    // Backend ids of this VIP: by address; a returning address gets its old id.
    const mine = new Map<string, number>();
    for (const [bid, b] of backends) if (b.vipId === id) mine.set(b.addressHex, bid);
    const ids = v.backends.map((b) => {
      // Not live: a remembered flow of it is placed by the table again (a down backend of a `reselect` VIP). It
      // owns no slot then; its id stays with it, so flows remembered on it return if it comes back first.
      const want: BackendValue = {
        family: v.family,
        addressHex: b.addressHex,
        ...(b.mac ? { mac: b.mac } : {}),
        live: b.keepsFlows,
        vipId: id,
      };
      let bid = mine.get(b.addressHex);
      if (bid === undefined) {
        bid = nextBackendId(`vip ${v.label}: backend ${b.address}`);
        // One id per (VIP, address): a second backend of the same address (another name) shares it.
        mine.set(b.addressHex, bid);
        backendsAdded += 1;
      } else if (!backends.get(bid)?.live && want.live) backendsAdded += 1;
      const have = backends.get(bid);
      if (have === undefined || have.live !== want.live || have.mac !== want.mac) {
        backends.set(bid, want);
        // Marked live before the table that uses it; marked not live after the table that dropped it (Downs).
        (have?.live && !want.live ? backendDowns : backendUps).push([u32s(bid), encodeBackend(want)]);
      }
      return bid;
    });
    const inDesired = new Set(ids);
    for (const bid of mine.values()) {
      const b = backends.get(bid) as BackendValue;
      if (b.live && !inDesired.has(bid)) {
        const down = { ...b, live: false };
        backends.set(bid, down);
        backendDowns.push([u32s(bid), encodeBackend(down)]);
        backendsRemoved += 1;
      }
    }

    // Maglev's backend indices; table-plan.ts turns them into ids while comparing or encoding.
    const slots = v.table.slots;
    const current = old ? tables.get(old.value.table) : undefined;
    let table = old?.value.table ?? id * 2;
    let changed: number;
    let previousChanged = false;
    if (!current || current.length !== slots.length) {
      // A fresh table at the idle index, then the VIP flips to it (atomic for packets in flight).
      if (old) {
        table = id * 2 + ((old.value.table & 1) ^ 1);
        retired.set(old.value.table, now);
      }
      retired.delete(table);
      const create = planTableCreate(table, slots, ids);
      tableReqs.push({ op: Op.tableCreate, payload: create.payload, what: `table-create ${v.label}` });
      tables.set(table, create.table);
      changed = slots.length;
      const p = planPrevious(
        previous,
        table,
        undefined,
        previousIds(v.table.previousSlots, v.table.slots, ids),
        slots.length,
        v.label,
      );
      if (p) tableReqs.push(p);
    } else {
      const write = planTableWrite(table, current, slots, ids);
      changed = write?.changed ?? 0;
      if (write) {
        tableReqs.push({ op: Op.tableWrite, payload: write.payload, what: `table-write ${v.label}` });
        tables.set(table, write.table);
      }
      const want = previousIds(v.table.previousSlots, v.table.slots, ids);
      const p = planPrevious(previous, table, previous.get(table), want, slots.length, v.label);
      if (p) {
        tableReqs.push(p);
        previousChanged = true;
      }
    }
    const value: VipValue = {
      id,
      table,
      size: slots.length,
      seed: v.table.seed,
      hash: v.table.hash,
      forwarding: v.forwarding,
      guePort: v.guePort,
      sourceRanges: v.sources !== undefined,
      draining: v.table.draining === true,
    };
    const o = old?.value;
    const valueChanged =
      !o ||
      o.table !== value.table ||
      o.size !== value.size ||
      o.seed !== value.seed ||
      o.hash !== value.hash ||
      o.forwarding !== value.forwarding ||
      o.guePort !== value.guePort ||
      o.sourceRanges !== value.sourceRanges ||
      o.draining !== value.draining;
    if (valueChanged) {
      vips.set(mk, { key, value });
      vipUps.push([encodeVipKey(key), encodeVip(value)]);
    }
    const rulesReplaced =
      !!o &&
      (o.size !== value.size ||
        o.seed !== value.seed ||
        o.hash !== value.hash ||
        o.forwarding !== value.forwarding ||
        o.guePort !== value.guePort);
    slotsChanged += changed;
    reportIds.push(id);
    reports.push({
      vip: v.label,
      action: !old ? 'added' : changed > 0 || valueChanged || previousChanged ? 'updated' : 'unchanged',
      slotsChanged: changed,
      rulesReplaced,
    });
  }

  const wantAddrs = new Set(desired.map((v) => addrMapKey(v.family, v.addressHex)));
  const addrAdds = [...wantAddrs].filter((a) => !addrs.has(a));
  const addrDels = [...addrs].filter((a) => !wantAddrs.has(a));
  const addrKey = (a: string): Buffer => {
    const [f, hex] = a.split('/') as [string, string];
    return encodeAddrKey(f === '6' ? 6 : 4, hex);
  };
  const vipDels: Buffer[] = [];
  for (const [mk, kv] of vips) {
    if (wanted.has(mk)) continue;
    vips.delete(mk);
    vipDels.push(encodeVipKey(kv.key));
    retired.set(kv.value.table, now);
    for (const [bid, b] of backends) {
      if (b.vipId === kv.value.id && b.live) {
        const down = { ...b, live: false };
        backends.set(bid, down);
        backendDowns.push([u32s(bid), encodeBackend(down)]);
        backendsRemoved += 1;
      }
    }
    const label = vipKey({ address: addressText(kv.key.addressHex), port: kv.key.port, protocol: kv.key.protocol });
    reports.push({ vip: label, action: 'removed', slotsChanged: 0, rulesReplaced: false });
  }
  for (const a of addrAdds) addrs.add(a);
  for (const a of addrDels) addrs.delete(a);
  const ranges = planRanges(state.ranges, wantRanges);
  reportIds.forEach((id, i) => {
    const r = reports[i] as VipApplyReport;
    if (r.action === 'unchanged' && ranges.changed.has(id)) reports[i] = { ...r, action: 'updated' };
  });
  const rangeUps = ranges.ups.length
    ? [{ op: Op.update, payload: elements(MapId.sourceRanges, ranges.ups), what: 'source ranges' }]
    : [];
  const rangeDowns = ranges.downs.length
    ? [{ op: Op.delete, payload: elements(MapId.sourceRanges, ranges.downs), what: 'source ranges' }]
    : [];

  const requests: Request[] = [...early];
  if (backendUps.length)
    requests.push({ op: Op.update, payload: elements(MapId.backends, backendUps), what: 'backends' });
  requests.push(...tableReqs);
  // Make before break, unless old and new together would not fit the trie (source-ranges.ts MAX_SOURCE_ENTRIES).
  requests.push(...(ranges.deletesFirst ? [...rangeDowns, ...rangeUps] : rangeUps));
  if (vipUps.length) requests.push({ op: Op.update, payload: elements(MapId.vips, vipUps), what: 'vips' });
  if (addrAdds.length)
    requests.push({
      op: Op.update,
      payload: elements(
        MapId.vipAddrs,
        addrAdds.map((a) => [addrKey(a), u32s(1)]),
      ),
      what: 'vip addresses',
    });
  if (addrDels.length)
    requests.push({
      op: Op.delete,
      payload: elements(
        MapId.vipAddrs,
        addrDels.map((a) => [addrKey(a)]),
      ),
      what: 'vip addresses',
    });
  if (vipDels.length)
    requests.push({
      op: Op.delete,
      payload: elements(
        MapId.vips,
        vipDels.map((k) => [k]),
      ),
      what: 'vips',
    });
  if (!ranges.deletesFirst) requests.push(...rangeDowns);
  if (backendDowns.length)
    requests.push({ op: Op.update, payload: elements(MapId.backends, backendDowns), what: 'backends leaving' });
  // Retired tables are deleted by the driver's sweeps, not here: each delete would add an RCU wait to the apply.
  return {
    requests,
    next: { vips, addrs, backends, tables, previous, config, ranges: ranges.next, retired },
    vips: reports,
    slotsChanged,
    backendsAdded,
    backendsRemoved,
  };
}
