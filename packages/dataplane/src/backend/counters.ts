/**
 * The backend program's counters (the per-CPU array `l4fb_counters` in native/bpf/backend.bpf.c), summed over
 * CPUs. The slot layout mirrors the C enum: DECAP_BASE + mode * 4 + outer_is_v6 * 2 + inner_is_v6, then the rest.
 */
import { DataPlaneError } from '../errors.js';
import { FORWARDING_MODES, type ForwardingMode } from './options.js';

export interface PacketCount {
  readonly packets: number;
  readonly bytes: number;
}

export type FamilyPair = 'ipv4-in-ipv4' | 'ipv6-in-ipv4' | 'ipv4-in-ipv6' | 'ipv6-in-ipv6';
const FAMILY_PAIRS: readonly FamilyPair[] = ['ipv4-in-ipv4', 'ipv6-in-ipv4', 'ipv4-in-ipv6', 'ipv6-in-ipv6'];

export interface BackendCounters {
  /** Decapsulated and handed to the stack, per mode and (inner-in-outer) family pair. */
  readonly decapsulated: Readonly<Record<ForwardingMode, Readonly<Record<FamilyPair, PacketCount>>>>;
  /** An enabled mode's packet whose outer source is not one of the fleet's nodes: dropped. */
  readonly droppedStranger: PacketCount;
  /** From a node, but a header the program does not accept (GRE flags, GUE variant 0, outer fragment, a second-chance header behind outer IPv4 options): dropped. */
  readonly malformed: PacketCount;
  /** From a node, inner destination not one of this host's VIPs: dropped. */
  readonly droppedNotVip: PacketCount;
  /** bpf_skb_adjust_room refused the decapsulation: dropped. */
  readonly decapFailed: PacketCount;
  /** Not the fleet's encapsulation (the host's own traffic): handed to the stack unchanged. */
  readonly passed: PacketCount;
  /** Second chance (docs/design/0011-second-chance.md), for GUE packets naming a previous owner. */
  readonly secondChance: {
    /**
     * No socket here for a non-SYN TCP packet (or for the segment an ICMP frag-needed / packet-too-big quotes): sent
     * on to the previous owner.
     */
    readonly forwarded: PacketCount;
    /** Arrived with its second chance used (from a peer) and found its socket here: a rescued flow. */
    readonly received: PacketCount;
    /** Second chance used and no socket here either: decapsulated, the stack answers with a reset. */
    readonly missed: PacketCount;
    /** A SYN, or the socket is here: decapsulated here (the common case). */
    readonly local: PacketCount;
    /** The inner headers could not be pulled into the linear data, or the forward written or sent: dropped. */
    readonly failed: PacketCount;
  };
}

const SLOT_STRANGER = 12;
const SLOT_MALFORMED = 13;
const SLOT_NOT_VIP = 14;
const SLOT_PASSED = 15;
const SLOT_DECAP_FAILED = 16;
const SLOT_SC = { forwarded: 17, received: 18, missed: 19, failed: 20, local: 21 } as const;
const VALUE_BYTES = 16;

/** One entry of `bpftool -j map dump` of a per-CPU array: raw little-endian bytes as "0x.." strings. */
interface DumpEntry {
  readonly key: readonly string[];
  readonly values: readonly { readonly cpu: number; readonly value: readonly string[] }[];
}

function bytesOf(hex: readonly string[], what: string): Buffer {
  if (!Array.isArray(hex) || hex.some((h) => typeof h !== 'string' || !/^0x[0-9a-f]{2}$/i.test(h))) {
    throw new DataPlaneError('BACKEND_RECORD_INVALID', `counters: ${what} is not a list of bytes`);
  }
  return Buffer.from(hex.map((h) => Number.parseInt(h.slice(2), 16)));
}

/** Sums `bpftool -j map dump pinned .../l4fb_counters` over CPUs; throws on anything it cannot read. */
export function parseCounterDump(json: string): BackendCounters {
  let entries: DumpEntry[];
  try {
    entries = JSON.parse(json) as DumpEntry[];
  } catch (err) {
    throw new DataPlaneError('BACKEND_RECORD_INVALID', 'counters: bpftool printed no JSON', { cause: err });
  }
  if (!Array.isArray(entries)) throw new DataPlaneError('BACKEND_RECORD_INVALID', 'counters: not a list');
  const slots = new Map<number, { packets: number; bytes: number }>();
  const refuse = (message: string): never => {
    throw new DataPlaneError('BACKEND_RECORD_INVALID', `counters: ${message}`);
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  // Each entry checked before it is read: a bpftool of another version (or another map) must be refused, never
  // read as zeros or thrown at `backend status` as a bare TypeError.
  for (const [n, e] of entries.entries()) {
    if (!isObject(e)) return refuse(`entry ${n} ${JSON.stringify(e)} is not {key, values}`);
    const key = bytesOf(e.key, 'a key');
    if (key.length !== 4) refuse(`entry ${n}: key ${JSON.stringify(e.key)} has ${key.length} bytes, not 4`);
    const slot = key.readUInt32LE(0);
    if (!Array.isArray(e.values)) refuse(`entry ${n} (slot ${slot}): values ${JSON.stringify(e.values)} is not a list`);
    const sum = { packets: 0, bytes: 0 };
    for (const [i, v] of e.values.entries()) {
      if (!isObject(v) || v.value === undefined) {
        refuse(`entry ${n} (slot ${slot}): values[${i}] ${JSON.stringify(v)} is not {value}`);
      }
      const b = bytesOf(v.value, `slot ${slot}`);
      if (b.length !== VALUE_BYTES) {
        throw new DataPlaneError('BACKEND_RECORD_INVALID', `counters: slot ${slot} value has ${b.length} bytes`);
      }
      sum.packets += Number(b.readBigUInt64LE(0));
      sum.bytes += Number(b.readBigUInt64LE(8));
    }
    slots.set(slot, sum);
  }
  const at = (slot: number): PacketCount => slots.get(slot) ?? { packets: 0, bytes: 0 };
  const decapsulated = Object.fromEntries(
    FORWARDING_MODES.map((mode) => [
      mode,
      Object.fromEntries(FAMILY_PAIRS.map((pair, i) => [pair, at(modeIndex(mode) * 4 + i)])),
    ]),
  ) as BackendCounters['decapsulated'];
  return {
    decapsulated,
    droppedStranger: at(SLOT_STRANGER),
    malformed: at(SLOT_MALFORMED),
    droppedNotVip: at(SLOT_NOT_VIP),
    decapFailed: at(SLOT_DECAP_FAILED),
    passed: at(SLOT_PASSED),
    secondChance: {
      forwarded: at(SLOT_SC.forwarded),
      received: at(SLOT_SC.received),
      missed: at(SLOT_SC.missed),
      local: at(SLOT_SC.local),
      failed: at(SLOT_SC.failed),
    },
  };
}

/** MODE_* in the C program: gue 0, ipip 1, gre 2 (the order of FORWARDING_MODES). */
export function modeIndex(mode: ForwardingMode): number {
  return FORWARDING_MODES.indexOf(mode);
}

/** Total decapsulated packets over every mode and family pair. */
export function totalDecapsulated(c: BackendCounters): number {
  let n = 0;
  for (const mode of FORWARDING_MODES) for (const pair of FAMILY_PAIRS) n += c.decapsulated[mode][pair].packets;
  return n;
}

/** Human-readable lines for `l4fleet backend status`: non-zero decap rows, then every drop and pass counter. */
export function formatCounters(c: BackendCounters): string[] {
  const lines: string[] = [];
  const row = (name: string, v: PacketCount) =>
    `  ${name.padEnd(28)} ${String(v.packets).padStart(12)} pkts ${v.bytes} B`;
  for (const mode of FORWARDING_MODES) {
    for (const pair of FAMILY_PAIRS) {
      const v = c.decapsulated[mode][pair];
      if (v.packets > 0) lines.push(row(`decapsulated ${mode} ${pair}`, v));
    }
  }
  if (lines.length === 0) lines.push(row('decapsulated', { packets: 0, bytes: 0 }));
  lines.push(row('dropped stranger', c.droppedStranger));
  lines.push(row('dropped not a VIP', c.droppedNotVip));
  lines.push(row('dropped malformed', c.malformed));
  lines.push(row('dropped decap failed', c.decapFailed));
  lines.push(row('passed (not encapsulated)', c.passed));
  const sc = c.secondChance;
  lines.push(row('second chance forwarded', sc.forwarded));
  lines.push(row('second chance received', sc.received));
  lines.push(row('second chance missed', sc.missed));
  lines.push(row('second chance local', sc.local));
  lines.push(row('second chance failed', sc.failed));
  return lines;
}
