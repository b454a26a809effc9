/**
 * Table derivation: the ONE place every node agent and the CLI turn a fleet plus decided member status into a
 * Maglev table, so all of them build the identical table (Maglev §3.4: consistency needs identical inputs).
 *
 * Rules: `disabled` members are out of the table; `draining` and decided-`down` members stay in the index space
 * with weight 0 (no new flows; existing ones keep their backend through data-plane flow affinity); a member with
 * no decision yet counts as up, so a fresh fleet serves at once; health check `none` means always up; `backup`
 * members have weight 0 while at least the pool's `minActiveMembers` (default 1) other members have weight
 * (backupsServe, backup-activation.ts), and stay in the index space.
 */
import { createHash } from 'node:crypto';
import { type BackendSpec, buildTable, type HashMode } from '@l4fleet/maglev';
import { minActiveMembersOf } from './backup-activation.js';
import { DEFAULT_GUE_PORT } from './defaults.js';
import { ConfigError } from './errors.js';
import { onMemberDownOf } from './on-member-down.js';
import { withPreviousOwners } from './previous-owners.js';
import { type MemberRamps, NO_RAMPS, rampedWeight } from './slow-start.js';
import type { HistoryMember, TableHistory } from './table-history.js';
import type { Fleet, Forwarding, Member, MemberStatus, OnMemberDown, Pool, Vip } from './types.js';
import { memberKey, vipKey } from './vip-key.js';
import { vipDraining } from './vip-state.js';

/** Decided member status keyed by memberKey(pool, member) = `${pool}/${member.name}`. */
export type DecidedStatus = ReadonlyMap<string, MemberStatus>;

export interface VipTable {
  readonly vip: Vip;
  /**
   * The table's index space: the pool's members that are not disabled, sorted by name; then, with previous owners,
   * the members that are previous owners only (removed or disabled since: weight 0, state `disabled`).
   */
  readonly backends: readonly Member[];
  /** Slot -> index into `backends`, or NO_BACKEND (-1) when no member takes flows. */
  readonly slots: Int32Array;
  /**
   * Second chance (0011): slot -> index into `backends` of the slot's previous owner, or NO_BACKEND (none, or the
   * current owner). Absent when the pool has no second chance or no slot has a previous owner.
   */
  readonly previousSlots?: Int32Array;
  readonly seed: number;
  readonly hash: HashMode;
  /** The pool's forwarding: how a node hands the VIP's packets to the backends (l2, or an encapsulation). */
  readonly forwarding: Forwarding;
  /** The pool's GUE destination port (used with `forwarding: gue`). */
  readonly guePort: number;
  /** The pool's `onMemberDown` (on-member-down.ts): whether `down` members keep their remembered flows. */
  readonly onMemberDown: OnMemberDown;
  /** Indices into `backends` of the members decided down by their health checks (active members only), ascending. */
  readonly down: readonly number[];
  /**
   * Hex digest of size, seed, hash mode, backend names, endpoints, slots, (when not l2) the forwarding, (with
   * `reselect`) the down members, (when present) the previous owners and (while the VIP drains) that it drains: equal
   * on nodes that forward the VIP alike.
   */
  readonly checksum: string;
}

const byName = (a: Member, b: Member): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A member's weight before the backup rule and its ramp: 0 unless active and not decided down. */
function ownWeight(pool: Pool, m: Member, decided: DecidedStatus): number {
  if (m.state !== 'active') return 0;
  if (pool.healthCheck.type !== 'none' && decided.get(memberKey(pool.name, m)) === 'down') return 0;
  return m.weight;
}

/**
 * Whether the pool's backup members take flows: no other member does (each is draining, disabled, decided down or
 * of weight 0). The switch is the table's like any weight change: flows on a backup stay there by flow affinity when
 * the primaries come back, only new flows return (Maglev §3.3).
 */
export function backupsServe(pool: Pool, decided: DecidedStatus): boolean {
  // Priority group activation (backup-activation.ts): backups serve while fewer than N primaries take flows.
  const wanted = minActiveMembersOf(pool);
  let primaries = 0;
  for (const m of pool.members) {
    if (m.backup !== true && ownWeight(pool, m, decided) > 0 && ++primaries >= wanted) return false;
  }
  return true;
}

/**
 * Effective weight of a member under the rules above, the backup rule, and its slow-start ramp (slow-start.ts: a
 * part of its weight while it ramps; a ramping primary already stops the backups). `serving`:
 * backupsServe(pool, decided) when the caller has it (it walks the pool; a loop over members passes it once).
 */
export function effectiveWeight(
  pool: Pool,
  m: Member,
  decided: DecidedStatus,
  ramps: MemberRamps = NO_RAMPS,
  serving?: boolean,
): number {
  const own = ownWeight(pool, m, decided);
  if (own === 0) return 0;
  if (m.backup === true && !(serving ?? backupsServe(pool, decided))) return 0;
  return rampedWeight(own, ramps.get(memberKey(pool.name, m)));
}

/** The members in the table's index space (not disabled, sorted by name). */
export function tableMembers(pool: Pool): Member[] {
  return pool.members.filter((m) => m.state !== 'disabled').sort(byName);
}

/** The Maglev backend list of a pool, in index-space order (see tableMembers). */
export function backendsForPool(pool: Pool, decided: DecidedStatus, ramps: MemberRamps = NO_RAMPS): BackendSpec[] {
  const serving = backupsServe(pool, decided);
  return tableMembers(pool).map((m) => ({ name: m.name, weight: effectiveWeight(pool, m, decided, ramps, serving) }));
}

export function tableChecksum(
  vip: Pick<Vip, 'tableSize' | 'hash' | 'state'>,
  seed: number,
  backends: readonly Member[],
  slots: Int32Array,
  forwarding: Pick<Pool, 'forwarding' | 'guePort' | 'onMemberDown'> = { forwarding: 'l2', guePort: DEFAULT_GUE_PORT },
  down: readonly number[] = [],
): string {
  const h = createHash('sha256');
  h.update(`l4fleet-table-v1\n${vip.tableSize}\n${seed}\n${vip.hash}\n`);
  for (const m of backends) h.update(`${m.name}\t${m.address}\t${m.port}\n`);
  h.update(new Uint8Array(slots.buffer, slots.byteOffset, slots.byteLength));
  // Only encapsulation is hashed, so an l2 table's checksum stays what nodes of earlier versions report.
  if (forwarding.forwarding !== 'l2') {
    const port = forwarding.forwarding === 'gue' ? ` ${forwarding.guePort}` : '';
    h.update(`\nforwarding ${forwarding.forwarding}${port}\n`);
  }
  // Likewise only `reselect`: with `keep` a down member differs from an up one in its slots alone.
  if (onMemberDownOf(forwarding) === 'reselect') h.update(`\nreselect ${down.join(',')}\n`);
  // A draining VIP has the slots it had enabled, and forwards otherwise (no new flow): nodes must agree on that too.
  if (vipDraining(vip)) h.update('\ndraining\n');
  return h.digest('hex').slice(0, 16);
}

/** Indices into `members` (tableMembers order) of the active members decided down (see effectiveWeight). */
export function downMembers(pool: Pool, members: readonly Member[], decided: DecidedStatus): number[] {
  if (pool.healthCheck.type === 'none') return [];
  const out: number[] = [];
  members.forEach((m, i) => {
    if (m.state === 'active' && decided.get(memberKey(pool.name, m)) === 'down') out.push(i);
  });
  return out;
}

/** The pool's table inputs in index-space order, as the table history records them (table-history.ts). */
export function tableInputsOf(pool: Pool, decided: DecidedStatus, ramps: MemberRamps = NO_RAMPS): HistoryMember[] {
  const serving = backupsServe(pool, decided);
  return tableMembers(pool).map((m) => ({
    name: m.name,
    address: m.address,
    port: m.port,
    weight: effectiveWeight(pool, m, decided, ramps, serving),
  }));
}

/**
 * Builds the table of one VIP of `fleet`; the fleet must carry its hashSeed (stored fleets always do). With the
 * fleet's table `history` (etcd `history/`), the pool's previous owners too (second chance, 0011). `ramps`: the
 * decided slow-start steps (slow-start.ts), from the same decided records as `decided`.
 */
export function buildVipTable(
  fleet: Fleet,
  vip: Vip,
  decided: DecidedStatus,
  history?: TableHistory,
  ramps: MemberRamps = NO_RAMPS,
): VipTable {
  const pool = fleet.pools.find((p) => p.name === vip.pool);
  if (!pool) {
    throw new ConfigError('INVALID', [{ path: `vip ${vipKey(vip)}.pool`, message: `"${vip.pool}" does not exist` }]);
  }
  if (fleet.hashSeed === undefined) {
    throw new ConfigError('HASH_SEED_MISSING', [
      { path: 'hashSeed', message: 'missing: tables need the fleet seed (the store sets one on apply)' },
    ]);
  }
  const backends = tableMembers(pool);
  // A draining VIP (vip-state.ts) keeps the table it had: the data planes open no flow on it (VipTable.draining in
  // @l4fleet/dataplane), and a connection ECMP moves to another node still finds its backend there.
  const slots = buildTable(backendsForPool(pool, decided, ramps), vip.tableSize);
  const down = downMembers(pool, backends, decided);
  const table: VipTable = {
    vip,
    backends,
    slots,
    seed: fleet.hashSeed,
    hash: vip.hash,
    forwarding: pool.forwarding,
    guePort: pool.guePort,
    onMemberDown: onMemberDownOf(pool),
    down,
    checksum: tableChecksum(vip, fleet.hashSeed, backends, slots, pool, down),
  };
  const poolHistory = history?.get(pool.name);
  return poolHistory ? withPreviousOwners(table, pool, tableInputsOf(pool, decided, ramps), poolHistory) : table;
}
