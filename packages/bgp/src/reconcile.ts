/** Pure planning: what to add and remove so that what gobgpd holds becomes exactly what is desired. */
import type { HeldPath } from './codec.js';
import { type CanonicalAdvertisement, type CanonicalPeer, sameAdvertisement } from './validate.js';

export interface PathPlan {
  /** New prefixes and prefixes whose attributes changed: AddPath replaces our path (identifier 0) in place. */
  announce: CanonicalAdvertisement[];
  /** Local paths gobgpd holds that are not desired, each withdrawn by its own identifier. */
  withdraw: HeldPath[];
  /**
   * Local paths of identifier 0 beside ours for a desired prefix (another gRPC client's AddPath with
   * no_implicit_withdraw). Left alone, for the speaker to report: gobgpd matches a withdrawal (DeletePath, also by
   * UUID) by source and identifier alone and ListPath gives no UUID, so withdrawing one may take ours instead.
   */
  duplicates: HeldPath[];
}

/** Is `have` the path this speaker would announce for `want`: our identifier, our attributes and nothing else? */
function isOurs(have: HeldPath, want: CanonicalAdvertisement): boolean {
  return have.identifier === 0 && have.foreign.length === 0 && sameAdvertisement(have, want);
}

/**
 * Paths already announced with the right attributes are left alone, so re-applying the same set (an agent
 * restart, a reconnect) sends nothing to the routers and never flaps a route. Other local paths of a desired prefix
 * (`gobgp global rib add P ... identifier N`) are withdrawn by their identifier: a withdrawal without it would
 * remove ours (identifier 0) and leave the stray, and the route would flap at every resync.
 */
export function planPaths(
  current: readonly HeldPath[],
  desired: ReadonlyMap<string, CanonicalAdvertisement>,
): PathPlan {
  const held = new Map<string, HeldPath[]>();
  for (const c of current) held.set(c.prefix, [...(held.get(c.prefix) ?? []), c]);
  const announce: CanonicalAdvertisement[] = [];
  const withdraw: HeldPath[] = [];
  const duplicates: HeldPath[] = [];
  for (const [prefix, want] of desired) {
    const have = held.get(prefix) ?? [];
    const zero = have.filter((h) => h.identifier === 0);
    const ours = zero.findIndex((h) => isOurs(h, want));
    if (ours === -1) announce.push(want);
    // Alone in our place, a foreign identifier-0 path is replaced by our AddPath; beside ours it cannot be told apart.
    if (zero.length > 1) duplicates.push(...zero.filter((_, i) => i !== (ours === -1 ? 0 : ours)));
    withdraw.push(...have.filter((h) => h.identifier !== 0));
  }
  for (const [prefix, have] of held) if (!desired.has(prefix)) withdraw.push(...have);
  const byPrefix = (a: CanonicalAdvertisement, b: CanonicalAdvertisement) => a.prefix.localeCompare(b.prefix);
  const byPrefixThenId = (a: HeldPath, b: HeldPath) => byPrefix(a, b) || a.identifier - b.identifier;
  return {
    announce: announce.sort(byPrefix),
    withdraw: withdraw.sort(byPrefixThenId),
    duplicates: duplicates.sort(byPrefix),
  };
}

export interface PeerPlan {
  add: CanonicalPeer[];
  /** Addresses to delete; a changed peer is deleted and added again (gobgpd resets the session anyway). */
  remove: string[];
}

/**
 * The localAddress this speaker configured in gobgpd (its AddPeer), by peer address; '' for none. gobgpd cannot say:
 * ListPeer reports the source of the last established session as transport.local_address, configured or chosen by
 * the kernel (GoBGP 3.10 merges the session state into the config, and keeps it after the session goes down).
 */
export type SentLocalAddresses = ReadonlyMap<string, string>;

/**
 * Is the session's source what is wanted? Where this speaker configured the peer, what it sent must be what is
 * wanted: a removed localAddress would otherwise look unchanged (the session still runs from it) and gobgpd kept
 * the old source while BFD moved to the new one; an added one the kernel happened to choose would never be bound.
 * Where it did not (a speaker started against a running gobgpd: an agent restart), only a wanted address can be
 * checked: an unset one is not compared, or the kernel's choice would look like a change and every peer would be
 * re-created (session reset, VIPs withdrawn at the router) at every agent restart.
 */
function sameSource(have: CanonicalPeer, want: CanonicalPeer, sent: string | undefined): boolean {
  if (sent !== undefined && sent !== want.localAddress) return false;
  return want.localAddress === '' || have.localAddress === want.localAddress;
}

function samePeer(have: CanonicalPeer, want: CanonicalPeer, sent: string | undefined): boolean {
  return (
    have.asn === want.asn &&
    have.password === want.password &&
    have.holdTimeS === want.holdTimeS &&
    have.keepaliveS === want.keepaliveS &&
    have.connectRetryS === want.connectRetryS &&
    have.port === want.port &&
    sameSource(have, want, sent) &&
    have.passive === want.passive &&
    have.ebgpMultihopTtl === want.ebgpMultihopTtl &&
    have.description === want.description
  );
}

/** `sent`: what this speaker configured (SentLocalAddresses); a peer missing from it is compared as above. */
export function planPeers(
  current: readonly CanonicalPeer[],
  desired: ReadonlyMap<string, CanonicalPeer>,
  sent: SentLocalAddresses = new Map(),
): PeerPlan {
  const held = new Map(current.map((p) => [p.address, p]));
  const add: CanonicalPeer[] = [];
  const remove: string[] = [];
  for (const [address, want] of desired) {
    const have = held.get(address);
    if (have && samePeer(have, want, sent.get(address))) continue;
    if (have) remove.push(address);
    add.push(want);
  }
  for (const address of held.keys()) if (!desired.has(address)) remove.push(address);
  return { add, remove: remove.sort() };
}
