/** Converts between the package's types and apipb messages (the JSON-ish objects proto-loader reads and writes). */
import { TYPE_URL_PREFIX } from './proto.js';
import type { SessionState } from './types.js';
import {
  type CanonicalAdvertisement,
  type CanonicalPeer,
  canonicalIp,
  formatCommunity,
  parseCommunity,
} from './validate.js';

/** An apipb message as proto-loader gives it; fields are snake_case. */
// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf objects are checked field by field below.
export type ApiObject = Record<string, any>;

const ORIGIN_IGP = 0;

export function apiFamily(family: 4 | 6): ApiObject {
  return { afi: family === 4 ? 'AFI_IP' : 'AFI_IP6', safi: 'SAFI_UNICAST' };
}

function any(type: string, fields: ApiObject): ApiObject {
  return { '@type': `${TYPE_URL_PREFIX}${type}`, ...fields };
}

function anyType(value: ApiObject | undefined): string {
  const url = String(value?.['@type'] ?? value?.type_url ?? '');
  return url.slice(url.lastIndexOf('.') + 1);
}

/**
 * A local path as gobgpd lists it: the advertisement, plus what tells whether this speaker announced it. Ours have
 * identifier 0 and no foreign attribute; anything else is someone's `gobgp global rib add` (or a config file's).
 */
export interface HeldPath extends CanonicalAdvertisement {
  /**
   * The path identifier (RFC 7911) gobgpd keys local paths by, with their (nil) source: AddPath replaces, and
   * DeletePath removes, the path of the same identifier. This speaker announces with 0.
   */
  identifier: number;
  /**
   * Attributes this speaker never sends, named (`origin 2`, `AS_PATH 64999`, `LargeCommunitiesAttribute`, and the
   * `no_implicit_withdraw` flag): a path with any is not ours even if next hop and communities match, and is
   * announced over.
   */
  foreign: readonly string[];
}

/**
 * An apipb.Path announcing (or, with `withdraw`, withdrawing) `adv`. gobgpd turns the NextHopAttribute into
 * MP_REACH_NLRI itself for IPv6 (RFC 4760), so one shape serves both families. The withdrawal carries the
 * attributes too: gobgpd 3.10 refuses a path without next hop unless `is_withdraw` is set. gobgpd matches a
 * withdrawal by source and `identifier` only, so a stray local path is withdrawn with its own identifier.
 */
export function toApiPath(adv: CanonicalAdvertisement, withdraw = false, identifier = 0): ApiObject {
  const [address, length] = adv.prefix.split('/');
  const pattrs = [any('OriginAttribute', { origin: ORIGIN_IGP }), any('NextHopAttribute', { next_hop: adv.nextHop })];
  if (adv.communities.length > 0) {
    pattrs.push(any('CommunitiesAttribute', { communities: adv.communities.map((c) => parseCommunity(c)) }));
  }
  if (adv.med !== undefined) pattrs.push(any('MultiExitDiscAttribute', { med: adv.med }));
  if (adv.localPref !== undefined) pattrs.push(any('LocalPrefAttribute', { local_pref: adv.localPref }));
  return {
    family: apiFamily(adv.family),
    nlri: any('IPAddressPrefix', { prefix: address, prefix_len: Number(length) }),
    pattrs,
    is_withdraw: withdraw,
    ...(identifier !== 0 ? { identifier } : {}),
  };
}

/** gobgpd (Go) prints an absent address as `<nil>`: treat it as no address. */
function presentAddress(value: unknown): string {
  const text = String(value ?? '');
  return text === '<nil>' ? '' : text;
}

/** gobgpd marks paths that no neighbour sent (AddPath or its config file) with a nil source. */
export function isLocalPath(path: ApiObject): boolean {
  return presentAddress(path.neighbor_ip) === '';
}

/**
 * A peer's address from a ListPeer/WatchEvent answer: the session state's address, else the configured one.
 * Before a session comes up gobgpd reports the state's address as `<nil>`, which named a phantom peer.
 */
export function peerAddress(peer: ApiObject): string {
  return presentAddress(peer.state?.neighbor_address) || presentAddress(peer.conf?.neighbor_address);
}

/** Reads a unicast host-route local apipb.Path back; undefined for anything that is not one (a withdrawal). */
export function fromApiPath(path: ApiObject): HeldPath | undefined {
  const nlri = path.nlri as ApiObject | undefined;
  if (anyType(nlri) !== 'IPAddressPrefix' || path.is_withdraw) return undefined;
  const family = path.family?.afi === 'AFI_IP6' ? 6 : 4;
  let nextHop = '';
  let communities: string[] = [];
  let med: number | undefined;
  let localPref: number | undefined;
  const foreign: string[] = [];
  for (const attr of (path.pattrs ?? []) as ApiObject[]) {
    const type = anyType(attr);
    switch (type) {
      case 'OriginAttribute':
        if (Number(attr.origin ?? 0) !== ORIGIN_IGP) foreign.push(`origin ${Number(attr.origin)}`);
        break;
      case 'AsPathAttribute': {
        // We send none; an empty one says the same (a locally originated route's AS path is empty, RFC 4271 §5.1.2).
        const asns = ((attr.segments ?? []) as ApiObject[]).flatMap((seg) => (seg.numbers ?? []) as number[]);
        if (asns.length > 0) foreign.push(`AS_PATH ${asns.join(' ')}`);
        break;
      }
      case 'NextHopAttribute':
        nextHop = String(attr.next_hop ?? '');
        break;
      case 'MpReachNLRIAttribute':
        nextHop = String(attr.next_hops?.[0] ?? '');
        break;
      case 'CommunitiesAttribute':
        communities = [...new Set<number>(attr.communities ?? [])].sort((a, b) => a - b).map(formatCommunity);
        break;
      case 'MultiExitDiscAttribute':
        med = Number(attr.med);
        break;
      case 'LocalPrefAttribute':
        localPref = Number(attr.local_pref);
        break;
      default:
        // Large or extended communities, aggregator, ...: never sent by this speaker.
        foreign.push(type || 'an attribute without type');
    }
  }
  // Never set by this speaker: another gRPC client's AddPath, which gobgpd keeps beside ours even with identifier 0.
  if (path.no_implicit_withdraw === true) foreign.push('no_implicit_withdraw');
  const address = String(nlri?.prefix ?? '');
  return {
    prefix: `${canonicalIp(address)}/${Number(nlri?.prefix_len)}`,
    family,
    nextHop: nextHop === '' ? '' : canonicalIp(nextHop),
    communities,
    med,
    localPref,
    identifier: Number(path.identifier ?? 0),
    foreign,
  };
}

/**
 * An apipb.Peer for AddPeer. Both unicast families are enabled on every session so IPv6 VIPs can ride an IPv4
 * session (RFC 4760 multiprotocol) and the other way round.
 */
export function toApiPeer(peer: CanonicalPeer): ApiObject {
  return {
    conf: {
      neighbor_address: peer.address,
      peer_asn: peer.asn,
      auth_password: peer.password,
      description: peer.description,
    },
    timers: {
      config: {
        hold_time: peer.holdTimeS,
        keepalive_interval: peer.keepaliveS,
        connect_retry: peer.connectRetryS,
      },
    },
    transport: {
      remote_port: peer.port,
      local_address: peer.localAddress,
      passive_mode: peer.passive,
    },
    ebgp_multihop: { enabled: peer.ebgpMultihopTtl > 0, multihop_ttl: peer.ebgpMultihopTtl },
    afi_safis: [4, 6].map((f) => ({ config: { family: apiFamily(f as 4 | 6), enabled: true } })),
  };
}

/** The settings of a peer as gobgpd reports them (ListPeer), in the shape of CanonicalPeer. */
export function fromApiPeer(peer: ApiObject): CanonicalPeer {
  const conf = peer.conf ?? {};
  const timers = peer.timers?.config ?? {};
  const transport = peer.transport ?? {};
  const multihop = peer.ebgp_multihop ?? {};
  const localAddress = String(transport.local_address ?? '');
  return {
    address: canonicalIp(String(conf.neighbor_address)),
    asn: Number(conf.peer_asn),
    password: String(conf.auth_password ?? ''),
    holdTimeS: Number(timers.hold_time ?? 0),
    keepaliveS: Number(timers.keepalive_interval ?? 0),
    connectRetryS: Number(timers.connect_retry ?? 0),
    port: Number(transport.remote_port ?? 0),
    // gobgpd fills in the unspecified address when none was configured.
    localAddress: localAddress === '' || localAddress === '0.0.0.0' || localAddress === '::' ? '' : localAddress,
    passive: transport.passive_mode === true,
    ebgpMultihopTtl: multihop.enabled ? Number(multihop.multihop_ttl ?? 0) : 0,
    description: String(conf.description ?? ''),
  };
}

const SESSION_STATES: Record<string, SessionState> = {
  IDLE: 'idle',
  CONNECT: 'connect',
  ACTIVE: 'active',
  OPENSENT: 'opensent',
  OPENCONFIRM: 'openconfirm',
  ESTABLISHED: 'established',
};

export function sessionState(value: unknown): SessionState {
  return SESSION_STATES[String(value)] ?? 'unknown';
}
