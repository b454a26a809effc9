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
 * element as it is keeps it, `delete` of one absent refuses the transaction).
 */
export function removeElement(t: string, set: string, element: string): string[] {
  return [`add element ${t} ${set} { ${element} }`, `delete element ${t} ${set} { ${element.split(' : ')[0]} }`];
}

/**
 * The statements deleting the orphans, first in the transaction (before a desired VIP's objects are added again): the
 * source element and chain, the slot map (with its elements, in one deletion), and, for a VIP not in `desired`, its
 * counter and served element (a desired VIP's counter counts on: `add counter` keeps it). Their addresses are
 * returned for the plan to remove from the address set with the other stale ones.
 */
export function deleteNatOrphans(
  t: string,
  orphans: ReadonlyMap<string, NatOrphan>,
  desired: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  for (const o of orphans.values()) {
    if (o.source) {
      out.push(...removeElement(t, natSourceMap(o.family), `${vipElement(o)} : jump ${natSourceChain(o.key)}`));
      out.push(`delete chain ${t} ${natSourceChain(o.key)}`);
    }
    if (o.slots) out.push(`delete map ${t} ${natSlotsMap(o.key)}`);
    if (desired.has(o.key)) continue;
    if (o.counter) out.push(`delete counter ${t} ${o.key}`);
    out.push(...removeElement(t, natServedSet(o.family), vipElement(o)));
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

/**
 * What of the model `vips` the listing lacks (empty: nothing): each VIP's chain and slot map, its natvips, natserved
 * and nataddrs elements, and with source ranges its source chain and natsrc element.
 */
export function missingFromListing(
  listing: string,
  vips: Iterable<{
    key: string;
    family: IpFamily;
    addressHex: string;
    protocol: Protocol;
    port: number;
    sourceSignature?: string;
  }>,
): string[] {
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
