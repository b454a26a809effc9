/** Pure planning: what to add and remove so that what gobgpd holds becomes exactly what is desired. */
import { type CanonicalAdvertisement, type CanonicalPeer, sameAdvertisement } from './validate.js';

export interface PathPlan {
  /** New prefixes and prefixes whose attributes changed: AddPath replaces a path of the same prefix in place. */
  announce: CanonicalAdvertisement[];
  /** Prefixes gobgpd announces that are not desired. */
  withdraw: CanonicalAdvertisement[];
}

/**
 * Paths already announced with the right attributes are left alone, so re-applying the same set (an agent
 * restart, a reconnect) sends nothing to the routers and never flaps a route.
 */
export function planPaths(
  current: readonly CanonicalAdvertisement[],
  desired: ReadonlyMap<string, CanonicalAdvertisement>,
): PathPlan {
  const held = new Map<string, CanonicalAdvertisement[]>();
  for (const c of current) held.set(c.prefix, [...(held.get(c.prefix) ?? []), c]);
  const announce: CanonicalAdvertisement[] = [];
  const withdraw: CanonicalAdvertisement[] = [];
  for (const [prefix, want] of desired) {
    const have = held.get(prefix) ?? [];
    if (!(have.length === 1 && sameAdvertisement(have[0] as CanonicalAdvertisement, want))) announce.push(want);
    // More than one local path for a prefix (someone used `gobgp global rib add` with another next hop): keep ours only.
    if (have.length > 1) withdraw.push(...have.filter((h) => !sameAdvertisement(h, want)));
  }
  for (const [prefix, have] of held) if (!desired.has(prefix)) withdraw.push(...have);
  const byPrefix = (a: CanonicalAdvertisement, b: CanonicalAdvertisement) => a.prefix.localeCompare(b.prefix);
  return { announce: announce.sort(byPrefix), withdraw: withdraw.sort(byPrefix) };
}

export interface PeerPlan {
  add: CanonicalPeer[];
  /** Addresses to delete; a changed peer is deleted and added again (gobgpd resets the session anyway). */
  remove: string[];
}

/**
 * Settings gobgpd cannot report back faithfully are compared only when they are configured. ListPeer reports an
 * established session's real source address as transport.local_address (GoBGP 3.10 merges the session state into
 * the config), so with no localAddress configured the kernel's choice would look like a change and the peer would
 * be re-created (session reset, VIPs withdrawn at the router) at every resync. The price: removing a configured
 * localAddress takes effect only when the peer is next re-created (another setting changes, gobgpd restarts).
 */
function samePeer(have: CanonicalPeer, want: CanonicalPeer): boolean {
  return (
    have.asn === want.asn &&
    have.password === want.password &&
    have.holdTimeS === want.holdTimeS &&
    have.keepaliveS === want.keepaliveS &&
    have.connectRetryS === want.connectRetryS &&
    have.port === want.port &&
    (want.localAddress === '' || have.localAddress === want.localAddress) &&
    have.passive === want.passive &&
    have.ebgpMultihopTtl === want.ebgpMultihopTtl &&
    have.description === want.description
  );
}

export function planPeers(current: readonly CanonicalPeer[], desired: ReadonlyMap<string, CanonicalPeer>): PeerPlan {
  const held = new Map(current.map((p) => [p.address, p]));
  const add: CanonicalPeer[] = [];
  const remove: string[] = [];
  for (const [address, want] of desired) {
    const have = held.get(address);
    if (have && samePeer(have, want)) continue;
    if (have) remove.push(address);
    add.push(want);
  }
  for (const address of held.keys()) if (!desired.has(address)) remove.push(address);
  return { add, remove: remove.sort() };
}
