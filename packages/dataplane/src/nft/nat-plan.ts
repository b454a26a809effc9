/**
 * The delta between the NAT table (nat-ruleset.ts) and the desired NAT VIPs, as one nft script (one transaction).
 * Pure, so it is unit-tested without a kernel.
 *
 * Unlike the netdev table, nothing here holds flows: conntrack does, and keeps a connection's member and timeouts
 * whatever the ruleset becomes. So a table the driver did not write in this run (a restart) is adopted by rewriting
 * every VIP's rules and slot map once, not by reading 65,537 elements per VIP back; established connections are not
 * touched by that. The table is deleted only when no NAT VIP is left (its conntrack timeout objects go with it).
 * A VIP's source chain (sourceRanges) is read back with its signature, so the same ranges are not written again.
 */
import { type IpFamily, NO_BACKEND, type Protocol } from '@l4fleet/maglev';
import type { VipApplyReport } from '../types.js';
import type { NormalizedVip } from '../validate.js';
import { hexToAddress } from './names.js';
import { type NatBaseDrift, repairNatBase } from './nat-base.js';
import {
  deleteNatOrphans,
  deleteNatStrays,
  type Listed,
  listedKeys,
  type NatOrphan,
  natStrays,
  putListed,
  removeListed,
} from './nat-orphans.js';
import {
  NAT_ELEMENTS_PER_STATEMENT,
  natAddressesSet,
  natBaseTable,
  natLayoutSignature,
  natServedSet,
  natServedUpgrade,
  natSlotsMap,
  natSourceChain,
  natSourceMap,
  natSourceRule,
  natSourceSignature,
  natSourceUpgrade,
  natVipRules,
  natVipSignature,
  natVipsMap,
  timeoutName,
  timeoutObject,
} from './nat-ruleset.js';
import { sourceFilterOf } from './source-ranges.js';

export interface NatVipState {
  readonly key: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly label: string;
  /** natVipSignature() of the rules written; '' when unknown (adopted table: rules are rewritten). */
  readonly signature: string;
  /** Per slot the member as nft writes it (`198.18.0.21 . 8443`), '' for no member; empty when unknown. */
  readonly slots: readonly string[];
  /**
   * natSourceSignature() of the VIP's source chain ('' when unreadable: rewritten); absent when it has none (no
   * sourceRanges). Read back after a restart, so the same ranges are not written again.
   */
  readonly sourceSignature?: string;
}

/** What the driver believes the NAT table holds; `adopted`: read as names only (after a restart). */
export interface NatState {
  readonly vips: ReadonlyMap<string, NatVipState>;
  readonly timeouts: ReadonlySet<string>;
  readonly layoutSignature: string;
  /** The table has the source filter (natSourceUpgrade): tables written before sourceRanges existed have not. */
  readonly sourceChain: boolean;
  /**
   * The table has the served filter (natServedUpgrade), whose set then holds every VIP of `vips`: tables written
   * before it existed have not.
   */
  readonly servedChain: boolean;
  /** A skeleton read's VIP objects left without their VIP chain (nat-orphans.ts), by VIP key. Absent: none. */
  readonly orphans?: ReadonlyMap<string, NatOrphan>;
  /**
   * The natvips, natserved, nataddrs and natsrc elements a full read listed (set or map name -> elements as nft prints
   * them; a name absent: none), for the adopted VIPs' elements deleted by hand to be added again. Absent: not read,
   * taken as written.
   */
  readonly elements?: ReadonlyMap<string, ReadonlySet<string>>;
  /** A read's base chains and objects that differ from what a new table holds (nat-base.ts). Absent: none. */
  readonly base?: NatBaseDrift;
}

export interface NatPlan {
  /** nft script lines; empty when the kernel already matches. */
  readonly lines: readonly string[];
  /** null: no NAT table (none desired). */
  readonly next: NatState | null;
  readonly vips: readonly VipApplyReport[];
  readonly slotsChanged: number;
  readonly tableCreated: boolean;
}

const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');

const vipElement = (v: { addressHex: string; protocol: Protocol; port: number }): string =>
  `${hexToAddress(v.addressHex)} . ${v.protocol} . ${v.port}`;

function memberText(address: string, port: number): string {
  return `${address} . ${port}`;
}

/** Slot -> member text, from the Maglev table. */
function slotMembers(v: NormalizedVip): string[] {
  const members = v.backends.map((b) => memberText(hexToAddress(b.addressHex), b.port));
  return Array.from(v.table.slots, (i) => (i === NO_BACKEND ? '' : (members[i] as string)));
}

function addElements(out: string[], prefix: string, items: string[]): void {
  for (let i = 0; i < items.length; i += NAT_ELEMENTS_PER_STATEMENT) {
    out.push(`${prefix} { ${items.slice(i, i + NAT_ELEMENTS_PER_STATEMENT).join(', ')} }`);
  }
}

/** The delta from `current` (null: no table) to `desired` (NAT VIPs only, validated). */
export function planNat(current: NatState | null, desired: readonly NormalizedVip[], table: string): NatPlan {
  const out: string[] = [];
  const t = `inet ${table}`;
  if (desired.length === 0) {
    if (current === null) return { lines: [], next: null, vips: [], slotsChanged: 0, tableCreated: false };
    const vips = [...current.vips.values()].map(
      (v): VipApplyReport => ({ vip: v.label, action: 'removed', slotsChanged: v.slots.length, rulesReplaced: false }),
    );
    return {
      lines: [`delete table ${t}`],
      next: null,
      vips,
      slotsChanged: vips.reduce((n, v) => n + v.slotsChanged, 0),
      tableCreated: false,
    };
  }
  const tableCreated = current === null || current.layoutSignature !== natLayoutSignature();
  // The elements read back (the key of an element whose value was changed by hand is there, its element is not).
  const elements = tableCreated ? undefined : current.elements;
  const listed: Listed | undefined = elements === undefined ? undefined : { elements, keys: listedKeys(elements) };
  if (tableCreated) {
    if (current !== null) out.push(`delete table ${t}`);
    out.push(natBaseTable(table));
  } else {
    // Base objects and chains deleted or edited by hand (nat-base.ts): written again before the VIPs' parts.
    out.push(...repairNatBase(table, current.base));
    if (!current.sourceChain) out.push(natSourceUpgrade(table));
    if (!current.servedChain) out.push(natServedUpgrade(table));
    // Elements added by hand for what no VIP has (nat-orphans.ts natStrays): deleted first, one may jump to a chain
    // deleted below. An adopted VIP's, an orphan's and a desired VIP's keys are the plan's to keep, replace or delete.
    if (listed !== undefined) {
      const orphans = [...(current.orphans?.values() ?? [])].map((o) => ({
        ...o,
        ...(o.source ? { sourceSignature: '' } : {}),
      }));
      const wanted = desired.map(({ key, family, addressHex, table: { vip } }) => ({
        key,
        family,
        addressHex,
        protocol: vip.protocol,
        port: vip.port,
      }));
      const strays = natStrays(listed.elements, [...current.vips.values(), ...orphans, ...wanted]);
      out.push(...deleteNatStrays(t, strays));
    }
    // Objects of a VIP whose chain was deleted by hand: gone before a desired VIP's are added again.
    out.push(...deleteNatOrphans(t, current.orphans ?? new Map(), new Set(desired.map((v) => v.key)), listed));
  }
  const base: NatState = tableCreated
    ? {
        vips: new Map(),
        timeouts: new Set(),
        layoutSignature: natLayoutSignature(),
        sourceChain: true,
        servedChain: true,
      }
    : current;
  // The served set's elements as written: none in a table the served filter is being added to. An adopted VIP's (read
  // as names only, signature '') may have been deleted by hand: written again, as its other elements are.
  const wasServed = (key: string): boolean => base.servedChain && base.vips.has(key);
  const adopted = (key: string): boolean => base.vips.get(key)?.signature === '';
  const lacks = (key: string, set: string, element: string): boolean =>
    adopted(key) && listed !== undefined && !(listed.elements.get(set)?.has(element) ?? false);
  const timeouts = new Set(base.timeouts);
  const vips = new Map<string, NatVipState>();
  const reports: VipApplyReport[] = [];
  let slotsChanged = 0;

  for (const v of desired) {
    const { protocol, port } = v.table.vip;
    const timeout = timeoutName(v.family, protocol, v.profile);
    if (!timeouts.has(timeout)) {
      // Kept after their last VIP leaves: connections made under a timeout object keep using it (0012).
      out.push(`add ct timeout ${t} ${timeout} ${timeoutObject(v.family, protocol, v.profile)}`);
      timeouts.add(timeout);
    }
    const shape = {
      key: v.key,
      family: v.family,
      protocol,
      hash: v.table.hash,
      seed: v.table.seed,
      size: v.table.slots.length,
      timeout,
      onTimeout: v.profile.onTimeout,
      ...(v.table.draining ? { draining: true } : {}),
    };
    const signature = natVipSignature(shape);
    const slots = slotMembers(v);
    const old = base.vips.get(v.key);
    const slotsMap = `${t} ${natSlotsMap(v.key)}`;
    const rulesReplaced = old === undefined || old.signature !== signature;
    if (old === undefined || old.signature === '') {
      // `add` keeps an object that is there: an adopted VIP's counter or map deleted by hand is written again, before
      // its rules name them.
      out.push(`add counter ${t} ${v.key}`);
      out.push(`add map ${slotsMap} { type mark : ${addrType(v.family)} . inet_service; }`);
    }
    if (old === undefined) {
      // Emptied, in case a model older than the kernel (no read since the last write) misses a leftover map.
      if (!tableCreated) out.push(`flush map ${slotsMap}`);
      out.push(`add chain ${t} ${v.key}`);
    } else if (rulesReplaced) {
      out.push(`flush chain ${t} ${v.key}`);
    }
    if (rulesReplaced) for (const r of natVipRules(shape)) out.push(`add rule ${t} ${v.key} ${r}`);

    let changed = 0;
    if (old !== undefined && old.slots.length === slots.length) {
      const dels: string[] = [];
      const adds: string[] = [];
      for (let s = 0; s < slots.length; s++) {
        if (old.slots[s] === slots[s]) continue;
        changed += 1;
        if (old.slots[s] !== '') dels.push(String(s));
        if (slots[s] !== '') adds.push(`${s} : ${slots[s]}`);
      }
      // The kernel cannot change an element's value: delete, then add, in the same transaction.
      addElements(out, `delete element ${slotsMap}`, dels);
      addElements(out, `add element ${slotsMap}`, adds);
    } else {
      if (old !== undefined) out.push(`flush map ${slotsMap}`);
      const adds: string[] = [];
      slots.forEach((m, s) => {
        if (m !== '') adds.push(`${s} : ${m}`);
      });
      addElements(out, `add element ${slotsMap}`, adds);
      changed = slots.length;
    }
    const element = vipElement({ ...v, protocol, port });
    if (old === undefined || lacks(v.key, natVipsMap(v.family), `${element} : jump ${v.key}`)) {
      // Its key may be there with another verdict (changed by hand): deleted first (putListed).
      out.push(...putListed(t, natVipsMap(v.family), `${element} : jump ${v.key}`, listed));
    }
    if (!wasServed(v.key) || lacks(v.key, natServedSet(v.family), element))
      out.push(`add element ${t} ${natServedSet(v.family)} { ${element} }`);
    // The source filter, in a chain of its own (the raw hook's, see nat-ruleset.ts): rewritten when the ranges change.
    const source = sourceFilterOf(v);
    const sourceSignature = source === undefined ? undefined : natSourceSignature(source);
    const sourceChanged = sourceSignature !== old?.sourceSignature;
    if (sourceChanged) {
      const srcChain = `${t} ${natSourceChain(v.key)}`;
      const srcElement = `${t} ${natSourceMap(v.family)} { ${vipElement({ ...v, protocol, port })}`;
      if (source === undefined) {
        if (adopted(v.key)) {
          const e = `${vipElement({ ...v, protocol, port })} : jump ${natSourceChain(v.key)}`;
          out.push(...removeListed(t, natSourceMap(v.family), e, listed), `delete chain ${srcChain}`);
        } else out.push(`delete element ${srcElement} }`, `delete chain ${srcChain}`);
      } else if (old?.sourceSignature === undefined) {
        out.push(`add chain ${srcChain}`, `add rule ${srcChain} ${natSourceRule(v.family, source)}`);
        out.push(`add element ${srcElement} : jump ${natSourceChain(v.key)} }`);
      } else {
        out.push(`flush chain ${srcChain}`, `add rule ${srcChain} ${natSourceRule(v.family, source)}`);
      }
    }
    const srcJump = `${element} : jump ${natSourceChain(v.key)}`;
    if (source !== undefined && old?.sourceSignature !== undefined && lacks(v.key, natSourceMap(v.family), srcJump)) {
      // The chain read back, its element not (deleted by hand): sourceRanges were not enforced.
      out.push(...putListed(t, natSourceMap(v.family), srcJump, listed));
    }
    vips.set(v.key, {
      key: v.key,
      family: v.family,
      addressHex: v.addressHex,
      protocol,
      port,
      label: v.label,
      signature,
      slots,
      ...(sourceSignature === undefined ? {} : { sourceSignature }),
    });
    slotsChanged += changed;
    const replaced = rulesReplaced || sourceChanged;
    const action = old === undefined ? 'added' : changed > 0 || replaced ? 'updated' : 'unchanged';
    reports.push({ vip: v.label, action, slotsChanged: changed, rulesReplaced: replaced });
  }

  const addresses = (s: Iterable<{ family: IpFamily; addressHex: string }>): Set<string> =>
    new Set([...s].map((v) => `${v.family}|${v.addressHex}`));
  const oldAddresses = addresses(base.vips.values());
  const newAddresses = addresses(vips.values());
  // Addresses whose element may be missing or left by hand: an adopted VIP's, an orphan's.
  const unsure = addresses([...base.vips.values()].filter((v) => v.signature === ''));
  const orphanAddresses = addresses(tableCreated ? [] : (current?.orphans?.values() ?? []));
  for (const a of newAddresses) {
    const [f, hex] = a.split('|') as [string, string];
    const set = natAddressesSet(Number(f) as IpFamily);
    const lost = unsure.has(a) && listed !== undefined && !(listed.elements.get(set)?.has(hexToAddress(hex)) ?? false);
    if (oldAddresses.has(a) && !lost) continue;
    out.push(`add element ${t} ${set} { ${hexToAddress(hex)} }`);
  }
  for (const old of base.vips.values()) {
    if (vips.has(old.key)) continue;
    // An adopted VIP's elements may have been deleted or changed by hand: removed by key, whatever their value, when
    // listed; whether there or not when not (nat-orphans.ts).
    const del = (set: string, element: string): string[] =>
      old.signature === ''
        ? removeListed(t, set, element, listed)
        : [`delete element ${t} ${set} { ${element.split(' : ')[0]} }`];
    if (old.sourceSignature !== undefined) {
      out.push(...del(natSourceMap(old.family), `${vipElement(old)} : jump ${natSourceChain(old.key)}`));
      out.push(`delete chain ${t} ${natSourceChain(old.key)}`);
    }
    // Removed from the served set: the connections it has open drop from their next packet (nat-ruleset.ts).
    if (wasServed(old.key)) out.push(...del(natServedSet(old.family), vipElement(old)));
    out.push(...del(natVipsMap(old.family), `${vipElement(old)} : jump ${old.key}`));
    if (old.signature === '') {
      // Deleted whether there or not: `add` keeps them if they are.
      out.push(`add counter ${t} ${old.key}`);
      out.push(`add map ${t} ${natSlotsMap(old.key)} { type mark : ${addrType(old.family)} . inet_service; }`);
    }
    out.push(`delete chain ${t} ${old.key}`);
    out.push(`delete map ${t} ${natSlotsMap(old.key)}`);
    out.push(`delete counter ${t} ${old.key}`);
    reports.push({ vip: old.label, action: 'removed', slotsChanged: old.slots.length, rulesReplaced: false });
    slotsChanged += old.slots.length;
  }
  for (const a of new Set([...oldAddresses, ...orphanAddresses])) {
    if (newAddresses.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    const set = natAddressesSet(Number(f) as IpFamily);
    if (unsure.has(a) || !oldAddresses.has(a)) out.push(...removeListed(t, set, hexToAddress(hex), listed));
    else out.push(`delete element ${t} ${set} { ${hexToAddress(hex)} }`);
  }
  return {
    lines: out,
    next: { vips, timeouts, layoutSignature: natLayoutSignature(), sourceChain: true, servedChain: true },
    vips: reports,
    slotsChanged,
    tableCreated,
  };
}
