/**
 * Settings that are valid but do not do what an operator would mean by them: `l4fleet apply` prints them as notes
 * and writes the fleet anyway. Nodes never refuse them (a fleet stored before these notes existed must still load on
 * an upgraded node), so they are not problems of parseFleet().
 *
 * - A member whose weight share is under one slot of a VIP's table (Maglev §3.4: each turn claims one slot, and a
 *   backend takes turns in proportion to its weight) owns no slot, so it takes no new flows although its weight is
 *   above 0, and it still counts as a primary taking flows for `minActiveMembers`. Past 5 in one table they are one
 *   note for the pool, naming 3 and counting the rest.
 * - `minActiveMembers` above the pool's primaries: the backups take flows always, the primaries all up or not.
 * - More VIP x member pairs than the bpf data plane holds (BPF_MAX_VIP_MEMBERS): bpf nodes refuse the whole state
 *   and keep serving the last one; nftables and proxy nodes serve it, so it is a note and not a problem. With second
 *   chance the previous owners a VIP's table carries take ids too, so a fleet near the bound is noted as well.
 * - A served pool's forwarding that a data plane lacks (nat on bpf; ipip, gre, gue on nftables): those nodes refuse
 *   the whole desired state, every VIP, and keep serving the last one they took, so in a mixed fleet later edits
 *   reach only the other nodes and the drivers' tables diverge. A fleet of the nodes that serve it is fine, so it is
 *   a note.
 * - A VIP profile field that differs from its protocol's default where the kernel data planes do not apply it (design
 *   note 0012, "Which field applies where"): under l2 nftables nodes apply only the idle timeout, under ipip, gre and
 *   gue (bpf nodes only) no field. Proxy nodes apply every field, so in a proxy fleet it does what it says: a note.
 */
import { buildTable } from '@l4fleet/maglev';
import { minActiveMembersOf } from './backup-activation.js';
import type { ConfigProblem } from './errors.js';
import { showValue } from './fields.js';
import { BPF_MAX_VIP_MEMBERS } from './limits.js';
import { defaultProfile, type VipProfile } from './profile.js';
import { secondChanceActive } from './second-chance.js';
import { backendsForPool, tableMembers } from './table.js';
import type { Fleet, Forwarding, Pool, Vip } from './types.js';
import { vipKey } from './vip-key.js';
import { servedVips, vipServed } from './vip-state.js';

/** No decided status yet: every member counts as up (the table a fresh fleet starts with). */
const ALL_UP = new Map<string, never>();

/** A pool's table weights with every member up, walked once however many VIPs use the pool. */
interface PoolWeights {
  readonly backends: ReturnType<typeof backendsForPool>;
  readonly total: number;
  /** The smallest weight above 0 (Infinity: none). */
  readonly least: number;
}

function poolWeights(pool: Pool): PoolWeights {
  const backends = backendsForPool(pool, ALL_UP);
  let total = 0;
  let least = Number.POSITIVE_INFINITY;
  for (const b of backends) {
    const w = b.weight ?? 0;
    total += w;
    if (w > 0 && w < least) least = w;
  }
  return { backends, total, least };
}

/** Names of the members owning no slot of a `size`-slot table with every member up, though weighted above 0. */
function slotlessMembers(pool: Pool, weights: PoolWeights, size: number): string[] {
  // The share estimate first (Maglev §3.4: a backend's turns, one slot each, follow its weight): the table is built
  // only when the lightest member's share is under one slot.
  if ((size * weights.least) / weights.total >= 1) return [];
  const owned = new Uint32Array(weights.backends.length);
  for (const i of buildTable(weights.backends, size)) if (i >= 0) owned[i] = (owned[i] ?? 0) + 1;
  const members = tableMembers(pool);
  return weights.backends.flatMap((b, i) =>
    (b.weight ?? 0) > 0 && owned[i] === 0 ? [members[i]?.name ?? b.name] : [],
  );
}

/**
 * Up to this many members one table has no slot for are noted one by one (path to each weight); more are one note
 * naming SLOTLESS_NAMED of them and counting the rest: a pool of 20,000 members behind one heavy one would otherwise
 * print 20,000 notes.
 */
const SLOTLESS_NOTED_EACH = 5;
const SLOTLESS_NAMED = 3;

/** The notes for the members `indexes` (in pool.members) that vips[k]'s table has no slot for. */
function slotlessNotes(pool: Pool, i: number, indexes: readonly number[], vip: Vip, k: number): ConfigProblem[] {
  const table = `vips[${k}] ${vipKey(vip)}'s ${vip.tableSize}-slot table`;
  if (indexes.length <= SLOTLESS_NOTED_EACH) {
    return indexes.flatMap((j) => {
      const m = pool.members[j];
      if (!m) return [];
      return [
        {
          path: `pools[${i}].members[${j}].weight`,
          message: `${m.weight} gives member "${m.name}" no slot of ${table} (its share of the pool's weight is under one slot): it takes no new flows; raise its weight or the VIP's tableSize`,
        },
      ];
    });
  }
  const n = (v: number): string => v.toLocaleString('en-US');
  const named = indexes
    .slice(0, SLOTLESS_NAMED)
    .map((j) => `members[${j}] "${pool.members[j]?.name}" (weight ${pool.members[j]?.weight})`)
    .join(', ');
  return [
    {
      path: `pools[${i}].members`,
      message: `${n(indexes.length)} members get no slot of ${table} (each one's share of the pool's weight is under one slot): ${named} and ${n(indexes.length - SLOTLESS_NAMED)} more; they take no new flows; raise their weights or the VIP's tableSize`,
    },
  ];
}

/**
 * Above this share of BPF_MAX_VIP_MEMBERS a fleet whose tables carry previous owners is noted: members disabled or
 * removed later are carried for up to secondChance.retainS and take ids then, which the fleet does not show.
 */
const NEAR_SHARE = 0.9;

interface VipMemberPairs {
  /** Per served VIP (a draining one keeps its table), the members of its pool in the table (not disabled). */
  readonly inTables: number;
  /**
   * `inTables` plus, for VIPs of pools with second chance (ipip, gre, gue), their disabled members: previous owners
   * carried into a VIP's backends for up to secondChance.retainS after they left the table (previous-owners.ts).
   * Removed members are carried too and no fleet shows them: hence the note near the bound.
   */
  readonly withCarried: number;
  /** Some served VIP's pool has second chance: its tables may carry previous owners. */
  readonly carries: boolean;
}

/**
 * The bpf driver's backend ids the fleet needs (@l4fleet/dataplane bpf/ids.ts checkBackendIds: one per VIP and
 * backend address, every backend of the table, carried previous owners included).
 */
function vipMemberPairs(fleet: Fleet): VipMemberPairs {
  const pools = new Map(
    fleet.pools.map((p) => {
      const active = p.members.filter((m) => m.state !== 'disabled').length;
      const carried = secondChanceActive(p) ? p.members.length - active : 0;
      return [p.name, { active, carried, carries: secondChanceActive(p) }];
    }),
  );
  let inTables = 0;
  let withCarried = 0;
  let carries = false;
  for (const vip of servedVips(fleet)) {
    const p = pools.get(vip.pool);
    if (!p) continue;
    inTables += p.active;
    withCarried += p.active + p.carried;
    carries ||= p.carries;
  }
  return { inTables, withCarried, carries };
}

function pairsNote(fleet: Fleet): ConfigProblem | undefined {
  const { inTables, withCarried, carries } = vipMemberPairs(fleet);
  const max = BPF_MAX_VIP_MEMBERS;
  if (inTables <= max && !(carries && withCarried > max * NEAR_SHARE)) return undefined;
  const n = (v: number): string => v.toLocaleString('en-US');
  const has = `bpf nodes hold at most ${n(max)} VIP x member pairs; this fleet has ${n(inTables)} (each served VIP times the members of its pool not disabled)`;
  // nftables nodes refuse a fleet with ipip/gre/gue pools anyway (the forwarding note says so): then only the proxy.
  const encapsulated = servedVips(fleet).some((v) =>
    ['ipip', 'gre', 'gue'].includes(fleet.pools.find((p) => p.name === v.pool)?.forwarding ?? 'l2'),
  );
  const served = encapsulated ? 'proxy nodes serve it' : 'nftables and proxy nodes serve it';
  if (inTables > max) return { path: 'vips', message: `${has}: bpf nodes will refuse it; ${served}` };
  const outcome =
    withCarried > max
      ? 'bpf nodes can refuse it while they are carried'
      : 'within 10 % of the bound, so disabling or removing members can make bpf nodes refuse it';
  return {
    path: 'vips',
    message:
      `${has}, ${n(withCarried)} with the disabled members of its pools with second chance (ipip, gre, gue), which ` +
      `stay in the VIPs' backends as previous owners for up to secondChance.retainS after they left the table, as ` +
      `removed members do: ${outcome}; ${served}`,
  };
}

/**
 * What each data plane lacks (@l4fleet/dataplane: nftables takes l2 and nat, bpf every direct-return mode, the proxy
 * all, as it connects to members itself) and who serves it instead.
 */
const REFUSED_BY: Partial<Record<Forwarding, { driver: string; why: string; instead: string }>> = {
  nat: { driver: 'bpf', why: 'it has no connection tracking', instead: 'nftables or proxy' },
  ...Object.fromEntries(
    (['ipip', 'gre', 'gue'] as const).map((f) => [
      f,
      { driver: 'nftables', why: 'it forwards at L2 or with nat only', instead: 'bpf or proxy' },
    ]),
  ),
};

/** A note per pool of a served VIP whose forwarding some data plane refuses (and with it the whole state). */
function forwardingNotes(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  fleet.pools.forEach((pool, i) => {
    const refused = REFUSED_BY[pool.forwarding];
    const vips = fleet.vips.flatMap((v, k) => (v.pool === pool.name && vipServed(v) ? [{ v, k }] : []));
    if (!refused || vips.length === 0) return;
    let message =
      `${pool.forwarding} is not supported by the ${refused.driver} data plane (${refused.why}): ${refused.driver} ` +
      'nodes refuse the whole desired state, every VIP, and keep serving the last one they took, so later edits ' +
      `reach only the other nodes; serve this fleet with ${refused.instead} nodes only`;
    // The bpf driver encapsulates from the node's address of the VIP's family (NODE_ADDRESS_MISSING without one);
    // an IPv4 one is always configured (node.address), an IPv6 one only when given.
    const v6 = pool.forwarding === 'nat' ? undefined : vips.find(({ v }) => v.address.includes(':'));
    if (v6) {
      message +=
        '; bpf nodes refuse it too unless they have an IPv6 node address (node.address6 or ' +
        `dataplane.encapSourceAddress6) for vips[${v6.k}] ${vipKey(v6.v)}`;
    }
    out.push({ path: `pools[${i}].forwarding`, message });
  });
  return out;
}

const PROFILE_FIELDS: readonly (keyof VipProfile)[] = [
  'idleTimeoutS',
  'tcpHandshakeTimeoutS',
  'tcpCloseTimeoutS',
  'onTimeout',
];

/**
 * Per direct-return forwarding, the profile fields its kernel data planes ignore and why. `nat` is absent: nftables
 * applies every field as conntrack timeouts (and bpf nodes refuse nat altogether: forwardingNotes).
 */
function ignoredProfileFields(
  forwarding: Forwarding,
): { fields: readonly (keyof VipProfile)[]; why: string } | undefined {
  if (forwarding === 'l2') {
    return {
      fields: ['tcpHandshakeTimeoutS', 'tcpCloseTimeoutS', 'onTimeout'],
      why:
        'under forwarding l2 (direct server return) nftables nodes apply only the idle timeout (they see one ' +
        'direction of a flow: no handshake, no close, and an expired flow is hashed again, not dropped) and bpf ' +
        'nodes no profile field (their LRU flow table has no timeouts)',
    };
  }
  if (forwarding === 'nat') return undefined;
  return {
    fields: PROFILE_FIELDS,
    why:
      `bpf nodes, which serve ${forwarding} (nftables nodes refuse it), apply no profile field (their LRU flow ` +
      'table has no timeouts: entries leave when it is full)',
  };
}

/** A note per field of a served VIP's profile that is not its protocol's default and its forwarding's nodes ignore. */
function profileNotes(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const pools = new Map(fleet.pools.map((p) => [p.name, p]));
  fleet.vips.forEach((vip, k) => {
    const pool = pools.get(vip.pool);
    if (!pool || !vip.profile || !vipServed(vip)) return;
    const ignored = ignoredProfileFields(pool.forwarding);
    if (!ignored) return;
    const dflt = defaultProfile(vip.protocol);
    for (const field of ignored.fields) {
      const value = vip.profile[field];
      if (value === undefined || value === dflt[field]) continue;
      out.push({
        path: `vips[${k}].profile.${field}`,
        message: `${showValue(value)} is applied to ${vipKey(vip)} by proxy nodes only: ${ignored.why}`,
      });
    }
  });
  return out;
}

/** Notes for `apply` (path and message, as problems are shown); empty when every setting does what it says. */
export function ineffectiveSettings(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const noted = new Set<string>();
  fleet.pools.forEach((pool, i) => {
    const wanted = minActiveMembersOf(pool);
    const primaries = pool.members.filter((m) => m.backup !== true).length;
    if (wanted > primaries && pool.members.some((m) => m.backup === true)) {
      out.push({
        path: `pools[${i}].minActiveMembers`,
        message: `${wanted} is more than the pool's ${primaries} primaries (members not marked backup): its backups take new flows always, with every primary up`,
      });
    }
  });
  const poolIndex = new Map(fleet.pools.map((p, i) => [p.name, i]));
  const weights = new Map<number, PoolWeights>();
  // Member name -> index in pool.members, per pool: a findIndex per slotless member was O(members²) in one pool.
  const memberIndex = new Map<number, Map<string, number>>();
  const checked = new Set<string>();
  fleet.vips.forEach((vip, k) => {
    const i = poolIndex.get(vip.pool);
    const pool = i === undefined ? undefined : fleet.pools[i];
    // One check per pool and table size: VIPs that share both share the table.
    if (i === undefined || !pool || checked.has(`${i}/${vip.tableSize}`)) return;
    checked.add(`${i}/${vip.tableSize}`);
    let w = weights.get(i);
    if (!w) weights.set(i, (w = poolWeights(pool)));
    let index = memberIndex.get(i);
    if (!index) memberIndex.set(i, (index = new Map(pool.members.map((m, j) => [m.name, j]))));
    const fresh: number[] = [];
    for (const name of slotlessMembers(pool, w, vip.tableSize)) {
      const j = index.get(name);
      if (j === undefined || noted.has(`${i}/${j}`)) continue;
      noted.add(`${i}/${j}`);
      fresh.push(j);
    }
    fresh.sort((x, y) => x - y); // the file's order, not the table's (by name: m1, m10, m100)
    out.push(...slotlessNotes(pool, i, fresh, vip, k));
  });
  out.push(...forwardingNotes(fleet));
  out.push(...profileNotes(fleet));
  const pairs = pairsNote(fleet);
  if (pairs) out.push(pairs);
  return out;
}
