/**
 * The pinned UDP flood of the per-packet benches (per-packet.ts for nftables, bpf.ts for the bpf driver): its
 * parameters, the VIP it goes to, and the statistics both report with (nearest-rank quantiles).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { buildTable } from '@l4fleet/maglev';
import type { VipTable } from '../src/index.js';

export const FLOOD_PORT = 5401;
export const ROUNDS = Number(process.env.BENCH_PP_ROUNDS ?? 7);
export const PACKETS = Number(process.env.BENCH_PP_PACKETS ?? 150_000);
export const WARMUP_PACKETS = 5_000;
export const FLOWS = 16;
export const PAYLOAD_BYTES = 18; // 18 + 8 UDP + 20 IP + 14 Ethernet = 60 bytes, a minimum frame (IPv6: 40-byte header, 80)
/** Per flood; the flood stops itself there, and is killed 15 s later. */
export const FLOOD_MAX_S = 20;
/** New-flow floods: source ports (sockets) x source addresses = distinct 5-tuples available per flood. */
export const NEW_FLOW_SOCKETS = 64;
export const NEW_FLOW_SOURCES = 4_096;
/**
 * Where the new-flow floods' source addresses come from (RFC 2544's 198.18.0.0/15 benchmark range and the
 * RFC 3849 documentation prefix); the bench routes them back to the client on the router.
 */
export const NEW_FLOW_SOURCE_PREFIXES = { 4: '198.18.176.0/20', 6: '2001:db8:176::/64' } as const;
/**
 * The bench node's flow-map size: one new-flow flood (155,000 new flows) must fit. BENCH_PP_FLOW_TABLE_SIZE sets
 * another for the bpf part (65536, the default flowTableSize: a flood then evicts for most of its first packets).
 */
export const BENCH_FLOW_TABLE_SIZE = Number(process.env.BENCH_PP_FLOW_TABLE_SIZE ?? 262_144);
/** The bench node's UDP flow timeout: the entries must outlive their count after a flood (tens of s). */
export const BENCH_FLOW_TIMEOUT_UDP_S = 300;

/** The UDP VIP the flood goes to; the bench applies it with its other VIPs. */
export function floodVip(vip: string, backendAddress: string): VipTable {
  const backends = [{ name: 'be', address: backendAddress, port: FLOOD_PORT }];
  return {
    vip: { address: vip, port: FLOOD_PORT, protocol: 'udp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends),
  };
}

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
/** Nearest-rank quantile. */
export function quantile(xs: readonly number[], q: number): number {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] as number;
}
export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

export function ksoftirqdPid(cpu: number): number {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === `ksoftirqd/${cpu}`) return Number(pid);
    } catch {
      // exited meanwhile
    }
  }
  return 0;
}
