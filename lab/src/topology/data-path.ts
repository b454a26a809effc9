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
  /** Default: what `forwarding` needs (nat: nftables; ipip, gre, gue: bpf), else bpf (also for routed backends). */
  readonly dataplane?: LabDataPlane | undefined;
  /** Default: `routed` under bpf (unless `forwarding` is l2), else `l2`. */
  readonly backendNetwork?: BackendNetwork | undefined;
  /** Default: `gue` for routed backends under bpf, else `l2`. */
  readonly forwarding?: LabForwarding | undefined;
}

/**
 * The lab's default (issue 14): bpf nodes at tc ingress, backends on their own subnet behind the router, GUE to them.
 * `lab up` runs it on the netns runtime in agent mode when the bpf objects are built (runtime/up-data-path.ts).
 */
export const DEFAULT_DATA_PATH: LabDataPath = { dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue' };
/**
 * nftables with backends on the nodes' segment (L2 direct server return): what the Docker runtime and static mode run,
 * what the netns runtime falls back to without the bpf objects, and what a state written before issue 14 describes.
 */
export const NFTABLES_DATA_PATH: LabDataPath = { dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'l2' };

const ENCAPSULATIONS: readonly LabForwarding[] = ['ipip', 'gre', 'gue'];

/**
 * The data plane the other options ask for when `dataplane` is not given: nat only under nftables, an encapsulation
 * only under bpf, routed backends under bpf (the default's way to reach them); undefined when nothing decides it.
 */
export function impliedDataPlane(options: DataPathOptions): LabDataPlane | undefined {
  if (options.forwarding === 'nat') return 'nftables';
  if (options.forwarding !== undefined && ENCAPSULATIONS.includes(options.forwarding)) return 'bpf';
  if (options.backendNetwork === 'routed') return 'bpf';
  return undefined;
}

function oneOf<T extends string>(flag: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new LabError('OPTION_INVALID', `--${flag} "${value}" is not one of ${allowed.join(', ')}`);
  }
  return value;
}

/**
 * The lab's data path, defaulted (DEFAULT_DATA_PATH, or what the given options imply; `lab up` passes nftables
 * where bpf cannot run: runtime/up-data-path.ts) and checked: every problem names the option and its value.
 * Refused: `l2` forwarding to routed backends (an unchanged frame cannot cross the router), encapsulation under
 * nftables (it forwards at L2 only) or the proxy (it opens its own connections to the members); `nat` under another
 * data plane than nftables (the only driver with NAT). NAT takes either backend network: replies return through the
 * node.
 */
export function dataPathOf(options: DataPathOptions = {}): LabDataPath {
  const implied = impliedDataPlane(options) ?? DEFAULT_DATA_PATH.dataplane;
  const dataplane = oneOf('dataplane', options.dataplane, LAB_DATA_PLANES, implied);
  // bpf reaches routed backends (the default) unless L2 forwarding is asked, which needs them on the segment.
  const backendNetwork = oneOf(
    'backend-network',
    options.backendNetwork,
    BACKEND_NETWORKS,
    dataplane === 'bpf' && options.forwarding !== 'l2' ? 'routed' : 'l2',
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

/**
 * Whether the lab's wiring puts the VIPs on each backend's lo: under l2 only. Encapsulated forwarding: `l4fleet
 * backend setup` does (backend-setup.ts), as on a real host; nat: the members see their own address, no VIP there.
 */
export function vipsOnBackendLo(path: LabDataPath): boolean {
  return !encapsulated(path) && path.forwarding !== 'nat';
}

/** The port members of a VIP on `vipPort` listen on: the same under direct server return, translated under nat. */
export function memberPort(path: LabDataPath, vipPort: number): number {
  return path.forwarding === 'nat' ? vipPort + NAT_MEMBER_PORT_OFFSET : vipPort;
}
