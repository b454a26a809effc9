/** The bpf driver's options, and their checks (each failure names the option and its value). */
import { parseAddress } from '@l4fleet/maglev';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import type { NormalizedVip } from '../validate.js';
import type { ConfigValue } from './codec.js';
import { bpfAvailable, type XdpMode } from './loader.js';

export const DEFAULT_BPFFS_PATH = '/sys/fs/bpf';
export const DEFAULT_PIN_NAME = 'l4fleet';
/**
 * Flows each flow cache remembers (IPv4, IPv6: sets of 4, 16 bytes a flow, so 4 MB each; native/bpf/node-flows.h).
 * A set forgets one of its flows when a fifth arrives, so the default is 4x the 65,536 the flow LRU held before
 * (2026-12-07): with 65,536 flows at once 0.43 % find their set full, in less memory than that LRU (~5.8 MB IPv4).
 */
export const DEFAULT_BPF_FLOW_TABLE_SIZE = 262_144;

export interface BpfDataPlaneOptions {
  /** The node's interface facing the router (and, with `l2`, the backends). */
  readonly interface: string;
  /** The node's own addresses, at most one per family: the outer source of encapsulated packets. */
  readonly nodeAddresses?: readonly string[];
  /** A bpffs mount point; mounted there when it is not one. Default /sys/fs/bpf. */
  readonly bpffsPath?: string;
  /** Pins go to `<bpffsPath>/<pinName>`; one data plane per name. Default "l4fleet". */
  readonly pinName?: string;
  /** Flows per flow cache (one for IPv4, one for IPv6; sets of 4, rounded up); fixed once pinned. Default 262,144. */
  readonly flowTableSize?: number;
  /**
   * `native`: an XDP program in the NIC driver forwards what it can alone and passes the rest to the tc program
   * (node-xdp.h); needs a driver with native XDP and forwarding enabled on the interface. Default `off`.
   */
  readonly xdp?: XdpMode;
  /** Run the loader in this named network namespace (/run/netns/NAME; it setns() itself, network only, so the
   * mounts, and the bpffs, stay this process's); default: the current one. */
  readonly netns?: string;
  readonly logger: Logger;
  /** Runs `mount` (default: a local exec); replaceable in tests. */
  readonly exec?: Exec;
  readonly loaderPath?: string;
  readonly objectPath?: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** An `ip netns` name: a file in /run/netns. */
const NETNS = /^[^/\s]{1,200}$/;

function nodeConfig(addresses: readonly string[] | undefined): ConfigValue {
  const out: { src4?: string; src6?: string } = {};
  if (addresses !== undefined && !Array.isArray(addresses)) {
    throw new DataPlaneError('OPTIONS_INVALID', `nodeAddresses: ${JSON.stringify(addresses)} is not a list`);
  }
  (addresses ?? []).forEach((a, i) => {
    let parsed: ReturnType<typeof parseAddress>;
    try {
      parsed = parseAddress(a, `nodeAddresses[${i}]`);
    } catch (err) {
      throw new DataPlaneError('OPTIONS_INVALID', (err as Error).message, { cause: err });
    }
    const k = parsed.family === 4 ? 'src4' : 'src6';
    if (out[k] !== undefined) {
      throw new DataPlaneError('OPTIONS_INVALID', `nodeAddresses[${i}]: ${a} is a second IPv${parsed.family} address`);
    }
    out[k] = Buffer.from(parsed.bytes).toString('hex');
  });
  return out;
}

export interface CheckedOptions {
  readonly pinDir: string;
  readonly bpffsPath: string;
  readonly flowTableSize: number;
  readonly xdp: XdpMode;
  readonly config: ConfigValue;
}

export function checkOptions(opts: BpfDataPlaneOptions): CheckedOptions {
  if (typeof opts.interface !== 'string' || !/^[^\s"/]{1,15}$/.test(opts.interface)) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `interface: ${JSON.stringify(opts.interface)} is not an interface name`,
    );
  }
  if (
    opts.netns !== undefined &&
    (typeof opts.netns !== 'string' || !NETNS.test(opts.netns) || /^\.\.?$/.test(opts.netns))
  ) {
    throw new DataPlaneError('OPTIONS_INVALID', `netns: ${JSON.stringify(opts.netns)} is not a namespace name`);
  }
  const pinName = opts.pinName ?? DEFAULT_PIN_NAME;
  if (!NAME.test(pinName))
    throw new DataPlaneError('OPTIONS_INVALID', `pinName: ${JSON.stringify(pinName)} is not a name`);
  const bpffsPath = opts.bpffsPath ?? DEFAULT_BPFFS_PATH;
  if (typeof bpffsPath !== 'string' || !bpffsPath.startsWith('/')) {
    throw new DataPlaneError('OPTIONS_INVALID', `bpffsPath: ${JSON.stringify(bpffsPath)} is not an absolute path`);
  }
  const flowTableSize = opts.flowTableSize ?? DEFAULT_BPF_FLOW_TABLE_SIZE;
  if (!Number.isInteger(flowTableSize) || flowTableSize < 1 || flowTableSize > 16_777_216) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `flowTableSize: ${String(opts.flowTableSize)} is not an integer from 1 to 16777216`,
    );
  }
  const xdp = opts.xdp ?? 'off';
  if (xdp !== 'off' && xdp !== 'native') {
    throw new DataPlaneError('OPTIONS_INVALID', `xdp: ${JSON.stringify(opts.xdp)} is not one of off, native`);
  }
  const config = nodeConfig(opts.nodeAddresses);
  const missing = bpfAvailable(opts);
  if (missing !== undefined) {
    throw new DataPlaneError(
      'BPF_UNAVAILABLE',
      `bpf data plane: ${missing} is missing (build @l4fleet/dataplane with clang, libbpf-dev and libelf-dev installed)`,
    );
  }
  return { pinDir: `${bpffsPath.replace(/\/+$/, '')}/${pinName}`, bpffsPath, flowTableSize, xdp, config };
}

/**
 * Refuses a desired state with an encapsulating VIP of a family the node has no address of (the outer source):
 * before anything is written, so the kernel state stays as it was.
 */
export function checkNodeAddresses(
  vips: readonly NormalizedVip[],
  config: ConfigValue,
  nodeAddresses: BpfDataPlaneOptions['nodeAddresses'],
): void {
  for (const v of vips) {
    if (v.forwarding === 'l2') continue;
    if ((v.family === 4 ? config.src4 : config.src6) === undefined) {
      throw new DataPlaneError(
        'NODE_ADDRESS_MISSING',
        `vip ${v.label}: forwarding "${v.forwarding}" needs an IPv${v.family} node address (nodeAddresses: ${JSON.stringify(nodeAddresses ?? [])})`,
      );
    }
  }
}
