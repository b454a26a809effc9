/**
 * Members as the fleet sees them, across pools: `l4fleet get members [--pool P] [--down]` (F5's `show ltm pool
 * members`, HAProxy's `show servers state`), the first place to look when something is down: each member's state and
 * weight from the fleet file, the status the aggregator decided, whether it takes new flows now (the same rule every
 * node's table follows), and which nodes see it down with their reasons (their status records' probeFailures). Also
 * `probeFailuresByMember`, which `describe vip` shares.
 */
import {
  endpointText,
  type Fleet,
  type MemberRamps,
  type MemberStatus,
  memberKey,
  usableMembers,
} from '@l4fleet/config';
import type { NodeView } from '@l4fleet/store';
import { CliError, EXIT_FAILURE } from '../io.js';
import { renderTable } from '../table.js';

/** Node -> why that node sees the member down, and since when (ISO). */
export type MemberProbeFailures = Record<string, { readonly reason: string; readonly since: string }>;

/**
 * `pool/member` -> the nodes that see it down, from every node's status record (probeFailures). Reasons as stored:
 * these rows are `-o json` too, which keeps them as `status -o json` does (printable.ts); the text renderings
 * (membersTable's renderTable, describe vip's lines) escape them.
 */
export function probeFailuresByMember(nodes: readonly NodeView[]): Map<string, MemberProbeFailures> {
  const out = new Map<string, MemberProbeFailures>();
  for (const n of nodes) {
    for (const [key, f] of Object.entries(n.status?.probeFailures ?? {})) {
      const entry = out.get(key) ?? {};
      entry[n.name] = { reason: f.reason, since: new Date(f.sinceMs).toISOString() };
      out.set(key, entry);
    }
  }
  return out;
}

/** One row of `get members`; `-o json` prints these: at least the member's fields of the fleet file (README). */
export interface MemberRow {
  readonly pool: string;
  readonly member: string;
  /** The fleet file's fields, as `get vips` has them: `member` and `endpoint` are for people and tables. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly endpoint: string;
  readonly state: string;
  readonly backup: boolean;
  readonly weight: number;
  /** The aggregator's decision; `unchecked` in a pool with `healthCheck: none`; `undecided` before any. */
  readonly decided: MemberStatus | 'unchecked' | 'undecided';
  readonly slowStartPercent?: number;
  /** Whether the fleet's tables give it new flows now (state, decision, backups, slow start: usableMembers). */
  readonly takesNewFlows: boolean;
  readonly probeFailures?: MemberProbeFailures;
}

export interface MembersFilter {
  readonly pool?: string;
  /** Only members decided down or not yet decided, or that some node sees down (not disabled, not unchecked). */
  readonly down?: boolean;
}

const needsLook = (r: MemberRow): boolean =>
  r.probeFailures !== undefined || (r.state !== 'disabled' && (r.decided === 'down' || r.decided === 'undecided'));

export function memberRows(
  fleet: Fleet,
  decided: ReadonlyMap<string, MemberStatus>,
  ramps: MemberRamps,
  nodes: readonly NodeView[],
  filter: MembersFilter = {},
): MemberRow[] {
  if (filter.pool !== undefined && !fleet.pools.some((p) => p.name === filter.pool)) {
    throw new CliError(
      `--pool: ${JSON.stringify(filter.pool)} is not a pool of the fleet (pools: ${fleet.pools.map((p) => p.name).join(', ')})`,
      EXIT_FAILURE,
    );
  }
  const failures = probeFailuresByMember(nodes);
  const rows: MemberRow[] = [];
  for (const pool of fleet.pools) {
    if (filter.pool !== undefined && pool.name !== filter.pool) continue;
    const taking = new Set(usableMembers(pool, decided, ramps).map((m) => m.name));
    for (const m of pool.members) {
      const key = memberKey(pool.name, m);
      const ramp = ramps.get(key);
      const seen = failures.get(key);
      rows.push({
        pool: pool.name,
        member: m.name,
        name: m.name,
        address: m.address,
        port: m.port,
        endpoint: endpointText(m.address, m.port),
        state: m.state,
        backup: m.backup === true,
        weight: m.weight,
        decided: pool.healthCheck.type === 'none' ? 'unchecked' : (decided.get(key) ?? 'undecided'),
        ...(ramp ? { slowStartPercent: ramp.percent } : {}),
        takesNewFlows: taking.has(m.name),
        ...(seen ? { probeFailures: seen } : {}),
      });
    }
  }
  return filter.down ? rows.filter(needsLook) : rows;
}

/**
 * The table of `get members`: REASON has each node that sees the member down, `node: reason` (escaped by renderTable,
 * as every cell).
 */
export function membersTable(rows: readonly MemberRow[]): string {
  return renderTable(
    ['POOL', 'MEMBER', 'ENDPOINT', 'STATE', 'WEIGHT', 'DECIDED', 'NEW FLOWS', 'SEEN DOWN BY'],
    rows.map((r) => [
      r.pool,
      r.member,
      r.endpoint,
      r.backup ? `${r.state} backup` : r.state,
      String(r.weight),
      r.slowStartPercent === undefined ? r.decided : `${r.decided}, slow start ${r.slowStartPercent}%`,
      r.takesNewFlows ? 'yes' : 'no',
      Object.entries(r.probeFailures ?? {})
        .map(([node, f]) => `${node}: ${f.reason}`)
        .join('; '),
    ]),
  );
}
