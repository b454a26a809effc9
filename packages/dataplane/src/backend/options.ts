/**
 * `l4fleet backend setup` options, validated before anything on the host is read or changed: every problem is
 * listed at once, each naming the flag and the value.
 */

import { posix } from 'node:path';
import { unusableAddress } from '@l4fleet/config';
import { type IpFamily, parseAddress } from '@l4fleet/maglev';
import { DataPlaneError } from '../errors.js';
import { toHex } from '../validate.js';

/** How the fleet's nodes wrap a client's packet for this backend (the pool's `forwarding` in the fleet file). */
export type ForwardingMode = 'gue' | 'ipip' | 'gre';
export const FORWARDING_MODES: readonly ForwardingMode[] = ['gue', 'ipip', 'gre'];

/** GUE's UDP destination port when none is given; the nodes' default too (fleet file `guePort`). */
export const DEFAULT_GUE_PORT = 6080;
/** Where a systemd host mounts its bpf file system. */
export const DEFAULT_BPFFS_DIR = '/sys/fs/bpf';
/** Where the record of a setup lives: /run is cleared at boot, like everything the setup changes. */
export const DEFAULT_STATE_DIR = '/run/l4fleet';
/** The allow lists' capacity (max_entries of the maps in backend.bpf.c). */
export const MAX_NODES = 1024;
export const MAX_VIPS = 4096;

export interface BackendSetupInput {
  readonly vips?: readonly string[];
  readonly forwarding?: readonly string[] | string;
  readonly nodes?: readonly string[];
  readonly guePort?: number | string;
  readonly interface?: string;
  /**
   * The other backends' addresses: second chance (docs/design/0011-second-chance.md) has a backend send a packet
   * it has no socket for on to the previous owner, so each backend must accept packets from its peers. Optional.
   */
  readonly peers?: readonly string[];
  /** Default true: forward a non-SYN TCP packet without a socket here to the previous owner the node named. */
  readonly secondChance?: boolean;
}

export interface HostAddress {
  /** As given, canonicalised through its bytes (`hex`) for comparisons. */
  readonly text: string;
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  readonly hex: string;
}

export interface BackendSetupOptions {
  readonly vips: readonly HostAddress[];
  /** Sorted, unique. */
  readonly forwarding: readonly ForwardingMode[];
  readonly nodes: readonly HostAddress[];
  readonly guePort: number;
  /** Undefined: the interface of the default route. */
  readonly interface?: string;
  /** Other backends allowed as outer sources (second chance); may be empty. */
  readonly peers: readonly HostAddress[];
  readonly secondChance: boolean;
}

/** What an interface name may hold here: no `/` (it goes into sysctl keys), no shell or tc syntax. */
export const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

function addresses(
  field: string,
  role: 'vip' | 'member',
  values: readonly string[] | undefined,
  max: number,
  problems: string[],
  optional = false,
) {
  const out: HostAddress[] = [];
  const seen = new Set<string>();
  if (optional && (values === undefined || values.length === 0)) return out;
  if (values === undefined || values.length === 0) {
    problems.push(`${field}: at least one address is required`);
    return out;
  }
  if (values.length > max) problems.push(`${field}: ${values.length} addresses, at most ${max}`);
  for (const text of values) {
    let parsed: ReturnType<typeof parseAddress>;
    try {
      parsed = parseAddress(text, field);
    } catch {
      problems.push(`${field} ${JSON.stringify(text)}: not an IPv4 or IPv6 address`);
      continue;
    }
    const hex = toHex(parsed.bytes);
    // A VIP must be one a client can reach through the router; a node's or peer's address is an outer source,
    // which no host sends from when it is multicast, broadcast, unspecified or IPv4-mapped (an IPv4 node sends
    // from its IPv4 address: the mapped form would go into the IPv6 allow list and match nothing).
    const why = unusableAddress(text, role);
    if (why !== undefined) {
      problems.push(`${field} ${JSON.stringify(text)}: ${why}`);
      continue;
    }
    if (seen.has(hex)) {
      problems.push(`${field} ${JSON.stringify(text)}: given twice`);
      continue;
    }
    seen.add(hex);
    out.push({ text, family: parsed.family, bytes: parsed.bytes, hex });
  }
  return out;
}

function forwarding(raw: BackendSetupInput['forwarding'], problems: string[]): ForwardingMode[] {
  const list = raw === undefined ? [] : typeof raw === 'string' ? raw.split(',') : raw;
  if (list.length === 0) {
    problems.push(`--forwarding: required, one or more of ${FORWARDING_MODES.join(' | ')}`);
    return [];
  }
  const out = new Set<ForwardingMode>();
  for (const m of list) {
    if ((FORWARDING_MODES as readonly string[]).includes(m)) out.add(m as ForwardingMode);
    else problems.push(`--forwarding ${JSON.stringify(m)}: not one of ${FORWARDING_MODES.join(' | ')}`);
  }
  return [...out].sort();
}

function guePort(raw: BackendSetupInput['guePort'], modes: readonly ForwardingMode[], problems: string[]): number {
  if (raw === undefined) return DEFAULT_GUE_PORT;
  const text = String(raw);
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65_535)) {
    problems.push(`--gue-port ${JSON.stringify(text)}: not a port (1-65535)`);
    return DEFAULT_GUE_PORT;
  }
  if (modes.length > 0 && !modes.includes('gue')) {
    problems.push(`--gue-port ${text}: only meaningful with --forwarding gue (given: ${modes.join(',')})`);
  }
  return port;
}

/** Validates the setup flags; throws DataPlaneError OPTIONS_INVALID listing every problem, one per line. */
export function parseBackendSetupOptions(input: BackendSetupInput): BackendSetupOptions {
  const problems: string[] = [];
  const vips = addresses('--vip', 'vip', input.vips, MAX_VIPS, problems);
  const modes = forwarding(input.forwarding, problems);
  const nodes = addresses('--nodes', 'member', input.nodes, MAX_NODES, problems);
  const port = guePort(input.guePort, modes, problems);
  const peers = addresses('--peers', 'member', input.peers, MAX_NODES, problems, true);
  const distinct = new Set([...nodes, ...peers].map((a) => a.hex)).size;
  if (distinct > MAX_NODES) problems.push(`--nodes and --peers: ${distinct} addresses, at most ${MAX_NODES} together`);
  if (input.secondChance !== undefined && typeof input.secondChance !== 'boolean') {
    problems.push(`--second-chance ${JSON.stringify(input.secondChance)}: not true or false`);
  }
  if (input.interface !== undefined && !IFNAME.test(input.interface)) {
    problems.push(`--interface ${JSON.stringify(input.interface)}: not an interface name`);
  }
  if (problems.length > 0) throw new DataPlaneError('OPTIONS_INVALID', problems.join('\n'));
  return {
    vips,
    forwarding: modes,
    nodes,
    guePort: port,
    ...(input.interface === undefined ? {} : { interface: input.interface }),
    peers,
    secondChance: input.secondChance ?? true,
  };
}

/**
 * `--bpffs` and `--state-dir`, defaulted, absolute, without a trailing `/`: a relative one would name another
 * directory from another working directory (teardown would find no record, a record would hold a relative path
 * that teardown removes pins under), and `/sys/fs/bpf/` must be the same setup as `/sys/fs/bpf`.
 */
export function parseHostDirs(dirs: { readonly bpffs?: string; readonly stateDir?: string }): {
  bpffs: string;
  stateDir: string;
} {
  const problems: string[] = [];
  const dir = (flag: string, value: string): string => {
    if (!value.startsWith('/')) problems.push(`${flag} ${JSON.stringify(value)}: not an absolute path`);
    return posix.normalize(value).replace(/(.)\/+$/, '$1');
  };
  const bpffs = dir('--bpffs', dirs.bpffs ?? DEFAULT_BPFFS_DIR);
  const stateDir = dir('--state-dir', dirs.stateDir ?? DEFAULT_STATE_DIR);
  if (problems.length > 0) throw new DataPlaneError('OPTIONS_INVALID', problems.join('\n'));
  return { bpffs, stateDir };
}
