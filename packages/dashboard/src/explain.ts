/**
 * `explain flow` for the page: the slot and backend of a flow, and why. The same library calls as
 * `l4fleet explain flow` (packages/cli/src/commands/explain.ts): buildVipTable for the table every node builds,
 * slotOf for the flow hash (Maglev §3.3: slot = hash(5-tuple) mod M), so the page and the nodes agree.
 */
import {
  buildVipTable,
  type DecidedStatus,
  endpointText,
  type Fleet,
  memberKey,
  type Protocol,
  parseVipKey,
  vipKey,
} from '@l4fleet/config';
import { NO_BACKEND, slotOf } from '@l4fleet/maglev';
import { DashboardError } from './errors.js';

export interface ExplainRequest {
  /** Client address (IPv4 or IPv6). */
  readonly src: string;
  readonly sport: number;
  /** The VIP key, `ADDR:PORT/PROTO` (IPv6 as `[ADDR]:PORT/PROTO`). */
  readonly vip: string;
}

export interface FlowExplanation {
  readonly flow: string;
  readonly vip: string;
  readonly pool: string;
  readonly hash: string;
  readonly seed: number;
  readonly tableSize: number;
  readonly slot: number;
  readonly backend: string | null;
  readonly address: string | null;
  readonly checksum: string;
  readonly revision: number;
  /** One sentence per reason, for people. */
  readonly why: readonly string[];
}

export function explainFlow(
  fleet: Fleet,
  decided: DecidedStatus,
  revision: number,
  req: ExplainRequest,
): FlowExplanation {
  let key: string;
  try {
    key = vipKey(parseVipKey(req.vip));
  } catch (err) {
    throw new DashboardError('BAD_REQUEST', `vip: ${(err as Error).message}`, { cause: err });
  }
  const vip = fleet.vips.find((v) => vipKey(v) === key);
  if (!vip) throw new DashboardError('NOT_FOUND', `vip ${key}: not in the fleet (revision ${revision})`);
  const pool = fleet.pools.find((p) => p.name === vip.pool);
  const table = buildVipTable(fleet, vip, decided);
  let slot: number;
  try {
    slot = slotOf(
      { src: req.src, sport: req.sport, dst: vip.address, dport: vip.port, protocol: vip.protocol as Protocol },
      vip.tableSize,
      table.seed,
      vip.hash,
    );
  } catch (err) {
    throw new DashboardError('BAD_REQUEST', `flow: ${(err as Error).message}`, { cause: err });
  }
  const index = table.slots[slot] as number;
  const member = index === NO_BACKEND ? undefined : table.backends[index];
  const hashed = vip.hash === 'source-ip' ? 'the source address' : 'the 5-tuple';
  const why = [
    `hash of ${hashed} with seed 0x${table.seed.toString(16)} picks slot ${slot} of ${vip.tableSize} (Maglev §3.3)`,
  ];
  if (member) {
    const owned = table.slots.filter((i) => i === index).length;
    const decision = decided.get(memberKey(vip.pool, member));
    const status = decision ? `decided ${decision}` : 'no decision yet (counts as up)';
    why.push(
      `slot ${slot} belongs to ${member.name}: ${member.state}, weight ${member.weight}, ${status}; it owns ${owned} of ${vip.tableSize} slots`,
    );
  } else {
    const states = (pool?.members ?? []).map((m) => {
      const d = decided.get(memberKey(vip.pool, m));
      return `${m.name} ${m.state}${d === 'down' ? ' (down)' : ''}`;
    });
    why.push(`no member takes new flows (${states.join(', ') || 'pool is empty'}): the data plane drops the flow`);
  }
  return {
    flow: `${endpointText(req.src, req.sport)} -> ${key}`,
    vip: key,
    pool: vip.pool,
    hash: vip.hash,
    seed: table.seed,
    tableSize: vip.tableSize,
    slot,
    backend: member?.name ?? null,
    address: member ? endpointText(member.address, member.port) : null,
    checksum: table.checksum,
    revision,
    why,
  };
}
