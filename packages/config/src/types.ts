/**
 * The fleet model: what `l4fleet apply -f` takes and what etcd stores. Every field is fully defaulted
 * after parseFleet(), so consumers never apply defaults of their own (they would drift apart).
 */
import type { HashMode, Protocol } from '@l4fleet/maglev';
import type { VipProfile } from './profile.js';
import type { SecondChance } from './second-chance.js';

export type { HashMode, Protocol };

/** `active` takes new flows; `draining` keeps existing ones (weight 0); `disabled` is out of the table. */
export type MemberState = 'active' | 'draining' | 'disabled';
/** The aggregator's decision about a member, from the nodes' health reports. */
export type MemberStatus = 'up' | 'down';
/**
 * `vips[].state` (vip-state.ts): `draining` keeps the VIP announced and its open flows forwarded while every node
 * refuses new ones; `disabled` keeps the VIP in the fleet but no node serves or announces it.
 */
export type VipState = 'enabled' | 'draining' | 'disabled';
export type HealthCheckType = 'tcp' | 'http' | 'https' | 'udp' | 'dns' | 'agent' | 'grpc' | 'none';
/** The record types a `dns` check may ask for (RFC 1035 §3.2.2, RFC 3596, RFC 2782). */
export type DnsQueryType = 'A' | 'AAAA' | 'CNAME' | 'MX' | 'NS' | 'PTR' | 'SOA' | 'SRV' | 'TXT';
/** The answers a `dns` check may require (RFC 1035 §4.1.1): the name exists, or (a check of a name that must not) not. */
export type DnsRcode = 'NOERROR' | 'NXDOMAIN';

/** The request a `http` or `https` check sends (RFC 9110 §9.3.1, §9.3.2). */
export type HttpCheckMethod = 'GET' | 'HEAD';
/** An inclusive range of HTTP status codes, `200-399`. */
export type StatusRange = `${number}-${number}`;

export interface HealthCheck {
  /**
   * `tcp` connects, `http` GETs `path` and expects `expectStatus`, `https` does the same over TLS, `udp` sends
   * `payload` and expects a reply, `dns` asks `query` over UDP and expects `expectRcode`, `agent` asks the member's
   * agent on `port` for its state (HAProxy's agent-check: `up`/`ready`, or `down`/`fail`/`stopped`/`maint`/`drain`),
   * `grpc` calls the gRPC Health Checking Protocol (grpc.health.v1.Health/Check for `service`) and expects SERVING,
   * `none` takes the member as up.
   */
  readonly type: HealthCheckType;
  /** Port to probe; default: the member's port (`agent`: required, the agent's own port). */
  readonly port?: number;
  /**
   * Address to probe instead of the member's (F5's alias address, HAProxy's `addr`), canonical; needs `port`. Every
   * member of the pool is then held to what answers there: a dependency they share (a database, a site's uplink).
   */
  readonly address?: string;
  /** http and https: request path, default `/`. */
  readonly path?: string;
  /**
   * http and https: `HEAD` asks for the status without the body (HAProxy's `option httpchk HEAD`: a large page is not
   * sent at every probe); default `GET`, not written back. `expect` needs a body, so it needs GET.
   */
  readonly method?: HttpCheckMethod;
  /**
   * http and https: the status code expected, default 200, or a range `LOW-HIGH` (`"200-399"`: any success or
   * redirect, as nginx's `match status 200-399` and HAProxy's default). statusExpected() tells.
   */
  readonly expectStatus?: number | StatusRange;
  /**
   * http and https: the Host header's name (RFC 9110 §7.2); with TLS (https, tcp with `tls`) the TLS server name
   * (SNI, RFC 6066 §3) and the name the certificate must carry; default: none, the Host header is the member's
   * address and no SNI is sent.
   */
  readonly host?: string;
  /**
   * https, and tcp with `tls`: check the member's certificate (its chain to a trusted root, and `host` or else the address probed
   * in it); default false. The roots: the agent's `health.caFile`, else Node's bundled public roots.
   */
  readonly verifyCertificate?: boolean;
  /**
   * grpc: the call over TLS (HTTP/2 with ALPN h2) instead of cleartext HTTP/2 (h2c). tcp: a TLS handshake (TLS 1.2 or
   * later) once connected, for services that speak TLS from the first byte
   * (LDAPS, IMAPS, Redis with TLS); `payload` and `expect` then go inside TLS, and `host` and `verifyCertificate`
   * apply as for https. Written only when true.
   */
  readonly tls?: boolean;
  /**
   * grpc: the service whose health is asked (HealthCheckRequest.service: `myapp.Orders`); default `""`, the server
   * as a whole (grpc.health.v1). Not written back when empty.
   */
  readonly service?: string;
  /**
   * udp: the datagram (UTF-8), default empty; tcp and agent: text sent once connected (a request, a command; HAProxy's
   * `agent-send`), default none.
   */
  readonly payload?: string;
  /**
   * tcp, udp, http, https: text the reply must contain (tcp: what the member sends, e.g. a banner or an answer to
   * `payload`; udp: the reply datagram; http and https: the body), matched as bytes, case-sensitive; default none
   * (any reply, any body). F5's "receive string", HAProxy's `expect string`.
   */
  readonly expect?: string;
  /**
   * http, https, udp: text that takes the member down when the body (or the reply datagram) contains it, whatever
   * else it says: F5's "receive disable string", HAProxy's `expect ! string`. A maintenance page that still answers
   * 200 (`MAINTENANCE`) drains the member: no new flows, its open flows stay with `onMemberDown: keep`. The whole
   * body is read (at most MAX_PROBE_REPLY_BYTES); not tcp, whose stream has no end to read to. Not with HEAD.
   */
  readonly expectNot?: string;
  /** dns only: the name asked for (`.` is the root); required. */
  readonly query?: string;
  /** dns only: the record type asked for; default A. */
  readonly queryType?: DnsQueryType;
  /** dns only: the answer's RCODE that means up; default NOERROR (any other, or no answer, is down). */
  readonly expectRcode?: DnsRcode;
  /** Time between probes in ms; default 2,000 (classic L4 switch default). */
  readonly intervalMs: number;
  /** Probe timeout in ms; default 1,000; at most intervalMs. */
  readonly timeoutMs: number;
  /** Consecutive successes to go up; default 2. */
  readonly rise: number;
  /** Consecutive failures to go down; default 4 (classic L4 switch default). */
  readonly fall: number;
}

export interface Member {
  /** Fleet-wide backend name; default `address:port` (`[v6]:port`). The Maglev permutation derives from it. */
  readonly name: string;
  /** Canonical IPv4 or IPv6 address (RFC 5952 form for IPv6). */
  readonly address: string;
  readonly port: number;
  /** Relative share of table slots, integer 0-65535; default 1. */
  readonly weight: number;
  /** Default `active`. */
  readonly state: MemberState;
  /**
   * A backup member ("sorry server": HAProxy's `backup`, an F5 priority group, Alteon's backup server) takes flows
   * only while no other member of its pool does (table.ts effectiveWeight). Absent: false; written back only when
   * true, so fleets without backups stay readable by nodes that predate it.
   */
  readonly backup?: boolean;
}

/**
 * How a node hands a flow's packets to a pool's backends. `l2`: the frame unchanged to the backend's MAC
 * (backends on the node's segment). `ipip` (IPv4-in-IPv4 / IPv6-in-IPv6), `gre` (RFC 2784, 4-byte header) and
 * `gue` (GUE variant 1, draft-ietf-intarea-gue §5: IP directly in UDP; variant 0 with the previous owner in its
 * private data for a packet second chance tags, docs/design/0011): encapsulated to the backend's address,
 * so backends can sit anywhere routed (bpf data plane only; nftables refuses them). `nat`: the node rewrites the
 * destination to the member's address and port and the source to its own address (conntrack), so members need no VIP
 * and may listen on another port; replies return through the node (nftables data plane only; design note 0012).
 */
export type Forwarding = 'l2' | 'ipip' | 'gre' | 'gue' | 'nat';
/**
 * What a pool's remembered flows do when their member is decided down: `keep` (default) leaves them on it (health
 * decides only the slots, so a member that fails its checks but still serves keeps its connections); `reselect`
 * places them by the table again, like an F5 pool's "action on service down: reselect". See onMemberDownOf.
 */
export type OnMemberDown = 'keep' | 'reselect';

export interface Pool {
  readonly name: string;
  readonly healthCheck: HealthCheck;
  /**
   * Checks a member must pass besides `healthCheck` (additional-health-checks.ts, F5's monitors with availability
   * "all", or `healthChecksRequired` of them): down once any is down, up once all are up. Absent: none; set by
   * parseFleet only when not empty, so fleets without it stay readable by older nodes.
   */
  readonly additionalHealthChecks?: readonly HealthCheck[];
  /**
   * How many of its checks (`healthCheck` and `additionalHealthChecks`) a member must pass to be up (F5's "at least N
   * of M"); absent: all. Set by parseFleet only when below the number of checks.
   */
  readonly healthChecksRequired?: number;
  readonly members: readonly Member[];
  /** Default `l2`. */
  readonly forwarding: Forwarding;
  /** `gue` only: UDP destination port the backends decapsulate on; default 6080 (used only with `gue`). */
  readonly guePort: number;
  /**
   * Second chance (docs/design/0011-second-chance.md): previous slot owners carried with encapsulated forwarding;
   * default `{enabled: true, retainS: 3600}`. Always set by parseFleet; optional so hand-built pools stay valid.
   */
  readonly secondChance?: SecondChance;
  /** Absent: `keep`. Set by parseFleet only when the file gives it, so fleets without it stay readable by older nodes. */
  readonly onMemberDown?: OnMemberDown;
  /**
   * Slow start, s (slow-start.ts): a member that starts taking new flows again ramps up to its weight over this
   * time. Absent: 0, off; set by parseFleet only when not 0, so fleets without it stay readable by older nodes.
   */
  readonly slowStartS?: number;
  /**
   * Backups (`members[].backup`) take new flows while fewer than this many primaries do (backup-activation.ts, F5's
   * priority group activation). Absent: 1 (only when none does); set by parseFleet only when not 1.
   */
  readonly minActiveMembers?: number;
  /**
   * The pool's VIPs are announced while at least this many members take new flows (min-up-members.ts, F5's pool
   * `min-up-members`): fewer, and every node withdraws them, so another site announcing them takes the traffic.
   * Absent: 1 (while any does); set by parseFleet only when not 1.
   */
  readonly minUpMembers?: number;
}

export interface Vip {
  /** Canonical IPv4 or IPv6 address. */
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** Name of the pool serving this VIP. */
  readonly pool: string;
  /** Maglev table size M, a prime; default 65,537 (Maglev §3.4). */
  readonly tableSize: number;
  /** `5-tuple` (default) or `source-ip` (client stickiness, fleet-consistent). */
  readonly hash: HashMode;
  /**
   * Timeouts of the VIP's flows (profile.ts, design note 0012). Always set by parseFleet (defaults by protocol);
   * optional so hand-built VIPs stay valid (absent: the defaults of defaultProfile()).
   */
  readonly profile?: VipProfile;
  /**
   * The client prefixes this VIP admits (source-ranges.ts), canonical (`10.0.0.0/8`, `2001:db8::/32`), of the
   * VIP's family. Absent: every client.
   */
  readonly sourceRanges?: readonly string[];
  /**
   * `draining`: announced, open flows continue, new flows refused; `disabled`: no node serves the VIP (vip-state.ts).
   * Absent: `enabled`, served; parseFleet writes only the other two, so fleets that use neither stay readable by
   * nodes that predate the field.
   */
  readonly state?: VipState;
}

export interface Fleet {
  /** Seed of the flow hash (unsigned 32-bit). Absent in a file: the store generates one per fleet once. */
  readonly hashSeed?: number;
  readonly pools: readonly Pool[];
  readonly vips: readonly Vip[];
}
