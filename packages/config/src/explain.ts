/**
 * `explain flow`: the slot and backend the fleet gives a flow, and why. The ONE implementation behind the CLI's
 * `l4fleet explain flow` and the dashboard's explain form, so both agree with each other and with the nodes: the
 * table is buildVipTable's (the table every node builds, Maglev §3.4) and the slot is slotOf's (the kernel's flow
 * hash scaled onto the table, Maglev §3.3). With the table history it names the slot's previous owner too (second
 * chance, docs/design/0011-second-chance.md): where a node sends a flow it has not seen that the current owner does
 * not know.
 */
import { type Flow, MaglevError, NO_BACKEND, slotOf } from '@l4fleet/maglev';
import { canonicalAddress, endpointText } from './address.js';
import { minActiveMembersOf } from './backup-activation.js';
import { ConfigError } from './errors.js';
import { belowMinUpText, usableMembers } from './min-up-members.js';
import { secondChanceCarried } from './second-chance.js';
import { type MemberRamps, NO_RAMPS } from './slow-start.js';
import { sourceAdmits } from './source-ranges.js';
import { buildVipTable, type DecidedStatus, effectiveWeight } from './table.js';
import type { TableHistory } from './table-history.js';
import type { Fleet } from './types.js';
import { memberKey, vipKey } from './vip-key.js';
import { vipDraining, vipServed } from './vip-state.js';

export interface FlowExplanation {
  /** `SRC:SPORT -> VIP`, addresses canonical. */
  readonly flow: string;
  /** The VIP key the flow's destination names. */
  readonly vip: string;
  readonly pool: string;
  readonly hash: Fleet['vips'][number]['hash'];
  readonly seed: number;
  readonly tableSize: number;
  readonly slot: number;
  /** False when the VIP's `state` is `disabled`: no node serves or announces it (backend null). */
  readonly served: boolean;
  /** False when the source is outside the VIP's `sourceRanges`: every node drops the flow (backend null). */
  readonly admitted: boolean;
  /**
   * The member's name, or null when no member takes new flows, the source is not admitted (the data plane drops
   * the flow) or the VIP is disabled. While the VIP drains: the backend of an open TCP connection (new flows are
   * refused).
   */
  readonly backend: string | null;
  /** The member's ADDR:PORT, or null with no backend. */
  readonly address: string | null;
  /**
   * Second chance: the slot's previous owner (its owner before the last table change that moved the slot, kept for
   * the pool's `secondChance.retainS`), or null when there is none, the history was not given, or the node names
   * none for this flow (only a `gue` pool's TCP packets carry it: 0011).
   */
  readonly previousBackend: string | null;
  /** The previous owner's ADDR:PORT, or null. */
  readonly previousAddress: string | null;
  /** The table's checksum: compare with the nodes' (`status`, the dashboard) to see that they built the same. */
  readonly checksum: string;
  /** One sentence per reason, for people. */
  readonly why: readonly string[];
}

/**
 * Explains `flow` (its dst, dport and protocol name the VIP) under `fleet`, the `decided` member status and, when
 * given, the table `history` (etcd `history/`: the slot's previous owner) and the decided slow-start `ramps`.
 * Throws ConfigError VIP_NOT_FOUND when no VIP has that address, port and protocol, and INVALID (naming the field
 * and the value) when the flow's addresses or ports are not valid.
 */
export function explainFlow(
  fleet: Fleet,
  decided: DecidedStatus,
  flow: Flow,
  history?: TableHistory,
  ramps: MemberRamps = NO_RAMPS,
): FlowExplanation {
  let src: string;
  let key: string;
  try {
    src = canonicalAddress(flow.src, 'flow.src').address;
    key = vipKey({
      address: canonicalAddress(flow.dst, 'flow.dst').address,
      port: flow.dport,
      protocol: flow.protocol,
    });
  } catch (err) {
    throw invalidFlow(err);
  }
  const vip = fleet.vips.find((v) => vipKey(v) === key);
  if (!vip) throw new ConfigError('VIP_NOT_FOUND', [{ path: '', message: `vip ${key}: not in the fleet` }]);
  const table = buildVipTable(fleet, vip, decided, history, ramps);
  let slot: number;
  try {
    slot = slotOf({ ...flow, src, dst: vip.address }, vip.tableSize, table.seed, vip.hash);
  } catch (err) {
    throw invalidFlow(err);
  }
  const index = table.slots[slot] as number;
  const owner = index === NO_BACKEND ? undefined : table.backends[index];
  const admitted = sourceAdmits(vip.sourceRanges)(src);
  const served = vipServed(vip);
  const member = admitted && served ? owner : undefined;
  const pool = fleet.pools.find((p) => p.name === vip.pool);
  const hashed = vip.hash === 'source-ip' ? 'the source address' : 'the 5-tuple';
  const why = [
    `hash of ${hashed} with seed 0x${table.seed.toString(16)} picks slot ${slot} of ${vip.tableSize} (Maglev §3.3)`,
  ];
  if (!admitted) {
    why.unshift(
      `${src} is outside the VIP's sourceRanges (${vip.sourceRanges?.length} prefixes): every node drops the flow (drops{reason="source"})${owner ? `; admitted, it would go to ${owner.name}` : ''}`,
    );
  }
  const draining = vipDraining(vip);
  if (draining) {
    // Its table is kept (table.ts): `backend` is where an open TCP connection goes, on any node; except under NAT,
    // where the connection lives in one node's conntrack (0012): a node ECMP moves it to drops its next segment.
    const to = member ? ` to ${member.name}` : '';
    const open =
      vip.protocol !== 'tcp'
        ? 'a UDP flow goes on to its backend on the node that remembers it (on another node it ends)'
        : pool?.forwarding === 'nat'
          ? `an open TCP connection goes on${to} on the node that holds its conntrack entry (NAT: on a node ECMP moves it to it ends)`
          : `an open TCP connection goes on${to}, also on a node ECMP moves it to`;
    why.unshift(
      `the VIP is draining (vips[].state): every node refuses new flows, a TCP SYN and a UDP packet it does not remember (drops_packets{reason="no-backend"}); ${open}`,
    );
  }
  if (!served) {
    // First: nothing else matters while no node serves the VIP.
    why.unshift(
      `the VIP is disabled (vips[].state): no node serves or announces it${owner && admitted ? `; enabled, the flow would go to ${owner.name}` : ''}`,
    );
  }
  if (member) {
    const owned = table.slots.filter((i) => i === index).length;
    const decision = decided.get(memberKey(vip.pool, member));
    const ramp = ramps.get(memberKey(vip.pool, member));
    const ramping = ramp ? `, slow start at ${ramp.percent}% of its weight` : '';
    const status = `${decision ? `decided ${decision}` : 'no decision yet (counts as up)'}${ramping}`;
    // A member the table gives slots to is a backup only while too few primaries take flows.
    const wanted = pool ? minActiveMembersOf(pool) : 1;
    const backup = member.backup
      ? wanted > 1
        ? ` (a backup: fewer than ${wanted} primaries take flows, minActiveMembers)`
        : ' (a backup: no other member takes flows)'
      : '';
    why.push(
      `slot ${slot} belongs to ${member.name}${backup}: ${member.state}, weight ${member.weight}, ${status}; it owns ${owned} of ${vip.tableSize} slots`,
    );
    const below = pool ? belowMinUpText(pool, usableMembers(pool, decided, ramps).length) : undefined;
    if (below) {
      why.push(
        `${below}: no node announces the VIP (another site announcing it takes its traffic); a flow that still reaches a node goes to ${member.name}`,
      );
    }
  } else if (admitted && served) {
    const states = (pool?.members ?? []).map((m) => {
      const down = pool && m.state === 'active' && effectiveWeight(pool, m, decided) === 0;
      return `${m.name} ${m.state}${m.backup ? ' backup' : ''}${down ? ' (down)' : ''}`;
    });
    why.push(`no member takes new flows (${states.join(', ') || 'pool is empty'}): the data plane drops the flow`);
  }
  const previousIndex = table.previousSlots?.[slot] ?? NO_BACKEND;
  const earlierOwner = previousIndex === NO_BACKEND ? undefined : table.backends[previousIndex];
  // Only a gue pool's TCP packets name it (node-core.h previous_owner): for the others it is no answer.
  const carried = pool !== undefined && secondChanceCarried(pool, vip.protocol);
  const previous = carried ? earlierOwner : undefined;
  if (earlierOwner && admitted && served) {
    const gone = earlierOwner.state === 'disabled' && !pool?.members.some((m) => m.name === earlierOwner.name);
    const moved = `slot ${slot} belonged to ${earlierOwner.name}${gone ? ' (removed since)' : ''} before the last change that moved it`;
    why.push(
      carried
        ? `${moved}: a node that has not seen the flow names it as second chance, and ${member?.name ?? 'the owner'} hands a packet it has no socket for to it (0011)`
        : `${moved}; not carried: second chance is for gue pools and TCP (0011), so a node that has not seen the flow sends it to ${member?.name ?? 'the owner'} only`,
    );
  }
  return {
    flow: `${endpointText(src, flow.sport)} -> ${key}`,
    vip: key,
    pool: vip.pool,
    hash: vip.hash,
    seed: table.seed,
    tableSize: vip.tableSize,
    slot,
    served,
    admitted,
    backend: member?.name ?? null,
    address: member ? endpointText(member.address, member.port) : null,
    previousBackend: previous?.name ?? null,
    previousAddress: previous ? endpointText(previous.address, previous.port) : null,
    checksum: table.checksum,
    why,
  };
}

/** A bad address or port in the flow: the MaglevError's message already names the field and the value. */
function invalidFlow(err: unknown): never {
  if (!(err instanceof MaglevError)) throw err;
  throw new ConfigError('INVALID', [{ path: '', message: err.message }], { cause: err });
}
