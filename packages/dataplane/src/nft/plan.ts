/**
 * The delta between what the kernel holds and the desired state, as one transaction (the kernel applies
 * all of it or none of it), rendered as nft text or l4fleet-nft-batch requests (ops.ts). Pure, so it is
 * unit-tested without a kernel.
 *
 * Slot maps change element by element: recreating a map or the table would empty the flow maps and
 * move established flows (the affinity Maglev §3.3 keeps). A backend id is never given to another
 * backend, so a flow map entry can never point at a different backend than the one it was made for.
 */
import type { IpFamily, Protocol } from '@l4fleet/maglev';
import type { VipApplyReport } from '../types.js';
import type { NormalizedBackend, NormalizedVip } from '../validate.js';
import { baseObjects } from './base-objects.js';
import { echoAddress, echoObjectsAdded, planEcho } from './echo.js';
import {
  backendIdentity,
  deleteStrays,
  type KernelBackend,
  type KernelState,
  type KernelVip,
  RETIRED_MAX,
  sameRules,
} from './kernel-state.js';
import { deleteLeftovers, type WithLeftovers, type WithMissing } from './leftovers.js';
import {
  BACKEND_COUNTERS,
  BACKEND_ID_BIT,
  BASE_CHAIN,
  backendCounter,
  backendsMap,
  DROP_FRAGMENT,
  DROP_SOURCE,
  echoMap,
  hexToAddress,
  ICMP_ECHO,
  liveSet,
  MACS,
  overlayMap,
  slotsMap,
  vipAddressesSet,
  vipsMap,
} from './names.js';
import type { ElementValue, Op } from './ops.js';
import { listingKept, ownChainsReplaced, rewriteBaseChains, rewriteEchoChains } from './own-chains.js';
import { baseTable, type Layout, layoutSignature, type VipShape, vipRules, vipSignature } from './ruleset.js';
import { diffSlots, fillBase, toBackendIds } from './slot-delta.js';
import { sourceFilterOf } from './source-ranges.js';

export { backendIdentity, type KernelBackend, type KernelState, type KernelVip, RETIRED_MAX } from './kernel-state.js';

export interface Plan {
  /**
   * The changes, in transaction order; empty when the kernel already matches. renderNft() writes them as
   * one nft script; renderBatch() as l4fleet-nft-batch requests when every change is an element or
   * counter change (the steady state: backends join, leave, change health).
   */
  readonly ops: readonly Op[];
  readonly next: KernelState;
  readonly vips: readonly VipApplyReport[];
  readonly slotsChanged: number;
  readonly backendsAdded: number;
  readonly backendsRemoved: number;
  readonly tableCreated: boolean;
}

const element = (verb: 'add' | 'delete', set: string, key: number, value?: ElementValue): Op =>
  value === undefined ? { kind: 'element', verb, set, key } : { kind: 'element', verb, set, key, value };

const vipElement = (v: { addressHex: string; protocol: Protocol; port: number }): string =>
  `${hexToAddress(v.addressHex)} . ${v.protocol} . ${v.port}`;

/**
 * `echoAddresses`: the addresses (`family|hex`, echoAddress()) whose pings the table answers: every VIP address of the
 * driver, NAT ones too (echo.ts); default: those of `desired`. `retain`: keys of VIPs in `current` but not in
 * `desired` that stay in the table as they are (with their backends and address), for now: a VIP moving to the NAT
 * table keeps forwarding here until that table holds it (the driver removes it in a second plan).
 */
export function planApply(
  current: (KernelState & WithLeftovers) | null,
  desired: readonly NormalizedVip[],
  layout: Layout,
  echoAddresses: ReadonlySet<string> = new Set(desired.map((v) => echoAddress(v.family, v.addressHex))),
  retain: ReadonlySet<string> = new Set(),
): Plan {
  const t = layout.table;
  const out: Op[] = [];
  const nft = (text: string): void => {
    out.push({ kind: 'nft', text });
  };
  const sig = layoutSignature(layout);
  const tableCreated = current === null || current.layoutSignature !== sig;
  // Own chains with a rule replaced by hand (own-chains.ts): ingress and forward written again as those with another
  // number of rules are, an echo chain that stays has its rule written again.
  const replaced =
    current === null || tableCreated
      ? { base: new Set<string>(), echo: new Set<string>() }
      : ownChainsReplaced(current, layout);
  const baseDiffer = new Set([...(current?.baseChainsDiffer ?? []), ...replaced.base]);
  if (tableCreated) {
    // A table in an older layout (or for another interface) is replaced in the same transaction.
    if (current !== null) nft(`delete table netdev ${t}`);
    nft(baseTable(layout));
  } else {
    // Base objects deleted by hand (base-objects.ts): declared again before a rule names them, but those the upgrades
    // below add (a table from before them lacks them too).
    const upgrades = new Set([
      ...(current?.dropSourceCounter === true ? [] : [DROP_SOURCE]),
      ...(current?.echoAddresses === undefined ? [ICMP_ECHO, echoMap(4), echoMap(6), DROP_FRAGMENT] : []),
      ...(baseDiffer.has(BASE_CHAIN) ? [DROP_FRAGMENT] : []),
    ]);
    const declared = baseObjects(layout);
    for (const name of current?.baseMissing ?? []) if (!upgrades.has(name)) nft(declared.get(name) as string);
    if (current?.dropSourceCounter !== true) {
      // `add` leaves an existing counter alone, so a wrong guess here costs nothing.
      nft(`add counter netdev ${t} ${DROP_SOURCE}`);
    }
    if (current?.echoAddresses === undefined) {
      // A table from before the echo maps: they are added, and the ingress chain's rules written again in the order a
      // new table has (in the same transaction: no packet sees the chain half written). The flow maps stay.
      for (const text of echoObjectsAdded(t)) nft(text);
    }
    // Flushed, edited or upgraded: written again whole, in the same transaction (own-chains.ts).
    for (const text of rewriteBaseChains(layout, current?.echoAddresses === undefined, baseDiffer)) nft(text);
    // Objects of a VIP whose chain was deleted by hand (leftovers.ts): gone before a desired VIP's are added again.
    const leftovers = current?.leftovers ?? new Map();
    for (const text of deleteLeftovers(t, leftovers, new Set(desired.map((v) => v.key)))) nft(text);
  }
  const base: KernelState = tableCreated
    ? { layoutSignature: sig, vips: new Map(), backends: new Map(), maxBackendId: current?.maxBackendId ?? 0 }
    : (current as KernelState);

  // Backends: existing ids are kept, returning ones get their old id, new ones a fresh id.
  const backends = new Map<string, KernelBackend>();
  const retired = new Map(current?.retired ?? []);
  // A retired backend's elements are in the kernel unless the table is new (then every returning one is added whole).
  const retiredInKernel = !tableCreated;
  let maxId = base.maxBackendId;
  let backendsAdded = 0;
  // Grouped by set (counters first: the counter map references them), so each set's elements travel in
  // one statement or netlink message however many backends change.
  const addCounters: Op[] = [];
  const addBackend: Op[] = [];
  const addCounterRefs: Op[] = [];
  const addMacs: Op[] = [];
  for (const v of desired) {
    for (const b of v.backends) {
      const identity = backendIdentity(b.addressHex, b.mac);
      if (backends.has(identity)) continue;
      const known = base.backends.get(identity);
      if (known) {
        backends.set(identity, known);
        continue;
      }
      const reused = retired.get(identity)?.id;
      retired.delete(identity);
      if (reused === undefined) maxId += 1;
      const id = reused ?? (BACKEND_ID_BIT | maxId) >>> 0;
      backends.set(identity, { id, family: v.family, addressHex: b.addressHex, ...(b.mac ? { mac: b.mac } : {}) });
      backendsAdded += 1;
      addCounters.push({ kind: 'counter', verb: 'add', name: backendCounter(id) });
      if (reused === undefined || !retiredInKernel) {
        addBackend.push(element('add', backendsMap(v.family), id, { address: b.addressHex }));
        if (b.mac) addMacs.push(element('add', MACS, id, { mac: b.mac }));
      }
      addCounterRefs.push(element('add', BACKEND_COUNTERS, id, { counter: backendCounter(id) }));
    }
  }
  // Retained VIPs keep their backends: their slots, overlay and live set still name those ids.
  const kept = [...base.vips.values()].filter((v) => retain.has(v.key) && !desired.some((d) => d.key === v.key));
  const keptIds = new Set<number>();
  for (const v of kept) for (const a of [v.base, v.overlay, v.live]) for (const id of a) keptIds.add(id);
  for (const [identity, b] of base.backends)
    if (keptIds.has(b.id) && !backends.has(identity)) backends.set(identity, b);
  // A new table holds only what this apply writes: the retired backends that did not come back have no element in it,
  // so they are forgotten. Kept, one that came back later would get its old id and no backends4/backends6 element, and
  // its share of new flows would be dropped (drop_no_backend). No flow remembers an old id: the flow maps are new too.
  if (tableCreated) retired.clear();
  const byFamily = (ops: Op[]): Op[] =>
    [...ops].sort((a, b) => (a.kind === 'element' && b.kind === 'element' ? a.set.localeCompare(b.set) : 0));
  out.push(...addCounters, ...byFamily(addBackend), ...addCounterRefs, ...addMacs);

  const reports: VipApplyReport[] = [];
  const vips = new Map<string, KernelVip>();
  let slotsChanged = 0;
  const addresses = (s: Iterable<{ family: IpFamily; addressHex: string }>): Set<string> =>
    new Set([...s].map((v) => echoAddress(v.family, v.addressHex)));
  const oldAddresses = tableCreated ? new Set<string>() : (base.vipAddresses ?? addresses(base.vips.values()));
  const newAddresses = addresses([...desired, ...kept]);
  // Keys with a `vips4`/`vips6` element, whatever its verdict (KernelState.routed); a new table has none.
  const routed = (key: string): boolean =>
    !tableCreated && (base.routed?.has(key) ?? (base.vips.has(key) && base.vips.get(key)?.jumpMissing !== true));
  // Elements added by hand for keys and addresses no VIP has (deleteStrays): first, as one may name a chain deleted.
  if (!tableCreated) for (const text of deleteStrays(t, base, new Set(desired.map((v) => v.key)))) nft(text);

  for (const v of desired) {
    const { protocol, port } = v.table.vip;
    // The flow-affinity timeout of this VIP: its profile's idle timeout; without one, the driver's (design note 0012).
    const idle = v.table.profile === undefined ? undefined : v.profile.idleTimeoutS;
    const source = sourceFilterOf(v);
    const shape: VipShape = {
      key: v.key,
      family: v.family,
      protocol,
      hash: v.table.hash,
      seed: v.table.seed,
      size: v.table.slots.length,
      ...(v.table.onMemberDown === 'reselect' ? { reselect: true } : {}),
      ...(idle === undefined || idle === (protocol === 'tcp' ? layout.flowTimeoutTcpS : layout.flowTimeoutUdpS)
        ? {}
        : { idleTimeoutS: idle }),
      ...(source === undefined ? {} : { source }),
      ...(v.table.draining ? { draining: true } : {}),
    };
    const signature = vipSignature(shape);
    const ids = Uint32Array.from(
      v.backends,
      (b) => (backends.get(backendIdentity(b.addressHex, b.mac)) as KernelBackend).id,
    );
    const slots = toBackendIds(v.table.slots, ids);
    // Live: the pool's backends whose remembered flows stay (a down one of a `reselect` VIP is not live).
    const live = new Set([...ids].filter((_, i) => (v.backends[i] as NormalizedBackend).keepsFlows));
    const old: (KernelVip & WithMissing) | undefined = base.vips.get(v.key);
    const sameSize = old !== undefined && old.base.length === slots.length;
    // The overlay is sized to the table (a fixed hash: adds at about half the cost of a growing one).
    const overlayDecl = `{ type mark : mark; size ${slots.length}; }`;

    const rules = vipRules(shape, layout);
    // The signature is one rule's comment: a chain with a rule deleted or added by hand keeps it, not its number; one
    // replaced by hand keeps both, not its listing (read back: readListing).
    const rulesReplaced =
      old === undefined ||
      old.signature !== signature ||
      (old.rules !== undefined && old.rules !== rules.length) ||
      (old.readListing !== undefined && !sameRules(old.readListing, rules));
    if (old === undefined) {
      nft(`add counter netdev ${t} ${v.key}`);
      nft(`add map netdev ${t} ${slotsMap(v.key)} { type mark : mark; }`);
      nft(`add map netdev ${t} ${overlayMap(v.key)} ${overlayDecl}`);
      nft(`add set netdev ${t} ${liveSet(v.key)} { type mark; }`);
      if (!tableCreated) {
        // `add` keeps an existing map, and its elements: emptied, in case a model older than the kernel (no read since
        // the last write) misses leftovers. Empty already otherwise, so this costs nothing.
        nft(`flush map netdev ${t} ${slotsMap(v.key)}`);
        nft(`flush map netdev ${t} ${overlayMap(v.key)}`);
        nft(`flush set netdev ${t} ${liveSet(v.key)}`);
      }
      nft(`add chain netdev ${t} ${v.key}`);
    } else if (rulesReplaced) {
      nft(`flush chain netdev ${t} ${v.key}`);
      // Deleted by hand after a flush of the chain (WithMissing; read without rules or slots): added before the rules
      // name them. Only those: the VIP's counter counts on, and the overlay is declared with a size (replaced below).
      const missing = old.missing ?? new Set<string>();
      if (missing.has(v.key)) nft(`add counter netdev ${t} ${v.key}`);
      if (missing.has(slotsMap(v.key))) nft(`add map netdev ${t} ${slotsMap(v.key)} { type mark : mark; }`);
      if (missing.has(liveSet(v.key))) nft(`add set netdev ${t} ${liveSet(v.key)} { type mark; }`);
      if (!sameSize || missing.has(overlayMap(v.key))) {
        // No rule refers to the overlay once the chain is flushed: replace it by one of the new size.
        if (!missing.has(overlayMap(v.key))) nft(`delete map netdev ${t} ${overlayMap(v.key)}`);
        nft(`add map netdev ${t} ${overlayMap(v.key)} ${overlayDecl}`);
      }
    }
    if (rulesReplaced) for (const r of rules) nft(`add rule netdev ${t} ${v.key} ${r}`);

    // Live set: a flow whose backend is not in it (left the pool, or down under `reselect`) is hashed again.
    const oldLive = old?.live ?? new Set<number>();
    const liveGone = [...oldLive].filter((id) => !live.has(id));
    const liveNew = [...live].filter((id) => !oldLive.has(id));
    for (const id of liveGone) out.push(element('delete', liveSet(v.key), id));
    for (const id of liveNew) out.push(element('add', liveSet(v.key), id));

    // Slots: a new VIP or size fills the slot map; otherwise the changed slots go to the overlay.
    let changed: number;
    let kept: Pick<KernelVip, 'base' | 'overlay' | 'overlayCount'>;
    if (sameSize) {
      const d = diffSlots(overlayMap(v.key), old, slots, out);
      changed = d.changed;
      kept = { base: old.base, overlay: d.overlay, overlayCount: d.overlayCount };
    } else {
      if (old !== undefined) nft(`flush map netdev ${t} ${slotsMap(v.key)}`);
      fillBase(slotsMap(v.key), slots, out);
      changed = slots.length;
      kept = { base: slots, overlay: new Uint32Array(slots.length), overlayCount: 0 };
    }
    vips.set(v.key, {
      key: v.key,
      family: v.family,
      addressHex: v.addressHex,
      protocol,
      port,
      signature,
      rules: rules.length,
      ...kept,
      live,
      label: v.label,
      ...(rulesReplaced || old?.listed === undefined ? {} : { listed: old.listed }),
    });
    if (old === undefined || old.jumpMissing) {
      const e = vipElement({ ...v, protocol, port });
      // An element of this key with another verdict (rewritten by hand): the add alone would be refused, File exists.
      if (routed(v.key)) nft(`delete element netdev ${t} ${vipsMap(v.family)} { ${e} }`);
      nft(`add element netdev ${t} ${vipsMap(v.family)} { ${e} : jump ${v.key} }`);
    }
    slotsChanged += changed;
    const action =
      old === undefined
        ? 'added'
        : changed > 0 || rulesReplaced || liveGone.length + liveNew.length > 0 || old.jumpMissing
          ? 'updated'
          : 'unchanged';
    reports.push({ vip: v.label, action, slotsChanged: changed, rulesReplaced });
  }

  for (const a of newAddresses) {
    if (oldAddresses.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    nft(`add element netdev ${t} ${vipAddressesSet(Number(f) as IpFamily)} { ${hexToAddress(hex)} }`);
  }
  for (const v of kept) vips.set(v.key, v);
  for (const old of base.vips.values() as Iterable<KernelVip & WithMissing>) {
    if (vips.has(old.key)) continue;
    // By key, whatever its verdict; none there (deleted by hand): no delete, which would fail the transaction.
    if (routed(old.key)) nft(`delete element netdev ${t} ${vipsMap(old.family)} { ${vipElement(old)} }`);
    nft(`delete chain netdev ${t} ${old.key}`);
    // An object deleted by hand is not deleted again: the kernel would refuse the whole transaction.
    const there = (name: string): boolean => old.missing?.has(name) !== true;
    if (there(slotsMap(old.key))) nft(`delete map netdev ${t} ${slotsMap(old.key)}`);
    if (there(overlayMap(old.key))) nft(`delete map netdev ${t} ${overlayMap(old.key)}`);
    if (there(liveSet(old.key))) nft(`delete set netdev ${t} ${liveSet(old.key)}`);
    if (there(old.key)) nft(`delete counter netdev ${t} ${old.key}`);
    reports.push({ vip: old.label, action: 'removed', slotsChanged: old.base.length, rulesReplaced: false });
    slotsChanged += old.base.length;
  }
  for (const a of oldAddresses) {
    if (newAddresses.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    nft(`delete element netdev ${t} ${vipAddressesSet(Number(f) as IpFamily)} { ${hexToAddress(hex)} }`);
  }
  // A new table, or one from before the echo maps (upgraded above), holds no echo chain yet.
  const echoInKernel = tableCreated ? new Set<string>() : (current?.echoAddresses ?? new Set<string>());
  const echoUnmapped = tableCreated ? new Set<string>() : (current?.echoUnmapped ?? new Set<string>());
  out.push(...planEcho(t, echoInKernel, echoAddresses, layout, echoUnmapped));
  const echoReplaced = [...replaced.echo].filter((a) => echoAddresses.has(a));
  for (const text of rewriteEchoChains(t, echoReplaced, layout)) nft(text);

  // A backend that left loses its counter (the mark of a retired one) and keeps its address and MAC elements.
  let backendsRemoved = 0;
  const gone = [...base.backends].filter(([identity]) => !backends.has(identity)).map(([, b]) => b);
  for (const b of gone) out.push(element('delete', BACKEND_COUNTERS, b.id));
  for (const b of gone) {
    backendsRemoved += 1;
    out.push({ kind: 'counter', verb: 'delete', name: backendCounter(b.id) });
    retired.set(backendIdentity(b.addressHex, b.mac), b);
  }
  // Past the limit the oldest are forgotten, except the highest id: after a restart it is where new ids continue.
  const topId = (BACKEND_ID_BIT | maxId) >>> 0;
  const forgotten: KernelBackend[] = [];
  for (const [identity, b] of retired) {
    if (retired.size <= RETIRED_MAX) break;
    if (b.id === topId) continue;
    retired.delete(identity);
    if (retiredInKernel) forgotten.push(b);
  }
  for (const b of forgotten.sort((x, y) => x.family - y.family))
    out.push(element('delete', backendsMap(b.family), b.id));
  for (const b of forgotten) if (b.mac) out.push(element('delete', MACS, b.id));

  return {
    ops: out,
    next: {
      layoutSignature: sig,
      vips,
      backends,
      maxBackendId: maxId,
      retired,
      dropSourceCounter: true,
      echoAddresses: new Set(echoAddresses),
      vipAddresses: newAddresses,
      // Verify's reference for the own chains this plan leaves as they are (drift.ts withListing lists the others).
      ...(tableCreated ? {} : { listed: listingKept(base, echoAddresses, baseDiffer, echoReplaced) }),
    },
    vips: reports,
    slotsChanged,
    backendsAdded,
    backendsRemoved,
    tableCreated,
  };
}
