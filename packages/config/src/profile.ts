/**
 * Per-VIP protocol profiles (issue 18): how long a flow's state may sit idle, how long a TCP handshake and a TCP close
 * may take, and what happens to a TCP flow whose state timed out. The classic L4 switches (F5 FastL4, LVS `ipvsadm
 * --set`) have the same knobs. Where each one applies (conntrack timeouts under `forwarding: nat`, flow-affinity
 * timeouts under direct server return, socket timeouts in the proxy) is in docs/design/0012-nat-and-profiles.md.
 *
 * A profile is fully defaulted by parseFleet(). TCP-only fields are absent on a UDP VIP (and refused there), so a parsed
 * fleet parses again unchanged.
 */
import type { ConfigProblem } from './errors.js';
import { checkKeys, intField, isRawObject, oneOfField, type Problems, showValue } from './fields.js';
import {
  MAX_IDLE_TIMEOUT_S,
  MAX_TCP_CLOSE_TIMEOUT_S,
  MAX_TCP_HANDSHAKE_TIMEOUT_S,
  MIN_PROFILE_TIMEOUT_S,
} from './limits.js';
import type { Protocol } from './types.js';

/**
 * `drop`: an expired flow's later packets are dropped (nothing tells the client). `reset`: the client's next segment of
 * an expired TCP flow is answered with a TCP RST (tcp VIPs only: UDP has nothing to reset).
 */
export type OnTimeout = 'drop' | 'reset';

export interface VipProfile {
  /**
   * Seconds a flow's state survives without a packet: TCP established, or UDP in either direction. Default 300 s for
   * tcp (DEFAULT_TCP_IDLE_TIMEOUT_S), 30 s for udp (DEFAULT_UDP_IDLE_TIMEOUT_S).
   */
  readonly idleTimeoutS: number;
  /** tcp only: seconds a connection may stay half-open (SYN sent, no handshake yet); default 10 s. */
  readonly tcpHandshakeTimeoutS?: number;
  /** tcp only: seconds the state of a closing connection (FIN or RST seen) is kept; default 10 s. */
  readonly tcpCloseTimeoutS?: number;
  /** Default `drop`; `reset` only for tcp VIPs. */
  readonly onTimeout: OnTimeout;
}

/** 300 s = 5 min: F5 FastL4's idle timeout, and the nftables driver's flow-affinity default. */
export const DEFAULT_TCP_IDLE_TIMEOUT_S = 300;
/** 30 s: the kernel's conntrack timeout for UDP, and the nftables driver's flow-affinity default. */
export const DEFAULT_UDP_IDLE_TIMEOUT_S = 30;
/** 10 s: a client's SYN is retransmitted at 1 s and 3 s (RFC 6298 §2); F5 FastL4 uses 5 s. */
export const DEFAULT_TCP_HANDSHAKE_TIMEOUT_S = 10;
/** 10 s: long enough for the last ACK after both FINs; the kernel's 120 s TIME_WAIT is for end hosts, not a switch. */
export const DEFAULT_TCP_CLOSE_TIMEOUT_S = 10;
export const DEFAULT_ON_TIMEOUT: OnTimeout = 'drop';

const PROFILE_FIELDS = ['idleTimeoutS', 'tcpHandshakeTimeoutS', 'tcpCloseTimeoutS', 'onTimeout'] as const;

/** A fresh default profile for a VIP of `protocol`. */
export function defaultProfile(protocol: Protocol): VipProfile {
  if (protocol === 'udp') return { idleTimeoutS: DEFAULT_UDP_IDLE_TIMEOUT_S, onTimeout: DEFAULT_ON_TIMEOUT };
  return {
    idleTimeoutS: DEFAULT_TCP_IDLE_TIMEOUT_S,
    tcpHandshakeTimeoutS: DEFAULT_TCP_HANDSHAKE_TIMEOUT_S,
    tcpCloseTimeoutS: DEFAULT_TCP_CLOSE_TIMEOUT_S,
    onTimeout: DEFAULT_ON_TIMEOUT,
  };
}

/** `vips[i].profile` of a VIP of `protocol` (undefined when the protocol itself was invalid: tcp is assumed). */
export function profileField(p: Problems, path: string, v: unknown, protocol: Protocol | undefined): VipProfile {
  const proto = protocol ?? 'tcp';
  const dflt = defaultProfile(proto);
  if (v === undefined || v === null) return dflt;
  if (!isRawObject(v)) {
    p.add(path, `${showValue(v)} is not an object`);
    return dflt;
  }
  checkKeys(p, path, v, PROFILE_FIELDS);
  const seconds = (field: string, max: number, def: number | undefined): number =>
    intField(p, `${path}.${field}`, v[field], MIN_PROFILE_TIMEOUT_S, max, 'a timeout in seconds', def);
  const idleTimeoutS = seconds('idleTimeoutS', MAX_IDLE_TIMEOUT_S, dflt.idleTimeoutS);
  const onTimeout = oneOfField<OnTimeout>(p, `${path}.onTimeout`, v.onTimeout, ['drop', 'reset'], DEFAULT_ON_TIMEOUT);
  if (proto === 'udp') {
    for (const field of ['tcpHandshakeTimeoutS', 'tcpCloseTimeoutS'] as const) {
      if (v[field] !== undefined) p.add(`${path}.${field}`, `${showValue(v[field])}: applies only to tcp VIPs`);
    }
    if (onTimeout === 'reset') {
      p.add(`${path}.onTimeout`, '"reset" applies only to tcp VIPs (UDP has no connection to reset; use drop)');
    }
    return { idleTimeoutS, onTimeout: 'drop' };
  }
  return {
    idleTimeoutS,
    tcpHandshakeTimeoutS: seconds('tcpHandshakeTimeoutS', MAX_TCP_HANDSHAKE_TIMEOUT_S, DEFAULT_TCP_HANDSHAKE_TIMEOUT_S),
    tcpCloseTimeoutS: seconds('tcpCloseTimeoutS', MAX_TCP_CLOSE_TIMEOUT_S, DEFAULT_TCP_CLOSE_TIMEOUT_S),
    onTimeout,
  };
}

/**
 * A VIP address is served by NAT VIPs or by direct-return VIPs, not both: the kernel data plane hands a direct-return
 * address to its netdev chain (which drops the address's other ports) before the IP stack, where NAT happens.
 */
export function natAddressProblems(
  vips: readonly { readonly address: string; readonly pool: string }[],
  natPools: ReadonlySet<string>,
): ConfigProblem[] {
  const first = new Map<string, { nat: boolean; index: number }>();
  const out: ConfigProblem[] = [];
  vips.forEach((vip, k) => {
    const nat = natPools.has(vip.pool);
    const seen = first.get(vip.address);
    if (!seen) first.set(vip.address, { nat, index: k });
    else if (seen.nat !== nat) {
      out.push({
        path: `vips[${k}].pool`,
        message: `"${vip.pool}" forwards ${nat ? 'nat' : 'by direct server return'} but vips[${seen.index}] on the same address ${vip.address} ${seen.nat ? 'uses nat' : 'uses direct server return'}: an address is served by one of the two (use another address)`,
      });
    }
  });
  return out;
}
