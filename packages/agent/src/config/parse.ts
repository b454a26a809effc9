import { apiAddressProblem } from '@l4fleet/bgp';
import {
  addressField,
  boolField as bool,
  formatProblem,
  intField as int,
  isRawObject as isObj,
  listField as list,
  NODE_NAME,
  oneOfField as oneOf,
  Problems,
  sectionField as section,
  showValue as show,
  stringField as str,
  unusableAddress,
  valueText,
} from '@l4fleet/config';
import { longestRenewalGapMs } from '@l4fleet/store';
import { AgentError } from '../errors.js';
import { ipv4In6Problem, isLinkLocal6, linkLocal6Problem, parseBfd } from './bfd.js';
import { listenAddresses } from './bgp-listen.js';
import { parseDataPlane } from './dataplane.js';
import * as d from './defaults.js';
import { addr, etcdUrls, ifname, listenAddress, optStr, sourceAddress, tls, urls } from './fields.js';
import type { AgentConfig, BgpSection, EtcdSection, LogLevel, NatsSection, NodeSection, PeerSection } from './types.js';

const MAX_ASN = 0xffff_ffff;
const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const COMMUNITY = /^(\d{1,5}):(\d{1,5})$/;

/**
 * node.address / address6: the next hop of every VIP of its family. One no router forwards to (multicast,
 * unspecified, loopback, broadcast, link-local: RFC 2545 §3 wants a global IPv6 next hop) would blackhole every
 * VIP, so it is refused here, from the value alone; preflight (--check, reload) also asks whether the host owns it.
 */
function nextHop(p: Problems, path: string, v: unknown, family: 4 | 6): string {
  const a = addressField(p, path, v, family);
  const why = a ? unusableAddress(a.address) : undefined;
  if (why) p.add(path, `${show(v)} is ${why}: not a next hop a router can forward to`);
  return a?.address ?? valueText(v);
}

function node(p: Problems, v: unknown): NodeSection {
  const o = section(p, 'node', v, ['name', 'interface', 'address', 'address6'], true);
  return {
    name: str(p, 'node.name', o.name, NODE_NAME, 'a node name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)'),
    interface: ifname(p, o.interface),
    address: nextHop(p, 'node.address', o.address, 4),
    ...(o.address6 !== undefined ? { address6: nextHop(p, 'node.address6', o.address6, 6) } : {}),
  };
}

/** RFC 8326 GRACEFUL_SHUTDOWN, which the agent's drain adds to every route (packages/agent/src/lifecycle). */
const GRACEFUL_SHUTDOWN = '65535:0';

/**
 * bgp.communities, stored as `ASN:VALUE` without leading zeros (the form the speaker and gobgpd give back), so a
 * repeat in another spelling is found. GRACEFUL_SHUTDOWN is refused: carried while serving, routers would set
 * LOCAL_PREF 0 on every route (RFC 8326 §4), and a drain, which adds it, would change no attribute at all.
 */
function communities(p: Problems, v: unknown): string[] {
  const seen = new Map<string, number>();
  return list(p, 'bgp.communities', v).map((c, i) => {
    const path = `bgp.communities[${i}]`;
    const m = typeof c === 'string' ? COMMUNITY.exec(c) : null;
    if (!m || Number(m[1]) > 65_535 || Number(m[2]) > 65_535) {
      p.add(path, `${show(c)} is not a community ASN:VALUE (each 0-65535)`);
      return valueText(c);
    }
    const canonical = `${Number(m[1])}:${Number(m[2])}`;
    const first = seen.get(canonical);
    if (canonical === GRACEFUL_SHUTDOWN) {
      p.add(
        path,
        `${show(c)} is GRACEFUL_SHUTDOWN (RFC 8326): routers would rank every route last while serving; the drain` +
          ' adds it by itself',
      );
    } else if (first !== undefined) {
      p.add(path, `${show(c)} duplicates bgp.communities[${first}] ("${canonical}")`);
    } else {
      seen.set(canonical, i);
    }
    return canonical;
  });
}

/**
 * A BGP peer's address or local address. An IPv6 link-local one is refused: a socket reaches or binds it only with
 * its interface (fe80::1%eth0, RFC 4007 §11; connect(2) without a scope fails with EINVAL), and neither the
 * section nor the address parser takes a zone. So is an IPv4-compatible or -mapped one (bfd.ts ipv4In6Problem):
 * BFD takes the same pair, and bfdd shows it in another spelling.
 */
function peerAddress(p: Problems, path: string, v: unknown): { family: 4 | 6; address: string } | undefined {
  const a = addressField(p, path, v);
  if (a && isLinkLocal6(a.address)) p.add(path, linkLocal6Problem(v));
  const why = a ? ipv4In6Problem(a.address) : undefined;
  if (why) p.add(path, `${show(v)} is ${why}`);
  return a;
}

function peer(p: Problems, path: string, v: unknown): PeerSection {
  const o = section(p, path, v, [
    'address',
    'asn',
    'password',
    'holdTimeS',
    'keepaliveS',
    'port',
    'localAddress',
    'passive',
    'ebgpMultihopTtl',
  ]);
  // RFC 4271 allows hold time 0, but gobgpd's API reads a timer of 0 as unset: the speaker would re-create the
  // peer at every resync (ListPeer never matches) and the session would never come up.
  const holdTimeS = int(p, `${path}.holdTimeS`, o.holdTimeS, 0, 65_535, 'a hold time in s', d.DEFAULT_HOLD_TIME_S);
  if (holdTimeS === 0) p.add(`${path}.holdTimeS`, '0 is not 3-65535 (gobgpd reads 0 as unset: hold time 90 s)');
  if (holdTimeS > 0 && holdTimeS < 3) p.add(`${path}.holdTimeS`, `${holdTimeS} is not 3-65535 (RFC 4271 §4.2)`);
  const keepaliveS = int(p, `${path}.keepaliveS`, o.keepaliveS, 0, 21_845, 'a keepalive in s', d.DEFAULT_KEEPALIVE_S);
  if (keepaliveS === 0) {
    p.add(`${path}.keepaliveS`, '0 is not 1-21845 (gobgpd reads 0 as unset: a third of the hold time)');
  }
  if (holdTimeS >= 3 && keepaliveS >= holdTimeS) {
    p.add(`${path}.keepaliveS`, `${keepaliveS} is not below holdTimeS (${holdTimeS})`);
  }
  const password = optStr(p, `${path}.password`, o.password, 'a password');
  // Linux TCP_MD5SIG_MAXKEYLEN counts bytes: 80 'é' are 160 bytes, which the kernel refuses, so the session never
  // came up.
  const passwordBytes = password === undefined ? 0 : Buffer.byteLength(password, 'utf8');
  if (passwordBytes > 80) {
    p.add(
      `${path}.password`,
      `is ${passwordBytes} bytes; TCP MD5 keys are at most 80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)`,
    );
  }
  const address = peerAddress(p, `${path}.address`, o.address);
  const local = o.localAddress === undefined ? undefined : peerAddress(p, `${path}.localAddress`, o.localAddress);
  // gobgpd dials the peer from localAddress (and BFD takes the same pair): of the other family, it never connects.
  if (address && local && address.family !== local.family) {
    p.add(
      `${path}.localAddress`,
      `"${local.address}" is IPv${local.family} but the peer ${address.address} is IPv${address.family}`,
    );
  }
  return {
    address: address?.address ?? valueText(o.address),
    asn: int(p, `${path}.asn`, o.asn, 1, MAX_ASN, 'an ASN'),
    ...(password !== undefined ? { password } : {}),
    holdTimeS,
    keepaliveS,
    port: int(p, `${path}.port`, o.port, 1, 65_535, 'a port', d.DEFAULT_BGP_PORT),
    ...(o.localAddress !== undefined ? { localAddress: local?.address ?? valueText(o.localAddress) } : {}),
    passive: bool(p, `${path}.passive`, o.passive, false),
    ...(o.ebgpMultihopTtl !== undefined
      ? { ebgpMultihopTtl: int(p, `${path}.ebgpMultihopTtl`, o.ebgpMultihopTtl, 1, 255, 'a TTL') }
      : {}),
  };
}

/**
 * bgp.gobgpdAddress, by the speaker's own rule (@l4fleet/bgp apiAddressProblem): a loopback address in any spelling,
 * localhost, or gobgpd's unix socket (`unix:/PATH`). Any HOST:PORT passed here before, and createGobgpSpeaker then
 * refused an address off the host at the start, after --check and preflight had passed. agent.yaml has no
 * allowRemoteApi: gobgpd's API is unauthenticated, and its sidecar runs on the node (deploy/systemd).
 */
function gobgpdAddress(p: Problems, v: unknown): string {
  if (v === undefined) return d.DEFAULT_GOBGPD_ADDRESS;
  const why = apiAddressProblem(v);
  if (why === undefined) return v as string;
  p.add('bgp.gobgpdAddress', why);
  return valueText(v);
}

function bgp(p: Problems, v: unknown, nodeAddress: string): BgpSection {
  const o = section(
    p,
    'bgp',
    v,
    ['asn', 'routerId', 'listenPort', 'listenAddresses', 'gobgpdAddress', 'peers', 'communities', 'gracefulShutdownMs'],
    true,
  );
  const peers = list(p, 'bgp.peers', o.peers).map((raw, i) => peer(p, `bgp.peers[${i}]`, raw));
  if (peers.length === 0) p.add('bgp.peers', 'no peers: the node could never announce a VIP');
  const seen = new Map<string, number>();
  peers.forEach((pr, i) => {
    const first = seen.get(pr.address);
    if (first !== undefined) p.add(`bgp.peers[${i}].address`, `"${pr.address}" duplicates bgp.peers[${first}]`);
    else seen.set(pr.address, i);
  });
  const listenPort = int(p, 'bgp.listenPort', o.listenPort, -1, 65_535, 'a port or -1', d.DEFAULT_BGP_LISTEN_PORT);
  // -1 is gobgpd's "no listener"; 0 the speaker refuses for good (validatePort), so setup would fail every 5 s.
  if (listenPort === 0) p.add('bgp.listenPort', '0 is not a port (1-65535) or -1');
  const routerId = o.routerId === undefined ? nodeAddress : addr(p, 'bgp.routerId', o.routerId, 4);
  // RFC 6286 §2.1: non-zero. bgp's speaker refuses 0.0.0.0 for good (validateRouterId), so BGP setup would fail every
  // 5 s and never announce. Left out, it is node.address, where 0.0.0.0 is refused as a next hop.
  if (o.routerId !== undefined && routerId === '0.0.0.0')
    p.add('bgp.routerId', '"0.0.0.0" is not a BGP identifier (RFC 6286: non-zero)');
  return {
    asn: int(p, 'bgp.asn', o.asn, 1, MAX_ASN, 'an ASN'),
    routerId,
    listenPort,
    ...(o.listenAddresses !== undefined ? { listenAddresses: listenAddresses(p, o.listenAddresses, listenPort) } : {}),
    gobgpdAddress: gobgpdAddress(p, o.gobgpdAddress),
    peers,
    communities: communities(p, o.communities),
    gracefulShutdownMs: int(
      p,
      'bgp.gracefulShutdownMs',
      o.gracefulShutdownMs,
      0,
      600_000,
      'a duration in ms',
      d.DEFAULT_GRACEFUL_SHUTDOWN_MS,
    ),
  };
}

function etcd(p: Problems, v: unknown): EtcdSection {
  const o = section(
    p,
    'etcd',
    v,
    ['endpoints', 'prefix', 'tls', 'user', 'password', 'dialTimeoutMs', 'leaseTtlS'],
    true,
  );
  const endpoints = etcdUrls(p, 'etcd.endpoints', o.endpoints);
  if (endpoints.length === 0) p.add('etcd.endpoints', 'no endpoints: the agent needs etcd to learn the fleet');
  const user = optStr(p, 'etcd.user', o.user, 'a user name');
  const password = optStr(p, 'etcd.password', o.password, 'a password');
  if ((user === undefined) !== (password === undefined)) p.add('etcd', 'user and password go together');
  const t = tls(p, 'etcd.tls', o.tls);
  const dialTimeoutMs = int(
    p,
    'etcd.dialTimeoutMs',
    o.dialTimeoutMs,
    100,
    60_000,
    'a timeout in ms',
    d.DEFAULT_ETCD_DIAL_TIMEOUT_MS,
  );
  return {
    endpoints,
    prefix: str(p, 'etcd.prefix', o.prefix, /^\/[^\s]*$/, 'a key prefix starting with /', d.DEFAULT_ETCD_PREFIX),
    ...(t ? { tls: t } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(password !== undefined ? { password } : {}),
    dialTimeoutMs,
    leaseTtlS: leaseTtl(p, o.leaseTtlS, endpoints.length, dialTimeoutMs),
  };
}

/**
 * With several endpoints the lease must outlive a renewal that meets a hung member (store lease-keeper.ts): the
 * node's lease and the aggregator's election lease alike, both renewed there.
 */
function leaseTtl(p: Problems, v: unknown, endpoints: number, dialTimeoutMs: number): number {
  const ttlS = int(p, 'etcd.leaseTtlS', v, 2, 3_600, 'a TTL in s', d.DEFAULT_LEASE_TTL_S);
  const gapMs = longestRenewalGapMs(ttlS, dialTimeoutMs);
  if (endpoints > 1 && gapMs >= ttlS * 1000) {
    p.add(
      'etcd.leaseTtlS',
      `${ttlS} s is too short for etcd.dialTimeoutMs ${dialTimeoutMs} ms: with a member hung, renewals can be ${gapMs} ms apart (TTL/3 + dialTimeoutMs + 200 ms), and the node would lose its lease; raise the TTL or lower the timeout`,
    );
  }
  return ttlS;
}

function nats(p: Problems, v: unknown): NatsSection {
  const o = section(p, 'nats', v, ['servers', 'tls', 'user', 'password', 'token', 'subjectPrefix', 'maxPendingEvents']);
  const user = optStr(p, 'nats.user', o.user, 'a user name');
  const password = optStr(p, 'nats.password', o.password, 'a password');
  const token = optStr(p, 'nats.token', o.token, 'a token');
  if ((user === undefined) !== (password === undefined)) p.add('nats', 'user and password go together');
  const t = tls(p, 'nats.tls', o.tls);
  return {
    servers: urls(p, 'nats.servers', o.servers, ['nats', 'tls']),
    ...(t ? { tls: t } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(token !== undefined ? { token } : {}),
    subjectPrefix: str(
      p,
      'nats.subjectPrefix',
      o.subjectPrefix,
      SUBJECT_TOKEN,
      'a subject token (A-Z a-z 0-9 _ -)',
      d.DEFAULT_NATS_SUBJECT_PREFIX,
    ),
    maxPendingEvents: int(
      p,
      'nats.maxPendingEvents',
      o.maxPendingEvents,
      0,
      1_000_000,
      'a count',
      d.DEFAULT_MAX_PENDING_EVENTS,
    ),
  };
}

/** Validates a decoded agent.yaml into a new, fully defaulted AgentConfig; throws AgentError CONFIG_INVALID. */
export function parseAgentConfig(raw: unknown): AgentConfig {
  const p = new Problems();
  if (!isObj(raw)) {
    throw new AgentError('CONFIG_INVALID', `the agent config is ${show(raw)}, not an object`, {
      problems: [{ path: '', message: `the agent config is ${show(raw)}, not an object` }],
    });
  }
  section(p, '', raw, [
    'fleet',
    'node',
    'bgp',
    'etcd',
    'nats',
    'metrics',
    'dataplane',
    'health',
    'drain',
    'state',
    'bfd',
    'logLevel',
  ]);
  const n = node(p, raw.node);
  const b = bgp(p, raw.bgp, n.address);
  const m = section(p, 'metrics', raw.metrics, ['listen']);
  const h = section(p, 'health', raw.health, ['sourceAddress', 'maxConcurrentProbes', 'caFile']);
  const dr = section(p, 'drain', raw.drain, ['forwardAfterWithdrawMs']);
  const st = section(p, 'state', raw.state, ['enabled', 'dir', 'maxBytes', 'maxAgeS']);
  const config: AgentConfig = {
    fleet: str(p, 'fleet', raw.fleet, SUBJECT_TOKEN, 'a fleet name (A-Z a-z 0-9 _ -)', d.DEFAULT_FLEET_NAME),
    node: n,
    bgp: b,
    etcd: etcd(p, raw.etcd),
    nats: nats(p, raw.nats),
    metrics: {
      listen: listenAddress(p, 'metrics.listen', m.listen, d.DEFAULT_METRICS_LISTEN),
    },
    dataplane: parseDataPlane(p, raw.dataplane, n),
    health: {
      ...(h.sourceAddress !== undefined ? { sourceAddress: sourceAddress(p, h.sourceAddress) } : {}),
      ...(h.caFile !== undefined ? { caFile: str(p, 'health.caFile', h.caFile, undefined, 'a file path') } : {}),
      maxConcurrentProbes: int(
        p,
        'health.maxConcurrentProbes',
        h.maxConcurrentProbes,
        1,
        65_536,
        'a count',
        d.DEFAULT_MAX_CONCURRENT_PROBES,
      ),
    },
    drain: {
      forwardAfterWithdrawMs: int(
        p,
        'drain.forwardAfterWithdrawMs',
        dr.forwardAfterWithdrawMs,
        0,
        600_000,
        'a duration in ms',
        d.DEFAULT_FORWARD_AFTER_WITHDRAW_MS,
      ),
    },
    state: {
      enabled: bool(p, 'state.enabled', st.enabled, true),
      dir: str(p, 'state.dir', st.dir, /^[^\0]+$/, 'a directory path', d.DEFAULT_STATE_DIR),
      maxBytes: int(p, 'state.maxBytes', st.maxBytes, 1_024, 2 ** 31, 'a size in bytes', d.DEFAULT_STATE_MAX_BYTES),
      maxAgeS: int(p, 'state.maxAgeS', st.maxAgeS, 0, 10 * 365 * 86_400, 'an age in s', d.DEFAULT_STATE_MAX_AGE_S),
    },
    bfd: parseBfd(p, raw.bfd, n, b),
    logLevel: oneOf<LogLevel>(
      p,
      'logLevel',
      raw.logLevel,
      ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
      'info',
    ),
  };
  if (p.list.length > 0) {
    throw new AgentError('CONFIG_INVALID', p.list.map(formatProblem).join('\n'), { problems: p.list });
  }
  return config;
}
