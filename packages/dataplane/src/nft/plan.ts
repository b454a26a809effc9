/**
 * The delta between what the kernel holds and the desired state, as one nft script (one transaction:
 * the kernel applies all of it or none of it). Pure, so it is unit-tested without a kernel.
 *
 * Slot maps change element by element: recreating a map or the table would empty the flow maps and
 * move established flows (the affinity Maglev §3.3 keeps). Backend ids are never reused, so a flow map
 * entry can never point at a different backend than the one it was made for.
 */
import { type IpFamily, NO_BACKEND, type Protocol } from '@l4fleet/maglev';
import type { VipApplyReport } from '../types.js';
import type { NormalizedVip } from '../validate.js';
import {
  BACKEND_COUNTERS,
  BACKEND_ID_BIT,
  backendCounter,
  backendsMap,
  hexToAddress,
  liveSet,
  MACS,
  slotsMap,
  vipAddressesSet,
  vipsMap,
} from './names.js';
import { baseTable, type Layout, layoutSignature, vipRules, vipSignature } from './ruleset.js';

export interface KernelBackend {
  readonly id: number;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly mac?: string;
}

export interface KernelVip {
  readonly key: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** vipSignature() of the rules in the kernel; '' when unknown (rules are then rewritten). */
  readonly signature: string;
  /** Backend id per slot, 0 where the slot has no backend. */
  readonly slots: Uint32Array;
  /** Backend ids in the VIP's pool (its live set). */
  readonly live: ReadonlySet<number>;
  readonly label: string;
}

/** What the driver believes the kernel holds (read back from it after a restart). */
export interface KernelState {
  readonly layoutSignature: string;
  readonly vips: ReadonlyMap<string, KernelVip>;
  /** By backendIdentity(). */
  readonly backends: ReadonlyMap<string, KernelBackend>;
  readonly maxBackendId: number;
}

export const backendIdentity = (addressHex: string, mac?: string): string => `${addressHex}|${mac ?? ''}`;

export interface Plan {
  /** nft script; '' when the kernel already matches. */
  readonly script: string;
  readonly next: KernelState;
  readonly vips: readonly VipApplyReport[];
  readonly slotsChanged: number;
  readonly backendsAdded: number;
  readonly backendsRemoved: number;
  readonly tableCreated: boolean;
}

/** Elements per statement: keeps lines short for the nft parser; still one transaction. */
const CHUNK = 2048;

function elementStatements(verb: 'add' | 'delete', table: string, set: string, items: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i += CHUNK) {
    out.push(`${verb} element netdev ${table} ${set} { ${items.slice(i, i + CHUNK).join(', ')} }`);
  }
  return out;
}

const vipElement = (v: { addressHex: string; protocol: Protocol; port: number }): string =>
  `${hexToAddress(v.addressHex)} . ${v.protocol} . ${v.port}`;

/** Slot -> backend id (0 for NO_BACKEND). Small hot loops stay in small functions, which V8 optimises. */
function toBackendIds(wanted: Int32Array, ids: Uint32Array): Uint32Array {
  const size = wanted.length;
  const slots = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const s = wanted[i] as number;
    slots[i] = s === NO_BACKEND ? 0 : (ids[s] as number);
  }
  return slots;
}

/** Fills the nft element lists for the changed slots; returns how many changed. */
function diffSlots(prev: Uint32Array | undefined, slots: Uint32Array, dels: string[], adds: string[]): number {
  const size = slots.length;
  if (prev === undefined) {
    for (let s = 0; s < size; s++) if (slots[s] !== 0) adds.push(`${s} : ${slots[s]}`);
    return size;
  }
  let changed = 0;
  for (let s = 0; s < size; s++) {
    const was = prev[s] as number;
    const now = slots[s] as number;
    if (was === now) continue;
    changed += 1;
    if (was !== 0) dels.push(String(s));
    if (now !== 0) adds.push(`${s} : ${now}`);
  }
  return changed;
}

export function planApply(current: KernelState | null, desired: readonly NormalizedVip[], layout: Layout): Plan {
  const t = layout.table;
  const out: string[] = [];
  const sig = layoutSignature(layout);
  const tableCreated = current === null || current.layoutSignature !== sig;
  if (tableCreated) {
    // A table in an older layout (or for another interface) is replaced in the same transaction.
    if (current !== null) out.push(`delete table netdev ${t}`);
    out.push(baseTable(layout));
  }
  const base: KernelState = tableCreated
    ? { layoutSignature: sig, vips: new Map(), backends: new Map(), maxBackendId: current?.maxBackendId ?? 0 }
    : (current as KernelState);

  // Backends: existing ids are kept, new ones get fresh ids.
  const backends = new Map<string, KernelBackend>();
  let maxId = base.maxBackendId;
  let backendsAdded = 0;
  const addBackend: string[] = [];
  for (const v of desired) {
    for (const b of v.backends) {
      const identity = backendIdentity(b.addressHex, b.mac);
      if (backends.has(identity)) continue;
      const known = base.backends.get(identity);
      if (known) {
        backends.set(identity, known);
        continue;
      }
      maxId += 1;
      const id = (BACKEND_ID_BIT | maxId) >>> 0;
      backends.set(identity, { id, family: v.family, addressHex: b.addressHex, ...(b.mac ? { mac: b.mac } : {}) });
      backendsAdded += 1;
      addBackend.push(`add counter netdev ${t} ${backendCounter(id)}`);
      addBackend.push(`add element netdev ${t} ${backendsMap(v.family)} { ${id} : ${hexToAddress(b.addressHex)} }`);
      addBackend.push(`add element netdev ${t} ${BACKEND_COUNTERS} { ${id} : "${backendCounter(id)}" }`);
      if (b.mac) addBackend.push(`add element netdev ${t} ${MACS} { ${id} : ${b.mac} }`);
    }
  }
  out.push(...addBackend);

  const reports: VipApplyReport[] = [];
  const vips = new Map<string, KernelVip>();
  let slotsChanged = 0;
  const addresses = (s: Iterable<{ family: IpFamily; addressHex: string }>): Set<string> =>
    new Set([...s].map((v) => `${v.family}|${v.addressHex}`));
  const oldAddresses = addresses(base.vips.values());
  const newAddresses = addresses(desired);

  for (const v of desired) {
    const { protocol, port } = v.table.vip;
    const shape = {
      key: v.key,
      family: v.family,
      protocol,
      hash: v.table.hash,
      seed: v.table.seed,
      size: v.table.slots.length,
    };
    const signature = vipSignature(shape);
    const ids = Uint32Array.from(
      v.backends,
      (b) => (backends.get(backendIdentity(b.addressHex, b.mac)) as KernelBackend).id,
    );
    const slots = toBackendIds(v.table.slots, ids);
    const live = new Set(ids);
    const old = base.vips.get(v.key);
    vips.set(v.key, {
      key: v.key,
      family: v.family,
      addressHex: v.addressHex,
      protocol,
      port,
      signature,
      slots,
      live,
      label: v.label,
    });

    const rulesReplaced = old === undefined || old.signature !== signature;
    if (old === undefined) {
      out.push(`add counter netdev ${t} ${v.key}`);
      out.push(`add map netdev ${t} ${slotsMap(v.key)} { type mark : mark; }`);
      out.push(`add set netdev ${t} ${liveSet(v.key)} { type mark; }`);
      out.push(`add chain netdev ${t} ${v.key}`);
    } else if (rulesReplaced) {
      out.push(`flush chain netdev ${t} ${v.key}`);
    }
    if (rulesReplaced) for (const r of vipRules(shape, layout)) out.push(`add rule netdev ${t} ${v.key} ${r}`);

    // Live set: the pool, so a flow whose backend left the pool is hashed again.
    const oldLive = old?.live ?? new Set<number>();
    const liveGone = [...oldLive].filter((id) => !live.has(id)).map(String);
    const liveNew = [...live].filter((id) => !oldLive.has(id)).map(String);
    out.push(...elementStatements('delete', t, liveSet(v.key), liveGone));
    out.push(...elementStatements('add', t, liveSet(v.key), liveNew));

    // Slots: a new size starts over; otherwise only the changed slots.
    const dels: string[] = [];
    const adds: string[] = [];
    if (old !== undefined && old.slots.length !== slots.length) out.push(`flush map netdev ${t} ${slotsMap(v.key)}`);
    const prev = old !== undefined && old.slots.length === slots.length ? old.slots : undefined;
    const changed = diffSlots(prev, slots, dels, adds);
    out.push(...elementStatements('delete', t, slotsMap(v.key), dels));
    out.push(...elementStatements('add', t, slotsMap(v.key), adds));
    if (old === undefined) {
      out.push(
        `add element netdev ${t} ${vipsMap(v.family)} { ${vipElement({ ...v, protocol, port })} : jump ${v.key} }`,
      );
    }
    slotsChanged += changed;
    const action =
      old === undefined
        ? 'added'
        : changed > 0 || rulesReplaced || liveGone.length + liveNew.length > 0
          ? 'updated'
          : 'unchanged';
    reports.push({ vip: v.label, action, slotsChanged: changed, rulesReplaced });
  }

  for (const a of newAddresses) {
    if (oldAddresses.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    out.push(`add element netdev ${t} ${vipAddressesSet(Number(f) as IpFamily)} { ${hexToAddress(hex)} }`);
  }
  for (const old of base.vips.values()) {
    if (vips.has(old.key)) continue;
    out.push(`delete element netdev ${t} ${vipsMap(old.family)} { ${vipElement(old)} }`);
    out.push(`delete chain netdev ${t} ${old.key}`);
    out.push(`delete map netdev ${t} ${slotsMap(old.key)}`);
    out.push(`delete set netdev ${t} ${liveSet(old.key)}`);
    out.push(`delete counter netdev ${t} ${old.key}`);
    reports.push({ vip: old.label, action: 'removed', slotsChanged: old.slots.length, rulesReplaced: false });
    slotsChanged += old.slots.length;
  }
  for (const a of oldAddresses) {
    if (newAddresses.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    out.push(`delete element netdev ${t} ${vipAddressesSet(Number(f) as IpFamily)} { ${hexToAddress(hex)} }`);
  }

  let backendsRemoved = 0;
  for (const [identity, b] of base.backends) {
    if (backends.has(identity)) continue;
    backendsRemoved += 1;
    out.push(`delete element netdev ${t} ${BACKEND_COUNTERS} { ${b.id} }`);
    out.push(`delete element netdev ${t} ${backendsMap(b.family)} { ${b.id} }`);
    if (b.mac) out.push(`delete element netdev ${t} ${MACS} { ${b.id} }`);
    out.push(`delete counter netdev ${t} ${backendCounter(b.id)}`);
  }

  return {
    script: out.length === 0 ? '' : `${out.join('\n')}\n`,
    next: { layoutSignature: sig, vips, backends, maxBackendId: maxId },
    vips: reports,
    slotsChanged,
    backendsAdded,
    backendsRemoved,
    tableCreated,
  };
}
