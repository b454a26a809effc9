/**
 * Pure planning of what a node serves: tables from the desired state, the decided status and the table history only
 * (so every node builds the identical table, Maglev §3.4, with the same previous owners, 0011), and the routes to announce from them. A route is a host prefix, shared
 * by every VIP on that address: it is announced while at least one of those VIPs has a usable backend (no
 * blackholes) and the node may announce.
 */
import type { Advertisement } from '@l4fleet/bgp';
import {
  backupsServe,
  buildVipTable,
  type DecidedStatus,
  downMembers,
  effectiveWeight,
  enoughUp,
  type Fleet,
  type VipTable as FleetTable,
  healthChecksOf,
  type Member,
  type MemberRamps,
  NO_RAMPS,
  type Pool,
  type PoolHistory,
  servedVips,
  type TableHistory,
  tableMembers,
  usableMembers,
  type Vip,
  vipDraining,
  vipKey,
  vipServed,
} from '@l4fleet/config';
import type { VipTable as DataPlaneTable } from '@l4fleet/dataplane';
import type { HealthTarget } from '../health/checker.js';

export interface PlannedTable {
  readonly key: string;
  readonly table: FleetTable;
  /** Backends taking new flows (effective weight > 0). */
  readonly usableBackends: number;
  /** Backup members (members[].backup) take new flows: too few primaries do (an alert for the operator). */
  readonly backupServing: boolean;
  /**
   * Enough members take new flows for the VIP to be announced: at least one, and at least its pool's minUpMembers
   * (@l4fleet/config enoughUp). The table is programmed either way.
   */
  readonly announceable: boolean;
}

/** A number per history record object: the store keeps the object of an unchanged record, so equal means equal. */
const historyIds = new WeakMap<PoolHistory, number>();
let nextHistoryId = 1;
function historyId(h: PoolHistory | undefined): number {
  if (!h) return 0;
  let id = historyIds.get(h);
  if (id === undefined) historyIds.set(h, (id = nextHistoryId++));
  return id;
}

/** Everything buildVipTable() reads for one VIP: equal inputs give the equal table, so it is reused. */
function tableInputs(
  fleet: Fleet,
  vip: Vip,
  pool: Pool | undefined,
  decided: DecidedStatus,
  history: TableHistory | undefined,
  ramps: MemberRamps,
): string {
  const serving = pool ? backupsServe(pool, decided) : false;
  const weight = (m: Member): number => (pool ? effectiveWeight(pool, m, decided, ramps, serving) : 0);
  const members = (pool?.members ?? [])
    .map((m) => `${m.name}|${m.address}|${m.port}|${m.state}|${weight(m)}`)
    .join(',');
  // The decided status itself, not only the weight: `reselect` tells a down member from a draining one (both 0).
  const down = pool ? downMembers(pool, tableMembers(pool), decided).join(',') : '';
  const forwarding = `${pool?.forwarding}|${pool?.guePort}|${JSON.stringify(pool?.secondChance)}|${pool?.onMemberDown}|${down}`;
  const previous = historyId(pool ? history?.get(pool.name) : undefined);
  // Not a table input, but it decides whether the table's VIP is announced (PlannedTable.announceable).
  const minUp = pool?.minUpMembers ?? '';
  // Carried to the data plane with the table (design notes 0012 and 0013): they choose no member.
  const profile = `${JSON.stringify(vip.profile)}|${vip.sourceRanges?.join(',')}`;
  // A draining VIP forwards otherwise (vips[].state: no new flow) and its checksum says so.
  return `${previous}|${minUp}|${vip.state ?? ''}|${vipKey(vip)}|${vip.tableSize}|${vip.hash}|${vip.pool}|${fleet.hashSeed}|${forwarding}|${profile}|${members}`;
}

/**
 * Plans every VIP's table. `cache` (from the previous call) lets unchanged VIPs keep their table: with 100 VIPs a
 * change in one pool rebuilds only the tables of that pool's VIPs. `ramps`: the decided slow-start steps.
 */
export function planTables(
  fleet: Fleet,
  decided: DecidedStatus,
  cache?: Map<string, PlannedTable & { inputs: string }>,
  history?: TableHistory,
  ramps: MemberRamps = NO_RAMPS,
): PlannedTable[] {
  const pools = new Map(fleet.pools.map((p) => [p.name, p]));
  const seen = new Set<string>();
  // A disabled VIP (vips[].state) has no table: its entries leave the data plane and its route goes (unless another
  // VIP of its address is served). Its pool is still probed (checkedMembers), so enabling it serves current tables.
  const out = servedVips(fleet).map((vip) => {
    const key = vipKey(vip);
    const pool = pools.get(vip.pool);
    const inputs = tableInputs(fleet, vip, pool, decided, history, ramps);
    seen.add(key);
    const hit = cache?.get(key);
    if (hit && hit.inputs === inputs) return hit;
    const table = buildVipTable(fleet, vip, decided, history, ramps);
    // Carried previous owners are `disabled` members, not in tableMembers: never counted.
    const usable = pool ? usableMembers(pool, decided, ramps) : [];
    // Backups take new flows: every primary is out, or fewer than the pool's minActiveMembers take flows.
    const backupServing = usable.some((m) => m.backup === true);
    const announceable = pool ? enoughUp(pool, usable.length) : false;
    const planned = { key, table, usableBackends: usable.length, backupServing, announceable, inputs };
    cache?.set(key, planned);
    return planned;
  });
  if (cache) for (const k of [...cache.keys()]) if (!seen.has(k)) cache.delete(k);
  return out;
}

const dataPlaneTables = new WeakMap<FleetTable, DataPlaneTable>();

/** The data plane's view of a table; the same object for the same table, so drivers can skip unchanged VIPs. */
export function toDataPlaneTable(t: FleetTable): DataPlaneTable {
  let d = dataPlaneTables.get(t);
  if (!d) {
    const down = new Set(t.down);
    d = {
      vip: { address: t.vip.address, port: t.vip.port, protocol: t.vip.protocol },
      hash: t.hash,
      seed: t.seed,
      forwarding: t.forwarding,
      guePort: t.guePort,
      backends: t.backends.map((m, i) => ({
        name: m.name,
        address: m.address,
        port: m.port,
        ...(down.has(i) ? { down: true } : {}),
      })),
      ...(t.onMemberDown === 'reselect' ? { onMemberDown: t.onMemberDown } : {}),
      slots: t.slots,
      ...(t.previousSlots ? { previousSlots: t.previousSlots } : {}),
      ...(t.vip.profile ? { profile: t.vip.profile } : {}),
      ...(t.vip.sourceRanges ? { sourceRanges: t.vip.sourceRanges } : {}),
      ...(vipDraining(t.vip) ? { draining: true } : {}),
    };
    dataPlaneTables.set(t, d);
  }
  return d;
}

/** Changes whenever any table would forward differently: the data plane is re-applied only then. */
export function tablesSignature(tables: readonly PlannedTable[]): string {
  return (
    tables
      // The profile and the source ranges are not in the checksum (they choose no member), but a change must be
      // applied.
      .map((t) => {
        const v = t.table.vip;
        return `${t.key}=${t.table.checksum}${v.profile ? JSON.stringify(v.profile) : ''}${v.sourceRanges ? `|${v.sourceRanges.join(',')}` : ''}`;
      })
      .sort()
      .join(',')
  );
}

export function hostPrefix(address: string): string {
  return address.includes(':') ? `${address}/128` : `${address}/32`;
}

export interface RouteContext {
  readonly nextHop4: string;
  readonly nextHop6?: string;
  readonly communities: readonly string[];
}

/**
 * The routes a serving node announces: one per VIP address with an announceable table (enough members take new
 * flows) and a next hop of its family.
 */
export function plannedRoutes(tables: readonly PlannedTable[], ctx: RouteContext): Map<string, Advertisement> {
  const routes = new Map<string, Advertisement>();
  for (const t of tables) {
    if (!t.announceable) continue;
    const address = t.table.vip.address;
    const nextHop = address.includes(':') ? ctx.nextHop6 : ctx.nextHop4;
    if (nextHop === undefined) continue;
    const prefix = hostPrefix(address);
    routes.set(prefix, {
      prefix,
      nextHop,
      ...(ctx.communities.length > 0 ? { communities: [...ctx.communities] } : {}),
    });
  }
  return routes;
}

export type WithdrawReason = 'disabled' | 'removed' | 'noUsableBackend' | 'belowMinUpMembers';

/**
 * Why a route that was announced is withdrawn while the node serves: the address's VIPs were all disabled
 * (`disabled`), all removed from the fleet (`removed`), some member takes new flows but fewer than the pool's
 * minUpMembers (`belowMinUpMembers`), or none does (`noUsableBackend`).
 */
export function withdrawReason(prefix: string, fleet: Fleet, tables: readonly PlannedTable[]): WithdrawReason {
  const atAddress = fleet.vips.filter((v) => hostPrefix(v.address) === prefix);
  if (atAddress.length === 0) return 'removed';
  if (!atAddress.some(vipServed)) return 'disabled';
  const some = tables.some((t) => hostPrefix(t.table.vip.address) === prefix && t.usableBackends > 0);
  return some ? 'belowMinUpMembers' : 'noUsableBackend';
}

/** VIP keys whose route is in `routes` and whose own table is usable (what `l4fleet status` lists as announced). */
export function announcedVips(tables: readonly PlannedTable[], routes: ReadonlyMap<string, Advertisement>): string[] {
  return tables
    .filter((t) => t.announceable && routes.has(hostPrefix(t.table.vip.address)))
    .map((t) => t.key)
    .sort();
}

/** The same routes with one more community (RFC 8326 GRACEFUL_SHUTDOWN while draining). */
export function withCommunity(
  routes: ReadonlyMap<string, Advertisement>,
  community: string,
): Map<string, Advertisement> {
  const out = new Map<string, Advertisement>();
  for (const [p, a] of routes) {
    const communities = [...new Set([...(a.communities ?? []), community])];
    out.set(p, { ...a, communities });
  }
  return out;
}

export function sameRoutes(a: ReadonlyMap<string, Advertisement>, b: ReadonlyMap<string, Advertisement>): boolean {
  if (a.size !== b.size) return false;
  for (const [p, x] of a) {
    const y = b.get(p);
    if (!y || y.nextHop !== x.nextHop || (x.communities ?? []).join(',') !== (y.communities ?? []).join(','))
      return false;
  }
  return true;
}

/** The members nodes probe and the aggregator decides: of pools some VIP serves, with a real check, not disabled. */
export function checkedMembers(fleet: Fleet): string[] {
  const served = new Set(fleet.vips.map((v) => v.pool));
  const out: string[] = [];
  for (const p of fleet.pools) {
    if (p.healthCheck.type === 'none' || !served.has(p.name)) continue;
    for (const m of p.members) if (m.state !== 'disabled') out.push(`${p.name}/${m.name}`);
  }
  return out;
}

/** Health targets of the node: the members of checkedMembers(), with their pool's checks. */
export function healthTargets(fleet: Fleet): HealthTarget[] {
  const served = new Set(fleet.vips.map((v) => v.pool));
  const out: HealthTarget[] = [];
  for (const p of fleet.pools) {
    if (p.healthCheck.type === 'none' || !served.has(p.name)) continue;
    for (const m of p.members) {
      if (m.state === 'disabled') continue;
      out.push({
        key: `${p.name}/${m.name}`,
        address: m.address,
        port: m.port,
        checks: healthChecksOf(p),
        ...(p.healthChecksRequired === undefined ? {} : { required: p.healthChecksRequired }),
      });
    }
  }
  return out;
}
