/**
 * The bpf data plane's flow cache as the tests read and write it by hand (bpftool on the pinned maps): the layout of
 * native/bpf/node-maps.h (struct l4f_flow_set: 4 ways of {u64 tag, u64 value}, little-endian) and the set and
 * fingerprint of native/bpf/node-flows.h (flow_find), computed here independently of the C so that a test that
 * writes a flow where this file says and sees the program follow it proves the two agree.
 */
import { type Flow, jhashInto, parseAddress } from '@l4fleet/maglev';
import { bpftool, hexArgs, u32le } from './bpf-driver.js';

/** node-flows.h FLOW_SEED: the cache's own jhash seed, independent of the VIP's hash mode and seed. */
export const FLOW_CACHE_SEED = 0x9e3779b9;
/** node-maps.h L4F_FLOW_WAYS. */
export const FLOW_WAYS = 4;
/** sizeof(struct l4f_flow_set): one cache line. */
const SET_BYTES = 64;
const PREV_SHIFT = 16n;
const CHECK_SHIFT = 33n;
const CHECK_BITS = 0x3fff_ffffn;
const REFERENCED = 1n << 63n;
const PROTO = { tcp: 6, udp: 17 } as const;

/** Sets of a flow map for `flowTableSize` flows (native/bpf-loader/flows.c flow_sets): ceil(n / 4), at least 1. */
export const flowSets = (flowTableSize: number): number => Math.max(1, Math.ceil(flowTableSize / FLOW_WAYS));

/** Ports in network order, the protocol, 3 zero bytes: the tail of struct l4f_flow4 / l4f_flow6. */
function withPorts(key: Uint8Array, at: number, f: Flow): Uint8Array {
  key[at] = f.sport >> 8;
  key[at + 1] = f.sport & 0xff;
  key[at + 2] = f.dport >> 8;
  key[at + 3] = f.dport & 0xff;
  key[at + 4] = PROTO[f.protocol];
  return key;
}

/** struct l4f_flow4 (16 bytes): saddr, daddr as on the wire, sport, dport (network order), proto, pad. */
export function flowKey4(f: Flow): Uint8Array {
  const key = new Uint8Array(16);
  key.set(parseAddress(f.src, 'flow.src').bytes, 0);
  key.set(parseAddress(f.dst, 'flow.dst').bytes, 4);
  return withPorts(key, 8, f);
}

/** struct l4f_flow6 (40 bytes): saddr[16], daddr[16], sport, dport (network order), proto, pad. */
export function flowKey6(f: Flow): Uint8Array {
  const key = new Uint8Array(40);
  key.set(parseAddress(f.src, 'flow.src').bytes, 0);
  key.set(parseAddress(f.dst, 'flow.dst').bytes, 16);
  return withPorts(key, 32, f);
}

/** The flow's key in its family's map. */
export const flowCacheKey = (f: Flow): Uint8Array => (f.dst.includes(':') ? flowKey6(f) : flowKey4(f));

/** The family's map of a flow: `l4f_flows4` or `l4f_flows6`. */
export const flowMap = (f: Flow): string => (f.dst.includes(':') ? 'l4f_flows6' : 'l4f_flows4');

const hashes = new Uint32Array(2);

/** The flow's set (jhash % sets) and fingerprint ((second hash << 32) | jhash | 1; 0 marks an empty way). */
export function flowSlot(key: Uint8Array, sets: number): { set: number; tag: bigint } {
  jhashInto(key, FLOW_CACHE_SEED, hashes);
  const c = hashes[0] as number;
  const b = hashes[1] as number;
  return { set: c % sets, tag: (BigInt(b) << 32n) | BigInt(c) | 1n };
}

/** What a way remembers of a flow (node-maps.h struct l4f_flow_entry `value`). */
export interface FlowValue {
  /** Backend id (16 bits). */
  readonly backend: number;
  /** The previous owner's backend id + 1, as stored (17 bits; 0 = none): second chance. */
  readonly prev: number;
  /** Set by the program on a hit; a set full of flows forgets one not referenced first (CLOCK). */
  readonly referenced: boolean;
}

/** The top 30 bits of `tag`, which its flow's value repeats (node-flows.h flow_check). */
export const flowCheck = (tag: bigint): bigint => (tag >> 34n) & CHECK_BITS;

/** The value of the flow of `tag` (the program trusts a value only with its own flow's check). */
export function encodeFlowValue(v: FlowValue, tag: bigint): bigint {
  return (
    BigInt(v.backend & 0xffff) |
    (BigInt(v.prev & 0x1_ffff) << PREV_SHIFT) |
    (flowCheck(tag) << CHECK_SHIFT) |
    (v.referenced ? REFERENCED : 0n)
  );
}

/** A way's value, and whether its check is the one of `tag` (else the program reads the way as a miss). */
export function decodeFlowValue(v: bigint, tag: bigint): FlowValue & { readonly checked: boolean } {
  return {
    backend: Number(v & 0xffffn),
    prev: Number((v >> PREV_SHIFT) & 0x1_ffffn),
    referenced: (v & REFERENCED) !== 0n,
    checked: ((v >> CHECK_SHIFT) & CHECK_BITS) === flowCheck(tag),
  };
}

interface Way {
  tag: bigint;
  value: bigint;
}

/**
 * bpftool -j prints a map entry's `value` as its raw bytes ("0x1f" strings) and, the map having BTF, a `formatted`
 * copy too; the raw bytes are read, as a JSON number cannot hold a 64-bit tag.
 */
function waysOf(raw: unknown, what: string): Way[] {
  const bytes = (raw as { value?: unknown }).value;
  if (!Array.isArray(bytes) || bytes.length !== SET_BYTES) {
    throw new Error(`${what}: bpftool printed no ${SET_BYTES} raw value bytes: ${JSON.stringify(raw).slice(0, 200)}`);
  }
  const b = Buffer.from(bytes.map((x) => Number(x)));
  return Array.from({ length: FLOW_WAYS }, (_x, w) => ({
    tag: b.readBigUInt64LE(16 * w),
    value: b.readBigUInt64LE(16 * w + 8),
  }));
}

/** The 4 ways of set `set` of the pinned flow map at `pinPath`. */
export function readSet(pinPath: string, set: number): Way[] {
  const out = JSON.parse(bpftool(['-j', 'map', 'lookup', 'pinned', pinPath, 'key', 'hex', ...hexArgs(u32le(set))]));
  return waysOf(out, `${pinPath} set ${set}`);
}

function writeSet(pinPath: string, set: number, ways: readonly Way[]): void {
  const b = Buffer.alloc(SET_BYTES);
  for (const [w, e] of ways.entries()) {
    b.writeBigUInt64LE(e.tag, 16 * w);
    b.writeBigUInt64LE(e.value, 16 * w + 8);
  }
  bpftool(['map', 'update', 'pinned', pinPath, 'key', 'hex', ...hexArgs(u32le(set)), 'value', 'hex', ...hexArgs(b)]);
}

/** Flows the pinned map remembers: its non-empty ways (what the loader's count_flows reports). */
export function countFlows(pinPath: string): number {
  const sets = JSON.parse(bpftool(['-j', 'map', 'dump', 'pinned', pinPath])) as unknown[];
  let n = 0;
  for (const s of sets) for (const w of waysOf(s, pinPath)) n += w.tag !== 0n ? 1 : 0;
  return n;
}

/**
 * Remembers the flow of `key` as `value` in the pinned map of `sets` sets: in the flow's own way, else an empty one
 * (a set already full of other flows is the test's mistake: thrown, not a flow forgotten by hand).
 */
export function writeFlow(pinPath: string, sets: number, key: Uint8Array, value: FlowValue | bigint): void {
  const { set, tag } = flowSlot(key, sets);
  const ways = readSet(pinPath, set);
  const own = ways.findIndex((w) => w.tag === tag);
  const w = own >= 0 ? own : ways.findIndex((x) => x.tag === 0n);
  if (w < 0) throw new Error(`${pinPath}: set ${set} is full, no way for tag 0x${tag.toString(16)}`);
  ways[w] = { tag, value: typeof value === 'bigint' ? value : encodeFlowValue(value, tag) };
  writeSet(pinPath, set, ways);
}

/** The remembered flow of `key` (its way in the set the key hashes to), or undefined. */
export function readFlow(
  pinPath: string,
  sets: number,
  key: Uint8Array,
): (FlowValue & { readonly checked: boolean }) | undefined {
  const { set, tag } = flowSlot(key, sets);
  const way = readSet(pinPath, set).find((w) => w.tag === tag);
  return way === undefined ? undefined : decodeFlowValue(way.value, tag);
}
