/**
 * What the NAT table's model (nat-plan.ts) cannot see by itself, both from hand edits:
 *
 * - Orphans: a VIP's slot map, counter and source chain left in the table without its VIP chain (the natvips element,
 *   then the chain deleted by hand: the kernel refuses to delete a chain a jump still names). The skeleton read is
 *   built from the chains, so such a VIP reads as absent: written again as new, `add map` kept the old map and every
 *   slot element whose member differed was refused (`File exists`, the whole transaction, each apply and verify
 *   after); removed, its counter, map and served and address elements stayed (the counter reported as a VIP's).
 * - Elements missing from a listing: the listing after a write is verify's reference, so a write planned from a model
 *   older than a hand edit (an element deleted) made the edit the reference, and verify never repaired it.
 * - Strays: natvips, natserved, natsrc and nataddrs elements added by hand for what no VIP has (`nft add element inet T
 *   nataddrs4 { 198.51.100.9 }`: every packet to that address dropped by the node). The plan wrote the VIPs' own
 *   elements only, so neither a restart nor a verify deleted them, and the listing after the write kept them.
 */
import type { IpFamily, Protocol } from '@l4fleet/maglev';
import { hexToAddress, parseVipKey } from './names.js';
import { natAddressesSet, natServedSet, natSlotsMap, natSourceChain, natSourceMap, natVipsMap } from './nat-ruleset.js';

export interface NatOrphan {
  readonly key: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** `<key>_slots` is there. */
  readonly slots: boolean;
  readonly counter: boolean;
  /** `<key>_src` is there (its natsrc element may be). */
  readonly source: boolean;
}

const SLOTS = /^(v_[0-9a-f]+_(?:tcp|udp)_\d+)_slots$/;
const SOURCE = /^(v_[0-9a-f]+_(?:tcp|udp)_\d+)_src$/;

/** The per-VIP objects named in `maps`, `counters` and `chains` whose VIP has no chain, by VIP key. */
export function findNatOrphans(
  maps: ReadonlySet<string>,
  counters: ReadonlySet<string>,
  chains: ReadonlySet<string>,
): Map<string, NatOrphan> {
  const out = new Map<string, NatOrphan>();
  const mark = (key: string, what: 'slots' | 'counter' | 'source'): void => {
    const k = parseVipKey(key);
    if (k === undefined || chains.has(key)) return;
    const o = out.get(key) ?? { key, ...k, slots: false, counter: false, source: false };
    out.set(key, { ...o, [what]: true });
  };
  for (const m of maps) {
    const key = SLOTS.exec(m)?.[1];
    if (key !== undefined) mark(key, 'slots');
  }
  for (const c of counters) mark(c, 'counter');
  for (const c of chains) {
    const key = SOURCE.exec(c)?.[1];
    if (key !== undefined) mark(key, 'source');
  }
  return out;
}

const vipElement = (v: { addressHex: string; protocol: Protocol; port: number }): string =>
  `${hexToAddress(v.addressHex)} . ${v.protocol} . ${v.port}`;

/**
 * `add` then `delete` of an element: gone after, whether or not it was there (nft 1.0.6 has no `destroy`; `add` of an
 * element as it is keeps it, `delete` of one absent refuses the transaction). Only for a table whose elements were
 * not listed: `add` of a map key there with another value (a verdict changed by hand) refuses it too (File exists).
 */
export function removeElement(t: string, set: string, element: string): string[] {
  return [`add element ${t} ${set} { ${element} }`, `delete element ${t} ${set} { ${elementKey(element)} }`];
}

/** An element's key as nft prints it: `198.18.90.1 . tcp . 80` of `198.18.90.1 . tcp . 80 : jump v_…`. */
export const elementKey = (element: string): string => element.split(' : ')[0] as string;

/** Listed elements (listedElements) -> per set or map, the keys listed, whatever their value. */
export function listedKeys(listed: ReadonlyMap<string, ReadonlySet<string>>): Map<string, Set<string>> {
  return new Map([...listed].map(([name, elements]) => [name, new Set([...elements].map(elementKey))]));
}

/**
 * The elements a plan reads back, by set or map: `elements` as listed, `keys` with any value (listedKeys); undefined
 * when not listed (a skeleton read only).
 */
export interface Listed {
  readonly elements: ReadonlyMap<string, ReadonlySet<string>>;
  readonly keys: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * Statements removing `element` from `set` by its key, whatever its value: `delete` when the key is listed, nothing
 * when not; removeElement when nothing was listed.
 */
export function removeListed(t: string, set: string, element: string, listed: Listed | undefined): string[] {
  if (listed === undefined) return removeElement(t, set, element);
  const key = elementKey(element);
  return listed.keys.get(set)?.has(key) ? [`delete element ${t} ${set} { ${key} }`] : [];
}

/**
 * Statements adding `element` to `set`: the kernel cannot change an element's value and refuses `add` of a key there
 * with another (File exists, the whole transaction), so a key listed with another value (a verdict changed by hand)
 * is deleted first, in the same transaction.
 */
export function putListed(t: string, set: string, element: string, listed: Listed | undefined): string[] {
  const key = elementKey(element);
  const stale = listed?.keys.get(set)?.has(key) === true && listed.elements.get(set)?.has(element) !== true;
  return [...(stale ? [`delete element ${t} ${set} { ${key} }`] : []), `add element ${t} ${set} { ${element} }`];
}

/**
 * The statements deleting the orphans, first in the transaction (before a desired VIP's objects are added again): the
 * source element and chain, the slot map (with its elements, in one deletion), and, for a VIP not in `desired`, its
 * counter, served and natvips elements (a desired VIP's counter counts on: `add counter` keeps it). Their addresses are
 * returned for the plan to remove from the address set with the other stale ones.
 */
export function deleteNatOrphans(
  t: string,
  orphans: ReadonlyMap<string, NatOrphan>,
  desired: ReadonlySet<string>,
  listed?: Listed,
): string[] {
  const out: string[] = [];
  for (const o of orphans.values()) {
    if (o.source) {
      out.push(...removeListed(t, natSourceMap(o.family), `${vipElement(o)} : jump ${natSourceChain(o.key)}`, listed));
      out.push(`delete chain ${t} ${natSourceChain(o.key)}`);
    }
    if (o.slots) out.push(`delete map ${t} ${natSlotsMap(o.key)}`);
    if (desired.has(o.key)) continue;
    if (o.counter) out.push(`delete counter ${t} ${o.key}`);
    out.push(...removeListed(t, natServedSet(o.family), vipElement(o), listed));
    // Its natvips element, left with another verdict before the chain went (a jump to it would have kept the chain):
    // deleted by key when listed (a desired VIP's is replaced where it is written again).
    if (listed !== undefined) out.push(...removeListed(t, natVipsMap(o.family), vipElement(o), listed));
  }
  return out;
}

/**
 * Per set or map of a `nft -s list table` listing, its elements as printed (whitespace collapsed); a slot map's are not
 * split (up to 65,537 per VIP, only its presence is checked).
 */
export function listedElements(listing: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  let name: string | undefined;
  let text = '';
  for (const line of listing.split('\n')) {
    const open = /^\t(?:set|map) (\S+) \{$/.exec(line);
    if (open) {
      name = open[1] as string;
      text = '';
      out.set(name, new Set());
      continue;
    }
    if (name === undefined || name.endsWith('_slots')) continue;
    if (line === '\t}') {
      const body = /elements = \{([^}]*)\}/.exec(text)?.[1] ?? '';
      const set = out.get(name) as Set<string>;
      for (const e of body.split(',')) {
        const s = e.replace(/\s+/g, ' ').trim();
        if (s !== '') set.add(s);
      }
      name = undefined;
      continue;
    }
    text += ` ${line}`;
  }
  return out;
}

/** A VIP whose elements a listing is compared with; `sourceSignature` present: it has a source chain (natsrc). */
export interface ElementsOf {
  readonly key: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly sourceSignature?: string;
}

/** An element no VIP has: in `set`, its key as nft prints it, and the verdict of a map's. */
export interface NatStray {
  readonly set: string;
  readonly key: string;
  readonly value?: string;
}

/** As verify's messages name it (drift.ts names the netdev table's so): `the nataddrs4 element of 198.51.100.9 is not written`. */
export const strayText = (s: NatStray): string =>
  `the ${s.set} element of ${s.key}${s.value === undefined ? '' : ` (\`${s.value}\`)`} is not written`;

/**
 * The natvips, natserved, natsrc and nataddrs elements of `listed` (listedElements) whose key is none of `vips`' (any
 * value: one of a VIP's key with another is the plan's to replace); a natsrc key counts only for a VIP with a source
 * chain, since one without has no natsrc element and a verdict there (`drop`) would filter its connections.
 */
export function natStrays(listed: ReadonlyMap<string, ReadonlySet<string>>, vips: Iterable<ElementsOf>): NatStray[] {
  const known = new Map<string, Set<string>>();
  const know = (set: string, key: string): void => {
    known.set(set, (known.get(set) ?? new Set()).add(key));
  };
  for (const v of vips) {
    know(natVipsMap(v.family), vipElement(v));
    know(natServedSet(v.family), vipElement(v));
    know(natAddressesSet(v.family), hexToAddress(v.addressHex));
    if (v.sourceSignature !== undefined) know(natSourceMap(v.family), vipElement(v));
  }
  const out: NatStray[] = [];
  for (const f of [4, 6] as const) {
    for (const set of [natVipsMap(f), natServedSet(f), natSourceMap(f), natAddressesSet(f)]) {
      for (const e of listed.get(set) ?? []) {
        const [key, value] = e.split(' : ') as [string, string | undefined];
        if (!known.get(set)?.has(key)) out.push({ set, key, ...(value === undefined ? {} : { value }) });
      }
    }
  }
  return out;
}

/** Their deletions by key: first in the transaction, as one may jump to a chain the plan deletes (refused whole). */
export const deleteNatStrays = (t: string, strays: readonly NatStray[]): string[] =>
  strays.map((s) => `delete element ${t} ${s.set} { ${s.key} }`);

/**
 * How a listing after a write differs from the model `vips` (empty: it does not): what it lacks (missingFromListing)
 * and the elements no VIP has (natStrays). Either way it is no reference for verify.
 */
export function listingDiffers(listing: string, vips: Iterable<ElementsOf>): string[] {
  const all = [...vips];
  return [...missingFromListing(listing, all), ...natStrays(listedElements(listing), all).map(strayText)];
}

/**
 * What of the model `vips` the listing lacks (empty: nothing): each VIP's chain and slot map, its natvips, natserved
 * and nataddrs elements, and with source ranges its source chain and natsrc element.
 */
export function missingFromListing(listing: string, vips: Iterable<ElementsOf>): string[] {
  const elements = listedElements(listing);
  const chains = new Set([...listing.matchAll(/^\tchain (\S+) \{$/gm)].map((m) => m[1] as string));
  const missing: string[] = [];
  const need = (ok: boolean, what: string): void => {
    if (!ok) missing.push(what);
  };
  const has = (set: string, e: string): boolean => elements.get(set)?.has(e) ?? false;
  for (const v of vips) {
    const e = vipElement(v);
    need(chains.has(v.key), `chain ${v.key}`);
    need(elements.has(natSlotsMap(v.key)), `map ${natSlotsMap(v.key)}`);
    need(has(natVipsMap(v.family), `${e} : jump ${v.key}`), `${natVipsMap(v.family)} { ${e} }`);
    need(has(natServedSet(v.family), e), `${natServedSet(v.family)} { ${e} }`);
    const a = hexToAddress(v.addressHex);
    need(has(natAddressesSet(v.family), a), `${natAddressesSet(v.family)} { ${a} }`);
    if (v.sourceSignature !== undefined) {
      need(chains.has(natSourceChain(v.key)), `chain ${natSourceChain(v.key)}`);
      const s = `${e} : jump ${natSourceChain(v.key)}`;
      need(has(natSourceMap(v.family), s), `${natSourceMap(v.family)} { ${e} }`);
    }
  }
  return missing;
}
