/**
 * The nftables node's flow maps as the per-packet bench reads them (per-packet.ts): emptied before a new-flow
 * flood, counted after it, and the flow-table-full counter, so a flood that did not insert every flow fails.
 */
import type { NetnsHost } from '../../../test/support/netns.js';
import { DEFAULT_TABLE_NAME } from '../src/index.js';
import { exactFlowsSet, FLOW_TABLE_FULL, flowsMap, secondFlowsMap } from '../src/nft/names.js';
import { FLOOD_PORT } from './flood.js';
import type { PerPacketFamily } from './per-packet.js';

/** A flood's target: its family, VIP and backend. */
export interface Target {
  readonly family: PerPacketFamily;
  readonly vip: string;
  readonly backendAddress: string;
  /** The minimal baseline chain: only the VIP address matched, `fwd` to the backend. */
  readonly baseline: string;
}

/**
 * Flow-map entries remembered for the flood VIP: the IPv4 flow map, or the IPv6 exact set (an IPv6 flow
 * takes its remembered backend only when its exact 5-tuple is there).
 */
export async function rememberedFlows(node: NetnsHost, t: Target): Promise<number> {
  const set = t.family === 4 ? 'flows4_udp' : 'exact6_udp';
  const out = await node.sh(`nft list ${t.family === 4 ? 'map' : 'set'} netdev ${DEFAULT_TABLE_NAME} ${set}`);
  return out.split(` . ${t.vip} . ${FLOOD_PORT} `).length - 1;
}

/** Elements now in an nft map or set of l4fleet's table (each has a timeout, so "expires" once). */
async function elements(node: NetnsHost, kind: 'map' | 'set', name: string): Promise<number> {
  const r = await node.run(['nft', 'list', kind, 'netdev', DEFAULT_TABLE_NAME, name], { timeoutMs: 60_000 });
  return r.stdout.split(' expires ').length - 1;
}

/** The flood family's UDP flow maps (IPv6: both hashed maps and the exact set), as `kind name` pairs. */
const udpFlowSets = (family: PerPacketFamily): string[] =>
  family === 4
    ? [`map ${flowsMap(4, 'udp')}`]
    : [`map ${flowsMap(6, 'udp')}`, `map ${secondFlowsMap('udp')}`, `set ${exactFlowsSet('udp')}`];

export async function flushFlows(node: NetnsHost, family: PerPacketFamily): Promise<void> {
  const input = udpFlowSets(family)
    .map((x) => `flush ${x.replace(' ', ` netdev ${DEFAULT_TABLE_NAME} `)}\n`)
    .join('');
  await node.run(['nft', '-f', '-'], { input, timeoutMs: 60_000 });
}

/** Packets l4fleet forwarded statelessly because a flow map was full. */
export async function flowTableFullPackets(node: NetnsHost): Promise<number> {
  const out = await node.sh(`nft list counter netdev ${DEFAULT_TABLE_NAME} ${FLOW_TABLE_FULL}`);
  const m = /packets (\d+)/.exec(out);
  if (!m) throw new Error(`flow-table-full counter: unexpected output ${JSON.stringify(out.slice(0, 200))}`);
  return Number(m[1]);
}

/**
 * After an l4fleet new-flow flood of `distinct` tuples of which at most `lost` were lost: every tuple
 * that arrived is remembered (IPv4: the flow map; IPv6: the exact set, and each hashed map but for hash
 * collisions, ~3 expected among 155,000 keys of 32 bits; counted when `all`, as listing them is slow).
 * Returns the smallest count.
 */
export async function checkNewFlowEntries(
  node: NetnsHost,
  t: Target,
  distinct: number,
  lost: number,
  all: boolean,
): Promise<number> {
  const what = `per-packet IPv${t.family} new flows`;
  const exact = await rememberedFlows(node, t);
  if (exact < distinct - lost || exact > distinct) {
    throw new Error(`${what}: ${exact} flows remembered after a flood of ${distinct} new flows (${lost} lost)`);
  }
  let least = exact;
  if (t.family === 6 && all) {
    for (const name of [flowsMap(6, 'udp'), secondFlowsMap('udp')]) {
      const n = await elements(node, 'map', name);
      if (n < (distinct - lost) * 0.99) throw new Error(`${what}: ${n} entries in ${name} after ${distinct} flows`);
      least = Math.min(least, n);
    }
  }
  return least;
}
