/**
 * Checks the whole desired state before anything touches the kernel or a socket, so a refused apply()
 * loses nothing. Returns each VIP with its parsed address and a stable key.
 */
import {
  DEFAULT_GUE_PORT,
  MAX_SOURCE_RANGES_PER_VIP,
  MAX_TOTAL_SOURCE_RANGES,
  parseSourcePrefix,
  type SourcePrefix,
  vipKey,
} from '@l4fleet/config';
import { assertTableSize, type IpFamily, type MaglevError, NO_BACKEND, parseAddress } from '@l4fleet/maglev';
import { DataPlaneError } from './errors.js';
import { type Forwarding, keepsFlows, type VipTable } from './types.js';
import { type ResolvedProfile, resolveProfile } from './vip-profile.js';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const FORWARDING: readonly Forwarding[] = ['l2', 'ipip', 'gre', 'gue', 'nat'];
/** What a driver takes when it does not say: every direct-return mode; `nat` needs conntrack (nftables says so). */
const DIRECT_RETURN: readonly Forwarding[] = ['l2', 'ipip', 'gre', 'gue'];

export interface NormalizedBackend {
  readonly name: string;
  readonly address: string;
  /** Address bytes in hex: the identity used across VIPs (one textual form per address). */
  readonly addressHex: string;
  readonly port: number;
  readonly mac?: string;
  /** Its remembered flows stay on it (types.ts keepsFlows): false for a `down` backend of a `reselect` VIP. */
  readonly keepsFlows: boolean;
}

export interface NormalizedVip {
  /** `v_<address hex>_<protocol>_<port>`: stable, and a valid nft identifier. */
  readonly key: string;
  /** `address:port/protocol` for logs and reports. */
  readonly label: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly table: VipTable;
  readonly backends: readonly NormalizedBackend[];
  readonly forwarding: Forwarding;
  readonly guePort: number;
  /** The table's profile, or its protocol's defaults. */
  readonly profile: ResolvedProfile;
  /** The table's `sourceRanges` parsed (network bytes, length), or undefined: every source. */
  readonly sources?: readonly SourcePrefix[];
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fail(code: ConstructorParameters<typeof DataPlaneError>[0], message: string, cause?: unknown): never {
  throw new DataPlaneError(code, message, cause === undefined ? undefined : { cause });
}

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65_535;
}

function parse(text: string, field: string): { family: IpFamily; bytes: Uint8Array } {
  try {
    return parseAddress(text, field);
  } catch (err) {
    return fail(field.includes('backends') ? 'BACKEND_INVALID' : 'VIP_INVALID', (err as Error).message, err);
  }
}

export interface ValidateOptions {
  /** Direct server return does not rewrite the packet: backend port must equal the VIP port (not under `nat`). */
  readonly requireSamePort: boolean;
  /**
   * Forwarding modes the driver implements (default: the direct-return ones, l2 ipip gre gue); another one is
   * refused (FORWARDING_UNSUPPORTED).
   */
  readonly forwarding?: readonly Forwarding[];
  /** Names the driver in that error. */
  readonly driver?: string;
}

function validateVip(t: VipTable, i: number, opts: ValidateOptions): NormalizedVip {
  const at = `desired[${i}]`;
  if (t === null || typeof t !== 'object' || t.vip === null || typeof t.vip !== 'object') {
    fail('VIP_INVALID', `${at}: ${JSON.stringify(t)} is not a VipTable`);
  }
  const { address, port, protocol } = t.vip;
  const vip = parse(address, `${at}.vip.address`);
  const label = vipKey(t.vip);
  if (!isPort(port)) fail('VIP_INVALID', `${at}.vip.port: ${String(port)} is not a port (1-65535)`);
  if (protocol !== 'tcp' && protocol !== 'udp') {
    fail('VIP_INVALID', `${at}.vip.protocol: ${JSON.stringify(protocol)} is not "tcp" or "udp"`);
  }
  if (t.hash !== '5-tuple' && t.hash !== 'source-ip') {
    fail('VIP_INVALID', `vip ${label}: hash ${JSON.stringify(t.hash)} is not "5-tuple" or "source-ip"`);
  }
  if (!Number.isInteger(t.seed) || t.seed < 0 || t.seed > 0xffff_ffff) {
    fail('VIP_INVALID', `vip ${label}: seed ${String(t.seed)} is not an unsigned 32-bit integer`);
  }
  const forwarding = t.forwarding ?? 'l2';
  if (!FORWARDING.includes(forwarding)) {
    fail(
      'VIP_INVALID',
      `vip ${label}: forwarding ${JSON.stringify(t.forwarding)} is not one of ${FORWARDING.join(' | ')}`,
    );
  }
  const supported = opts.forwarding ?? DIRECT_RETURN;
  if (!supported.includes(forwarding)) {
    const why =
      forwarding === 'nat'
        ? 'nat needs connection tracking: use the nftables data plane'
        : 'the bpf data plane encapsulates';
    fail(
      'FORWARDING_UNSUPPORTED',
      `vip ${label}: forwarding "${forwarding}" is not supported by ${opts.driver ? `the ${opts.driver}` : 'this'} ` +
        `data plane (supported: ${supported.join(' | ')}; ${why})`,
    );
  }
  const onMemberDown = t.onMemberDown ?? 'keep';
  if (onMemberDown !== 'keep' && onMemberDown !== 'reselect') {
    fail('VIP_INVALID', `vip ${label}: onMemberDown ${JSON.stringify(t.onMemberDown)} is not one of keep | reselect`);
  }
  if (onMemberDown === 'reselect' && forwarding === 'nat') {
    fail('VIP_INVALID', `vip ${label}: onMemberDown "reselect" is not supported with forwarding "nat"`);
  }
  const guePort = t.guePort ?? DEFAULT_GUE_PORT;
  if (!isPort(guePort)) fail('VIP_INVALID', `vip ${label}: guePort ${String(t.guePort)} is not a port (1-65535)`);
  if (!Array.isArray(t.backends)) fail('BACKEND_INVALID', `vip ${label}: backends is not an array`);
  const names = new Set<string>();
  const backends = t.backends.map((b, j): NormalizedBackend => {
    const bat = `vip ${label}: backends[${j}]`;
    if (typeof b?.name !== 'string' || b.name === '')
      fail('BACKEND_INVALID', `${bat}.name: ${JSON.stringify(b?.name)} is empty`);
    if (names.has(b.name)) fail('BACKEND_INVALID', `${bat}.name: "${b.name}" appears more than once`);
    names.add(b.name);
    const parsed = parse(b.address, `${bat}.address`);
    if (parsed.family !== vip.family) {
      fail(
        'BACKEND_FAMILY_MISMATCH',
        `${bat}.address: ${b.address} is IPv${parsed.family} but the VIP is IPv${vip.family} ("${b.name}")`,
      );
    }
    if (!isPort(b.port)) fail('BACKEND_INVALID', `${bat}.port: ${String(b.port)} is not a port (1-65535)`);
    if (opts.requireSamePort && forwarding !== 'nat' && b.port !== port) {
      fail(
        'BACKEND_PORT_MISMATCH',
        `${bat}.port: ${b.port} differs from the VIP port ${port}; direct server return does not rewrite ports`,
      );
    }
    let mac: string | undefined;
    if (b.mac !== undefined) {
      mac = String(b.mac).toLowerCase();
      if (!MAC.test(mac)) fail('BACKEND_INVALID', `${bat}.mac: ${JSON.stringify(b.mac)} is not a MAC address`);
    }
    if (b.down !== undefined && typeof b.down !== 'boolean') {
      fail('BACKEND_INVALID', `${bat}.down: ${JSON.stringify(b.down)} is not true or false`);
    }
    return {
      name: b.name,
      address: b.address,
      addressHex: toHex(parsed.bytes),
      port: b.port,
      ...(mac ? { mac } : {}),
      keepsFlows: keepsFlows(t, b),
    };
  });
  if (!(t.slots instanceof Int32Array)) fail('SLOTS_INVALID', `vip ${label}: slots is not an Int32Array`);
  try {
    assertTableSize(t.slots.length, backends.length);
  } catch (err) {
    fail('SLOTS_INVALID', `vip ${label}: slots.length: ${(err as MaglevError).message}`, err);
  }
  for (let s = 0; s < t.slots.length; s++) {
    const v = t.slots[s] as number;
    if (v !== NO_BACKEND && (v < 0 || v >= backends.length)) {
      fail('SLOTS_INVALID', `vip ${label}: slots[${s}]: ${v} is not a backend index (0-${backends.length - 1} or -1)`);
    }
  }
  const prev = t.previousSlots;
  if (prev !== undefined) {
    if (!(prev instanceof Int32Array) || prev.length !== t.slots.length) {
      fail('SLOTS_INVALID', `vip ${label}: previousSlots: not an Int32Array of ${t.slots.length} slots`);
    }
    for (let s = 0; s < prev.length; s++) {
      const v = prev[s] as number;
      if (v !== NO_BACKEND && (v < 0 || v >= backends.length)) {
        fail(
          'SLOTS_INVALID',
          `vip ${label}: previousSlots[${s}]: ${v} is not a backend index (0-${backends.length - 1} or -1)`,
        );
      }
    }
  }
  const sources = validateSources(t.sourceRanges, label, vip.family);
  if (t.draining !== undefined && typeof t.draining !== 'boolean') {
    fail('VIP_INVALID', `vip ${label}: draining: ${JSON.stringify(t.draining)} is not true or false`);
  }
  const addressHex = toHex(vip.bytes);
  return {
    key: `v_${addressHex}_${protocol}_${port}`,
    label,
    family: vip.family,
    addressHex,
    table: t,
    backends,
    forwarding,
    guePort,
    profile: resolveProfile(label, protocol, t.profile),
    ...(sources ? { sources } : {}),
  };
}

/**
 * Lists already checked, by identity: the agent hands the same table objects (and so the same arrays) to every apply
 * until the fleet changes, and parsing 16,384 prefixes costs 30-50 ms. The arrays are read-only (VipTable says so).
 */
const checkedSources = new WeakMap<readonly unknown[], { family: IpFamily; sources: readonly SourcePrefix[] }>();

/**
 * `sourceRanges` as @l4fleet/config's parseFleet leaves them: a non-empty list of canonical prefixes of the VIP's
 * family, no duplicates. The kernel drivers key their matchers by the canonical text, so another spelling is refused
 * rather than rewritten.
 */
function validateSources(ranges: unknown, label: string, family: IpFamily): readonly SourcePrefix[] | undefined {
  if (ranges === undefined) return undefined;
  const known = Array.isArray(ranges) ? checkedSources.get(ranges) : undefined;
  if (known && known.family === family) return known.sources;
  if (!Array.isArray(ranges) || ranges.length === 0 || ranges.length > MAX_SOURCE_RANGES_PER_VIP) {
    const what = Array.isArray(ranges) ? `${ranges.length} prefixes` : JSON.stringify(ranges);
    fail('VIP_INVALID', `vip ${label}: sourceRanges: ${what} is not a list of 1-${MAX_SOURCE_RANGES_PER_VIP} prefixes`);
  }
  const seen = new Set<string>();
  const sources = ranges.map((r: unknown, j) => {
    const p = typeof r === 'string' ? parseSourcePrefix(r) : 'is not a string';
    if (typeof p === 'string' || p.text !== r || p.family !== family || seen.has(p.text)) {
      const why =
        typeof p === 'string'
          ? p
          : p.text !== r
            ? `is not canonical (${p.text})`
            : p.family !== family
              ? `is IPv${p.family} but the VIP is IPv${family}`
              : 'appears more than once';
      fail('VIP_INVALID', `vip ${label}: sourceRanges[${j}]: ${JSON.stringify(r)} ${why}`);
    }
    seen.add(p.text);
    return p;
  });
  checkedSources.set(ranges, { family, sources });
  return sources;
}

/** Validates every VIP; throws DataPlaneError naming the first bad field. */
export function validateDesired(desired: readonly VipTable[], opts: ValidateOptions): NormalizedVip[] {
  if (!Array.isArray(desired)) fail('VIP_INVALID', `desired: ${typeof desired} is not an array of VipTable`);
  const seen = new Map<string, string>();
  let sources = 0;
  return desired.map((t, i) => {
    const v = validateVip(t, i, opts);
    const prev = seen.get(v.key);
    if (prev !== undefined) fail('VIP_DUPLICATE', `desired[${i}]: vip ${v.label} is already given as ${prev}`);
    seen.set(v.key, v.label);
    sources += v.sources?.length ?? 0;
    if (sources > MAX_TOTAL_SOURCE_RANGES) {
      fail(
        'VIP_INVALID',
        `desired: more than ${MAX_TOTAL_SOURCE_RANGES} sourceRanges prefixes in all VIPs (MAX_TOTAL_SOURCE_RANGES)`,
      );
    }
    return v;
  });
}
