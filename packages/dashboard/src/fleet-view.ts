/**
 * What the page shows about the fleet, derived from etcd only (pure: the inputs are the store's own shapes).
 * Expected tables are built with @l4fleet/config buildVipTable, the one derivation every node and the CLI use
 * (Maglev §3.4: equal inputs give equal tables), so a node whose checksum differs is flagged exactly as
 * `l4fleet status` flags it. Building a table is the costly part (a Maglev table per VIP), so a VipTableCache keeps
 * each VIP's result and rebuilds it only when what it is derived from changed.
 */
import { createHash } from 'node:crypto';
import {
  announcementRule,
  backupsServe,
  buildVipTable,
  describeHealthCheck,
  endpointText,
  type Fleet,
  healthChecksOf,
  type MemberStatus,
  memberKey,
  type Pool,
  type PoolHistory,
  type Vip,
  type VipState,
  vipKey,
  vipServed,
  vipStateOf,
} from '@l4fleet/config';
import { NO_BACKEND } from '@l4fleet/maglev';
import type { DecidedState, DesiredState, HealthReport, NodeView, TableHistoryState } from '@l4fleet/store';
import { ETCD_REACHABLE, type EtcdReachability } from './etcd-check.js';
import { type MemberHealth, memberHealthOf } from './member-health.js';

export interface FleetInputs {
  readonly desired: DesiredState;
  readonly decided: DecidedState;
  readonly nodes: readonly NodeView[];
  readonly health: readonly HealthReport[];
  readonly leader: string | undefined;
  /** The table history (second chance, 0011): previous owners are in the nodes' checksums. */
  readonly history?: TableHistoryState;
}

export interface NodeRow {
  readonly name: string;
  /** False when the lease is gone (agent dead) but a drain flag remains. */
  readonly alive: boolean;
  readonly address: string | null;
  readonly version: string | null;
  readonly drained: boolean;
  readonly failStatic: boolean;
  readonly leader: boolean;
  /** Peer address -> BGP session state, as the node reported it. */
  readonly bgp: Readonly<Record<string, string>>;
  /** Peer address -> BFD session state (`up`, `down`, `init`, `shutdown`) as the node reported it; null: no BFD. */
  readonly bfd: Readonly<Record<string, string>> | null;
  readonly announced: readonly string[];
  readonly desiredRevision: number | null;
  /** Per VIP of the fleet: the node's checksum (null when missing) and whether it equals the expected one. */
  readonly tables: readonly { readonly vip: string; readonly checksum: string | null; readonly match: boolean }[];
  readonly reportedAt: string | null;
}

export interface ShareRow {
  readonly backend: string;
  readonly slots: number;
  readonly fraction: number;
}

export interface VipRow {
  readonly key: string;
  readonly pool: string;
  readonly tableSize: number;
  readonly hash: string;
  /** The VIP's `sourceRanges` (the clients it admits), or null: every client. */
  readonly sources: readonly string[] | null;
  /** `vips[].state`: a disabled VIP is in the fleet, but no node serves or announces it (no checksum expected). */
  readonly state: VipState;
  readonly checksum: string | null;
  /** Slots per backend of the expected table (every index-space member, 0 when it takes no new flows). */
  readonly shares: readonly ShareRow[];
  /** Slots that lead nowhere (no member takes new flows). */
  readonly emptySlots: number;
  readonly announcedBy: readonly string[];
  /**
   * Why the fleet's rule has no node announce this served (enabled or draining) VIP (`no member takes new flows`, or
   * fewer than its pool's minUpMembers do: @l4fleet/config belowMinUpText), or null while it is announced (or
   * disabled: `state` says so).
   */
  readonly notAnnounced: string | null;
}

export interface MemberRow {
  readonly name: string;
  readonly endpoint: string;
  readonly weight: number;
  readonly state: string;
  /** The aggregator's decision; `unknown` before the first one (counts as up in tables). */
  readonly decided: MemberStatus | 'unknown';
  /** Slow start: the part of its weight the member has while it ramps up, %; null: its whole weight. */
  readonly slowStartPercent: number | null;
  /** What the nodes' own health views say of the member: counts, and the nodes that disagree with the decision. */
  readonly health: MemberHealth;
  /**
   * Node -> why that node sees the member down (its status record's probeFailures: the probe that took it down); at
   * most MAX_NODES_NAMED (member-health.ts), first by node name, the rest counted in downReasonsOmitted.
   */
  readonly downReasons: Readonly<Record<string, string>>;
  readonly downReasonsOmitted: number;
}

export interface PoolRow {
  readonly name: string;
  /**
   * What the checks send and expect (@l4fleet/config describeHealthCheck): `healthCheck`, then each of
   * `additionalHealthChecks` after ` and ` (a member must pass them all), or `at least N of: A; B; C` with the
   * pool's healthChecksRequired.
   */
  readonly healthCheck: string;
  /** True while the pool's backup members take new flows (fewer primaries than its minActiveMembers do). */
  readonly backupsServing: boolean;
  readonly members: readonly MemberRow[];
}

export interface FleetView {
  readonly revision: number;
  readonly decidedRevision: number;
  readonly leader: string | null;
  readonly nodes: readonly NodeRow[];
  readonly vips: readonly VipRow[];
  readonly pools: readonly PoolRow[];
  /** Whether etcd answered its last check; while it does not, the rest of the view is the last state read. */
  readonly etcd: {
    readonly reachable: boolean;
    readonly unreachableSince: string | null;
    readonly problem: string | null;
    /** Whether the watches are open; false only until the first state is read (the dashboard started in an outage). */
    readonly watching: boolean;
  };
  /**
   * Problems deriving the view (e.g. a fleet without a seed yet), and etcd not answering (first); the rest of the
   * view is still shown.
   */
  readonly problems: readonly string[];
}

/** PoolRow.healthCheck: every check, and how many a member must pass when not all. */
function healthChecksText(p: Fleet['pools'][number]): string {
  const described = healthChecksOf(p).map(describeHealthCheck);
  return p.healthChecksRequired === undefined
    ? described.join(' and ')
    : `at least ${p.healthChecksRequired} of: ${described.join('; ')}`;
}

/**
 * The page's line for an etcd outage: since when, why, and that what it shows is the last state read, or that
 * nothing has been read yet (`notWatching`: why the watches are not open yet, null once they are).
 */
function etcdProblem(etcd: EtcdReachability, notWatching: string | null, revision: number): string | undefined {
  if (etcd.reachable) {
    return notWatching === null ? undefined : `not watching etcd yet (${notWatching}): nothing read from it yet`;
  }
  const since = etcd.unreachableSinceMs === null ? 'now' : new Date(etcd.unreachableSinceMs).toISOString();
  const shown =
    notWatching === null ? `showing the last state read (revision ${revision})` : 'nothing read from it yet';
  return `etcd unreachable since ${since} (${etcd.problem ?? 'no answer'}): ${shown}`;
}

/** What a VIP's row shows of its expected table, or why there is none (`problem`, then no checksum). */
interface TableRow {
  readonly checksum: string | null;
  readonly shares: readonly ShareRow[];
  readonly emptySlots: number;
  readonly problem: string | null;
}

function tableRow(
  build: typeof buildVipTable,
  fleet: Fleet,
  vip: Vip,
  decided: DecidedState,
  history: TableHistoryState | undefined,
): TableRow {
  try {
    const table = build(fleet, vip, decided.decided, history?.history, decided.ramps);
    const counts = new Array<number>(table.backends.length).fill(0);
    let emptySlots = 0;
    for (const i of table.slots) {
      if (i === NO_BACKEND) emptySlots++;
      else counts[i] = (counts[i] ?? 0) + 1;
    }
    const shares = table.backends.map((m, i) => ({
      backend: m.name,
      slots: counts[i] ?? 0,
      fraction: (counts[i] ?? 0) / vip.tableSize,
    }));
    return { checksum: table.checksum, shares, emptySlots, problem: null };
  } catch (err) {
    return {
      checksum: null,
      shares: [],
      emptySlots: vip.tableSize,
      problem: `vip ${vipKey(vip)}: ${(err as Error).message}`,
    };
  }
}

/**
 * Each VIP's table row from the last view, rebuilt only when one of its inputs changed: the VIP, its pool's
 * definition, that pool's members' decided statuses and ramps, that pool's history record, and the fleet's seed
 * (buildVipTable reads nothing else). A member flip then costs the tables of its pool, not of the fleet.
 */
export interface VipTableCache {
  /**
   * The rows of one view: call it for each VIP of `fleet`. Rows of VIPs not asked for since the previous call are
   * dropped, so the cache holds one row per VIP of the latest fleet.
   */
  forView(fleet: Fleet, decided: DecidedState, history?: TableHistoryState): (vip: Vip) => TableRow;
}

/** A digest of what a record holds, kept per object: the store hands over the same objects until they change. */
function digestBy<T extends object>(): (value: T) => string {
  const memo = new WeakMap<T, string>();
  return (value) => {
    let digest = memo.get(value);
    if (digest === undefined) {
      digest = createHash('sha256').update(JSON.stringify(value)).digest('hex');
      memo.set(value, digest);
    }
    return digest;
  };
}

/** `build`: the table builder (tests count its calls). */
export function createVipTableCache(build: typeof buildVipTable = buildVipTable): VipTableCache {
  let rows = new Map<string, { readonly vip: string; readonly pool: string; readonly row: TableRow }>();
  const poolDigest = digestBy<Pool>();
  const historyDigest = digestBy<PoolHistory>();
  return {
    forView(fleet, decided, history) {
      const previous = rows;
      const next: typeof rows = new Map();
      rows = next;
      const poolKeys = new Map<string, string>();
      const pools = new Map(fleet.pools.map((p) => [p.name, p]));
      // What the tables of pool `name` are built from; the pool's definition and history as digests of the objects
      // (one JSON per object, not per view: a 1,000-member pool is 100 KB of it), the decisions as they are now.
      const poolKey = (name: string): string => {
        let key = poolKeys.get(name);
        if (key !== undefined) return key;
        const pool = pools.get(name);
        const h = history?.history.get(name);
        key = `${fleet.hashSeed}|${pool ? poolDigest(pool) : 'none'}|${h ? historyDigest(h) : 'none'}`;
        for (const m of pool?.members ?? []) {
          const k = memberKey(name, m);
          const ramp = decided.ramps.get(k);
          key += `|${decided.decided.get(k) ?? ''}${ramp ? JSON.stringify(ramp) : ''}`;
        }
        poolKeys.set(name, key);
        return key;
      };
      return (vip) => {
        const id = vipKey(vip);
        const vipText = JSON.stringify(vip);
        const pool = poolKey(vip.pool);
        const kept = next.get(id) ?? previous.get(id);
        const row =
          kept !== undefined && kept.vip === vipText && kept.pool === pool
            ? kept.row
            : tableRow(build, fleet, vip, decided, history);
        next.set(id, { vip: vipText, pool, row });
        return row;
      };
    },
  };
}

function vipRows(
  fleet: Fleet,
  decided: DecidedState,
  nodes: readonly NodeView[],
  problems: string[],
  tables: (vip: Vip) => TableRow,
): VipRow[] {
  const announced = announcementRule(fleet, decided.decided, decided.ramps);
  return fleet.vips.map((vip) => {
    const key = vipKey(vip);
    const announcedBy = nodes.filter((n) => n.status?.announced.includes(key)).map((n) => n.name);
    const sources = vip.sourceRanges ?? null;
    const state = vipStateOf(vip);
    // Every served VIP, draining too (it keeps its table and stays announced, so minUpMembers still withdraws it), as
    // `l4fleet status` lists them; a disabled VIP says so by its state.
    const notAnnounced = vipServed(vip) ? (announced(vip) ?? null) : null;
    const { checksum, shares, emptySlots, problem } = tables(vip);
    if (problem !== null) problems.push(problem);
    return {
      key,
      pool: vip.pool,
      tableSize: vip.tableSize,
      hash: vip.hash,
      sources,
      state,
      announcedBy,
      notAnnounced,
      checksum,
      shares,
      emptySlots,
    };
  });
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * `notWatching`: why the etcd watches are not open yet (live-fleet.ts retries them); null once they are. `tables`:
 * the previous views' table rows (live-fleet.ts keeps one cache); by default every table is built.
 */
export function buildFleetView(
  inputs: FleetInputs,
  etcd: EtcdReachability = ETCD_REACHABLE,
  notWatching: string | null = null,
  tables: VipTableCache = createVipTableCache(),
): FleetView {
  const { desired, decided, nodes, health, leader, history } = inputs;
  const outage = etcdProblem(etcd, notWatching, desired.revision);
  const problems: string[] = outage === undefined ? [] : [outage];
  const vips = vipRows(desired.fleet, decided, nodes, problems, tables.forView(desired.fleet, decided, history));
  // Nodes hold tables for served VIPs (vipServed, the filter of servedVips that nodes and `l4fleet status` apply: a
  // draining VIP keeps its table), so a disabled one is no mismatch and a draining one is checked.
  const expected = new Map(vips.filter((v) => vipServed(v)).map((v) => [v.key, v.checksum]));
  const nodeRows: NodeRow[] = [...nodes]
    .sort((a, b) => byName(a.name, b.name))
    .map((n) => ({
      name: n.name,
      alive: n.record !== undefined,
      address: n.record?.address ?? null,
      version: n.record?.version ?? null,
      drained: n.drained,
      failStatic: n.status?.failStatic ?? false,
      leader: leader === n.name,
      bgp: n.status?.bgp ?? {},
      bfd: n.status?.bfd ?? null,
      announced: n.status?.announced ?? [],
      desiredRevision: n.status?.desiredRevision ?? null,
      tables: [...expected].map(([vip, sum]) => {
        const checksum = n.status?.tables[vip] ?? null;
        return { vip, checksum, match: checksum !== null && checksum === sum };
      }),
      reportedAt: n.status?.at ?? null,
    }));
  // A table for a VIP the fleet no longer serves (removed or disabled) is one the node's data plane still holds: its
  // apply failed, and the VIP may still be served there (`l4fleet status` says EXTRA).
  for (const n of nodeRows) {
    const extra = Object.keys(nodes.find((x) => x.name === n.name)?.status?.tables ?? {})
      .filter((k) => !expected.has(k))
      .sort();
    if (extra.length > 0)
      problems.push(`node ${n.name} still holds tables for VIPs the fleet does not serve: ${extra.join(' ')}`);
  }
  const memberHealth = memberHealthOf(nodes, health);
  const pools: PoolRow[] = desired.fleet.pools.map((p) => ({
    name: p.name,
    healthCheck: healthChecksText(p),
    backupsServing: p.members.some((m) => m.backup === true) && backupsServe(p, decided.decided),
    members: p.members.map((m) => {
      const key = memberKey(p.name, m);
      const status = decided.decided.get(key) ?? 'unknown';
      return {
        name: m.name,
        endpoint: endpointText(m.address, m.port),
        weight: m.weight,
        state: m.state,
        decided: status,
        slowStartPercent: decided.ramps.get(key)?.percent ?? null,
        ...memberHealth(key, status),
      };
    }),
  }));
  return {
    revision: desired.revision,
    decidedRevision: decided.revision,
    leader: leader ?? null,
    nodes: nodeRows,
    vips,
    pools,
    etcd: {
      reachable: etcd.reachable,
      unreachableSince: etcd.unreachableSinceMs === null ? null : new Date(etcd.unreachableSinceMs).toISOString(),
      problem: etcd.problem,
      watching: notWatching === null,
    },
    problems,
  };
}
