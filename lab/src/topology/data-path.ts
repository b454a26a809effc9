/**
 * How the lab's packets reach the backends: the nodes' data plane (agent.yaml `dataplane.driver`), where the
 * backends sit (`l2`: on the nodes' segment; `routed`: on their own subnet behind the router, so only encapsulated
 * packets reach them) and the lab pools' `forwarding` (design note 0007; `nat`: design note 0012). Pure: validated
 * once, at the edge.
 */
import { LabError } from '../errors.js';

export type LabDataPlane = 'nftables' | 'bpf' | 'proxy';
export type BackendNetwork = 'l2' | 'routed';
export type LabForwarding = 'l2' | 'ipip' | 'gre' | 'gue' | 'nat';

export const LAB_DATA_PLANES: readonly LabDataPlane[] = ['nftables', 'bpf', 'proxy'];
export const BACKEND_NETWORKS: readonly BackendNetwork[] = ['l2', 'routed'];
export const LAB_FORWARDINGS: readonly LabForwarding[] = ['l2', 'ipip', 'gre', 'gue', 'nat'];
/**
 * Under `nat` the lab's members listen on the VIP's port plus this (web :80 -> :8080, echo-udp :7000 -> :15000):
 * the lab shows port translation, which only NAT can do (direct server return keeps the port).
 */
export const NAT_MEMBER_PORT_OFFSET = 8_000;

export interface LabDataPath {
  readonly dataplane: LabDataPlane;
  readonly backendNetwork: BackendNetwork;
  /** The lab pools' forwarding; `l2` also for the proxy (which connects to the members itself). */
  readonly forwarding: LabForwarding;
}

export interface DataPathOptions {
  /** Default nftables. */
  readonly dataplane?: LabDataPlane | undefined;
  /** Default l2. */
  readonly backendNetwork?: BackendNetwork | undefined;
  /** Default: `gue` for routed backends under bpf, else `l2`. */
  readonly forwarding?: LabForwarding | undefined;
}

export const DEFAULT_DATA_PATH: LabDataPath = { dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'l2' };

function oneOf<T extends string>(flag: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new LabError('OPTION_INVALID', `--${flag} "${value}" is not one of ${allowed.join(', ')}`);
  }
  return value;
}

/**
 * The lab's data path, defaulted and checked: every problem names the option and its value. Refused: `l2`
 * forwarding to routed backends (an unchanged frame cannot cross the router), encapsulation under nftables (it
 * forwards at L2 only) or the proxy (it opens its own connections to the members); `nat` under another data plane
 * than nftables (the only driver with NAT). NAT takes either backend network: replies return through the node.
 */
export function dataPathOf(options: DataPathOptions = {}): LabDataPath {
  const dataplane = oneOf('dataplane', options.dataplane, LAB_DATA_PLANES, DEFAULT_DATA_PATH.dataplane);
  const backendNetwork = oneOf(
    'backend-network',
    options.backendNetwork,
    BACKEND_NETWORKS,
    DEFAULT_DATA_PATH.backendNetwork,
  );
  const fallback: LabForwarding = dataplane === 'bpf' && backendNetwork === 'routed' ? 'gue' : 'l2';
  const forwarding = oneOf('forwarding', options.forwarding, LAB_FORWARDINGS, fallback);
  if (forwarding === 'nat') {
    // Replies come back through the node (SNAT), so NAT reaches backends on the segment and routed ones alike.
    if (dataplane !== 'nftables') {
      throw new LabError(
        'OPTION_INVALID',
        `--forwarding "nat" needs --dataplane nftables (--dataplane "${dataplane}" ${dataplane === 'proxy' ? 'connects to the members itself' : 'forwards by direct server return only'})`,
      );
    }
    return { dataplane, backendNetwork, forwarding };
  }
  if (dataplane !== 'bpf' && forwarding !== 'l2') {
    throw new LabError(
      'OPTION_INVALID',
      `--forwarding "${forwarding}" needs --dataplane bpf (--dataplane "${dataplane}" forwards ${dataplane === 'proxy' ? 'by connecting to the members itself' : 'at L2 only'}); use --forwarding l2`,
    );
  }
  if (dataplane === 'nftables' && backendNetwork === 'routed') {
    throw new LabError(
      'OPTION_INVALID',
      '--backend-network "routed" needs --dataplane bpf (nftables forwards unchanged frames, which cannot cross the router), proxy, or --forwarding nat',
    );
  }
  if (dataplane === 'bpf' && backendNetwork === 'routed' && forwarding === 'l2') {
    throw new LabError(
      'OPTION_INVALID',
      '--forwarding "l2" cannot reach routed backends (--backend-network "routed": an unchanged frame stops at the router); use --forwarding gue, ipip or gre',
    );
  }
  return { dataplane, backendNetwork, forwarding };
}

/** Whether the backends decapsulate (`l4fleet backend setup`): every forwarding but l2 and nat. */
export function encapsulated(path: LabDataPath): boolean {
  return path.forwarding !== 'l2' && path.forwarding !== 'nat';
}

/** The port members of a VIP on `vipPort` listen on: the same under direct server return, translated under nat. */
export function memberPort(path: LabDataPath, vipPort: number): number {
  return path.forwarding === 'nat' ? vipPort + NAT_MEMBER_PORT_OFFSET : vipPort;
}
