/**
 * Byte layouts of the node program's map keys and values (native/bpf/node-maps.h, host byte order except
 * where the header says network order) and of the loader's dump and stats replies (native/bpf-loader/).
 */
import { BPF_MAX_VIP_MEMBERS } from '@l4fleet/config';
import { MAX_TABLE_SIZE } from '@l4fleet/maglev';
import { hexToAddress } from '../nft/names.js';
import type { Forwarding } from '../types.js';
import { addr16, familyOf, keyAddress, unreadable } from './codec-bytes.js';
import { decodeRanges, type KernelRanges } from './codec-ranges.js';

export { encodeSourceKey, type KernelRanges, rangeKey, SOURCE_KEY_BYTES } from './codec-ranges.js';

/** An address from its bytes in hex, in canonical text (RFC 5952 for IPv6). */
export function addressText(hex: string): string {
  return hexToAddress(hex);
}

export const NO_BACKEND_ID = 0xffff_ffff;
export const MAX_VIPS = 4096;
/**
 * Backend ids (node-maps.h L4F_MAX_BACKENDS): one per VIP and backend address. @l4fleet/config's BPF_MAX_VIP_MEMBERS
 * is this number (plan.test.ts checks both), so `apply` can note a fleet that bpf nodes will refuse.
 */
export const MAX_BACKENDS = BPF_MAX_VIP_MEMBERS;
export const MAX_TABLES = 2 * MAX_VIPS;

/** OP_UPDATE / OP_DELETE map numbers (small_maps[] in native/bpf-loader/state.c). */
export const MapId = { vips: 0, vipAddrs: 1, backends: 2, config: 3, sourceRanges: 4 } as const;
export type MapId = (typeof MapId)[keyof typeof MapId];

export const VIP_KEY_BYTES = 20;
export const VIP_BYTES = 24;
export const ADDR_KEY_BYTES = 20;
export const BACKEND_BYTES = 28;
export const CONFIG_BYTES = 24;

const FWD: readonly Forwarding[] = ['l2', 'ipip', 'gre', 'gue'];
const PROTO = { tcp: 6, udp: 17 } as const;
export const BACKEND_LIVE = 1;
export const BACKEND_HAS_MAC = 2;
/** l4f_vip.flags: the VIP admits only the sources of its l4f_src_ranges entries. */
export const VIP_SOURCE_RANGES = 1;
/** l4f_vip.flags: the VIP drains (node-core.h pick: no SYN, no UDP flow the node does not remember). */
export const VIP_DRAINING = 2;

/** Counter slots of l4f_stats (node-maps.h). */
export const STAT = {
  port: 0,
  'no-backend': 1,
  fragment: 2,
  'too-big': 3,
  'no-source': 4,
  'encap-failed': 5,
  source: 6,
  icmpForwarded: 8,
  icmpUnmatched: 9,
  secondChanceTagged: 10,
  xdpForwarded: 11,
  icmpEcho: 12,
} as const;

export interface VipKey {
  readonly family: 4 | 6;
  readonly addressHex: string;
  readonly port: number;
  readonly protocol: 'tcp' | 'udp';
}

export interface VipValue {
  readonly id: number;
  readonly table: number;
  readonly size: number;
  readonly seed: number;
  readonly hash: '5-tuple' | 'source-ip';
  readonly forwarding: Forwarding;
  readonly guePort: number;
  /** Only the sources in l4f_src_ranges under this VIP's id are admitted (VIP_SOURCE_RANGES). */
  readonly sourceRanges: boolean;
  /** The VIP drains (VIP_DRAINING). */
  readonly draining: boolean;
}

export interface BackendValue {
  readonly family: 4 | 6;
  readonly addressHex: string;
  readonly mac?: string;
  readonly live: boolean;
  readonly vipId: number;
}

export interface ConfigValue {
  readonly src4?: string;
  readonly src6?: string;
}

export function encodeVipKey(k: VipKey): Buffer {
  const b = Buffer.alloc(VIP_KEY_BYTES);
  addr16(k.addressHex).copy(b, 0);
  b.writeUInt16BE(k.port, 16);
  b[18] = PROTO[k.protocol];
  b[19] = k.family;
  return b;
}

export function decodeVipKey(b: Buffer, at: number): VipKey {
  const key = `key ${b.toString('hex', at, at + VIP_KEY_BYTES)}`;
  const family = familyOf(b[at + 19], 'l4f_vips', key);
  const proto = b[at + 18] as number;
  if (proto !== PROTO.tcp && proto !== PROTO.udp)
    throw unreadable('l4f_vips', key, 'protocol', proto, '6 (tcp) or 17 (udp)');
  return {
    family,
    addressHex: keyAddress(b, at, family, 'l4f_vips', key),
    port: b.readUInt16BE(at + 16),
    protocol: proto === PROTO.udp ? 'udp' : 'tcp',
  };
}

export function encodeVip(v: VipValue): Buffer {
  const b = Buffer.alloc(VIP_BYTES);
  b.writeUInt32LE(v.id, 0);
  b.writeUInt32LE(v.table, 4);
  b.writeUInt32LE(v.size, 8);
  b.writeUInt32LE(v.seed >>> 0, 12);
  b[16] = v.hash === 'source-ip' ? 1 : 0;
  b[17] = FWD.indexOf(v.forwarding);
  b.writeUInt16BE(v.guePort, 18);
  b[20] = (v.sourceRanges ? VIP_SOURCE_RANGES : 0) | (v.draining ? VIP_DRAINING : 0);
  return b;
}

/** An l4f_vips value; `key` names its entry in errors (the VIP's text). */
export function decodeVip(b: Buffer, at: number, key: string): VipValue {
  const hash = b[at + 16] as number;
  if (hash > 1) throw unreadable('l4f_vips', key, 'hash', hash, '0 (5-tuple) or 1 (source-ip)');
  const fwd = b[at + 17] as number;
  const forwarding = FWD[fwd];
  if (forwarding === undefined)
    throw unreadable('l4f_vips', key, 'forwarding', fwd, `0-${FWD.length - 1} (${FWD.join(', ')})`);
  // The plan takes id, table and size as they are: an id past MAX_VIPS puts its next table past l4f_tables (the
  // loader refuses that create, and every later apply with it), another VIP's table index makes both VIPs write one
  // table, and a size the slots cannot have is never compared right.
  const id = b.readUInt32LE(at);
  if (id >= MAX_VIPS) throw unreadable('l4f_vips', key, 'id', id, `below ${MAX_VIPS}`);
  const table = b.readUInt32LE(at + 4);
  if (table >>> 1 !== id)
    throw unreadable('l4f_vips', key, 'table', table, `${2 * id} or ${2 * id + 1} (2 x id ${id}, either generation)`);
  const size = b.readUInt32LE(at + 8);
  if (size < 2 || size > MAX_TABLE_SIZE)
    throw unreadable('l4f_vips', key, 'size', size, `a table size from 2 to ${MAX_TABLE_SIZE}`);
  return {
    id,
    table,
    size,
    seed: b.readUInt32LE(at + 12),
    hash: hash === 1 ? 'source-ip' : '5-tuple',
    forwarding,
    guePort: b.readUInt16BE(at + 18),
    sourceRanges: ((b[at + 20] as number) & VIP_SOURCE_RANGES) !== 0,
    draining: ((b[at + 20] as number) & VIP_DRAINING) !== 0,
  };
}

export function encodeAddrKey(family: 4 | 6, addressHex: string): Buffer {
  const b = Buffer.alloc(ADDR_KEY_BYTES);
  addr16(addressHex).copy(b, 0);
  b[16] = family;
  return b;
}

export function decodeAddrKey(b: Buffer, at: number): { family: 4 | 6; addressHex: string } {
  const key = `key ${b.toString('hex', at, at + ADDR_KEY_BYTES)}`;
  const family = familyOf(b[at + 16], 'l4f_vip_addrs', key);
  // The program's lookups have the pad zero: an entry with pad set is never found (as keyAddress).
  const pad = b.subarray(at + 17, at + ADDR_KEY_BYTES);
  if (pad.some((x) => x !== 0)) throw unreadable('l4f_vip_addrs', key, 'pad', pad.toString('hex'), '000000');
  return { family, addressHex: keyAddress(b, at, family, 'l4f_vip_addrs', key) };
}

export function encodeBackend(v: BackendValue): Buffer {
  const b = Buffer.alloc(BACKEND_BYTES);
  addr16(v.addressHex).copy(b, 0);
  if (v.mac) Buffer.from(v.mac.replaceAll(':', ''), 'hex').copy(b, 16);
  b[22] = v.family;
  b[23] = (v.live ? BACKEND_LIVE : 0) | (v.mac ? BACKEND_HAS_MAC : 0);
  b.writeUInt32LE(v.vipId, 24);
  return b;
}

/** An l4f_backends value (the dump lists only ids with a family: 0 is an unused id). */
export function decodeBackend(b: Buffer, at: number, id: number): BackendValue {
  const family = familyOf(b[at + 22], 'l4f_backends', `id ${id}`);
  const flags = b[at + 23] as number;
  const mac =
    flags & BACKEND_HAS_MAC
      ? [...b.subarray(at + 16, at + 22)].map((x) => x.toString(16).padStart(2, '0')).join(':')
      : undefined;
  return {
    family,
    addressHex: b.subarray(at, at + (family === 4 ? 4 : 16)).toString('hex'),
    ...(mac ? { mac } : {}),
    live: (flags & BACKEND_LIVE) !== 0,
    vipId: b.readUInt32LE(at + 24),
  };
}

export function encodeConfig(c: ConfigValue): Buffer {
  const b = Buffer.alloc(CONFIG_BYTES);
  if (c.src6) addr16(c.src6).copy(b, 0);
  if (c.src4) Buffer.from(c.src4, 'hex').copy(b, 16);
  b.writeUInt32LE((c.src4 ? 1 : 0) | (c.src6 ? 2 : 0), 20);
  return b;
}

function decodeConfig(b: Buffer, at: number): ConfigValue {
  const flags = b.readUInt32LE(at + 20);
  return {
    ...(flags & 1 ? { src4: b.subarray(at + 16, at + 20).toString('hex') } : {}),
    ...(flags & 2 ? { src6: b.subarray(at, at + 16).toString('hex') } : {}),
  };
}

export interface Dump {
  readonly vips: { readonly key: VipKey; readonly value: VipValue }[];
  readonly addrs: { readonly family: 4 | 6; readonly addressHex: string }[];
  readonly backends: Map<number, BackendValue>;
  readonly config: ConfigValue | undefined;
  readonly tables: Map<number, Uint32Array>;
  /** Second chance: per table with any, its slots' previous owners (id + 1, 0 = none; src/bpf/previous.ts). */
  readonly previous: Map<number, Uint32Array>;
  /** l4f_src_ranges: per VIP id, its prefixes (decodeRanges). */
  readonly ranges: KernelRanges;
}

/**
 * `n` u32 (host byte order, as the loader writes them) at `b[at]` as a Uint32Array: a view of the reply
 * when it is 4-byte aligned (a restart reads 256 KB per table: no copy), else a copy.
 */
export function u32View(b: Buffer, at: number, n: number): Uint32Array {
  if (at + 4 * n > b.length) throw new RangeError(`${n} u32 at ${at} past the end (${b.length} bytes)`);
  if ((b.byteOffset + at) % 4 === 0) return new Uint32Array(b.buffer, b.byteOffset + at, n);
  const out = new Uint32Array(n);
  Buffer.from(out.buffer).set(b.subarray(at, at + 4 * n));
  return out;
}

/** Parses the loader's OP_DUMP reply (layout at dump() in native/bpf-loader/maps.c). */
export function decodeDump(b: Buffer): Dump {
  let at = 0;
  const u32 = (): number => {
    const v = b.readUInt32LE(at);
    at += 4;
    return v;
  };
  const vips: Dump['vips'] = [];
  /** VIP id -> the label of the VIP with it: two VIPs with one id would share their tables and backend ids. */
  const ids = new Map<number, string>();
  for (let n = u32(); n > 0; n--) {
    const key = decodeVipKey(b, at);
    const label = `${addressText(key.addressHex)}:${key.port}/${key.protocol}`;
    const value = decodeVip(b, at + VIP_KEY_BYTES, label);
    const holder = ids.get(value.id);
    if (holder !== undefined) throw unreadable('l4f_vips', label, 'id', value.id, `unique (${holder} has it)`);
    ids.set(value.id, label);
    vips.push({ key, value });
    at += VIP_KEY_BYTES + VIP_BYTES;
  }
  const addrs: Dump['addrs'] = [];
  for (let n = u32(); n > 0; n--) {
    addrs.push(decodeAddrKey(b, at));
    at += ADDR_KEY_BYTES + 4;
  }
  const backends = new Map<number, BackendValue>();
  /**
   * `vipId/address` -> the backend id with it. The plan keeps one id per VIP and address (plan.ts): of two, it would
   * mark only one down when the address leaves, and the other would keep taking flows.
   */
  const owners = new Map<string, number>();
  for (let n = u32(); n > 0; n--) {
    const id = u32();
    const backend = decodeBackend(b, at, id);
    const owner = `${backend.vipId}/${backend.addressHex}`;
    const holder = owners.get(owner);
    if (holder !== undefined) {
      const what = `${addressText(backend.addressHex)} of VIP id ${backend.vipId}`;
      throw unreadable('l4f_backends', `id ${id}`, 'address', what, `unique (backend id ${holder} has it)`);
    }
    owners.set(owner, id);
    backends.set(id, backend);
    at += BACKEND_BYTES;
  }
  const haveConfig = u32() === 1;
  const config = haveConfig ? decodeConfig(b, at) : undefined;
  at += CONFIG_BYTES;
  const tables = new Map<number, Uint32Array>();
  for (let n = u32(); n > 0; n--) {
    const idx = u32();
    const size = u32();
    const slots = u32View(b, at, size);
    at += 4 * size;
    tables.set(idx, slots);
  }
  const previous = new Map<number, Uint32Array>();
  for (let n = at < b.length ? u32() : 0; n > 0; n--) {
    const idx = u32();
    const prev = new Uint32Array(tables.get(idx)?.length ?? 0);
    for (let c = u32(); c > 0; c--) {
      const slot = u32();
      const value = u32();
      if (slot < prev.length) prev[slot] = value;
    }
    previous.set(idx, prev);
  }
  // Absent from an older loader's dump (no l4f_src_ranges): no ranges.
  const families = new Map(vips.map((v) => [v.value.id, v.key.family]));
  const ranges = at < b.length ? decodeRanges(b, at, families) : new Map();
  return { vips, addrs, backends, config, tables, previous, ranges };
}
