/** `l4fleet status`: fleet summary and the nodes whose tables differ from what the fleet derives. */
import { announcementRule, buildVipTable, type Fleet, type MemberRamps, servedVips, vipKey } from '@l4fleet/config';
import type { NodeLease, NodeView } from '@l4fleet/store';
import type { Command } from 'commander';
import { printableText } from '../printable.js';
import { renderTable } from '../table.js';
import { type FleetCommandContext, outputFormat, renderData, withStore } from './context.js';

export interface NodeCheck {
  readonly name: string;
  readonly lease: boolean;
  /**
   * s etcd still gives the node's lease (LeaseTimeToLive); null when it has no lease or the times were not read.
   * When it reaches 0 the node's keys vanish.
   */
  readonly leaseRemainingS: number | null;
  /**
   * The lease has not been renewed for over half its TTL: agents renew every third of it (lease-keeper.ts), so the
   * node's agent is dead, hung or cut from etcd, and its row goes when the lease runs out.
   */
  readonly leaseLate: boolean;
  readonly drained: boolean;
  readonly failStatic: boolean;
  readonly desiredRevision: number | null;
  /**
   * VIP keys the node announces over BGP, from its status record: `[]` once a drained node has withdrawn them all;
   * null when the node has no status record (not started, or its lease is gone), which says nothing of its routes.
   */
  readonly announced: readonly string[] | null;
  /** VIP keys whose checksum on the node differs from the expected one (or is missing). */
  readonly mismatched: readonly string[];
  /**
   * VIP keys the node holds a table for that the fleet does not expect (a VIP removed or disabled since): the node
   * still serves it, so its tables differ as much as a wrong checksum does.
   */
  readonly extraTables: readonly string[];
  /** Records from etcd the node's store refused since its agent started (the agent's status record). */
  readonly rejectedRecords: number;
  /** The last one refused: the store's message (key, field, value); null when none. */
  readonly lastRejected: string | null;
  /** BFD session state per peer as the node's bfdd reports it; null when the node runs no BFD (or no status). */
  readonly bfd: Readonly<Record<string, string>> | null;
  /**
   * Members this node sees down that the fleet does not decide down (`pool/member` -> the node's reason): the other
   * nodes reach them, so the path from this node is the suspect (docs/operator-guide.md).
   */
  readonly seesDownAlone: Readonly<Record<string, string>>;
  /**
   * Members the node sees down beyond the ones its status record lists (it lists the first
   * MAX_PROBE_FAILURES_PER_STATUS by key, probeFailuresOmitted counts the rest): the fleet may decide them up, so
   * seesDownAlone can be short by this many.
   */
  readonly seesDownOmitted: number;
  /**
   * s since the node's agent last wrote its status record (its `at`); null without a record or a readable time. The
   * agent writes it when something in it changes, not on a timer: a large age on a node with LEASE up is a quiet
   * node, not a dead one (the lease says that, within its TTL).
   */
  readonly statusAgeS: number | null;
}

/** Under the node table: what LEASE can and cannot tell (the status record has no heartbeat). */
const LEASE_NOTE =
  'LEASE up: renewed within the last half of its TTL (etcd.leaseTtlS, default 10 s; agents renew every third); late Ns: not renewed for longer, the agent is dead, hung or cut from etcd, and the row goes in N s. STATUS AGE: since its status last changed.';

/** Late: less than half the TTL left, where a live agent's renewals (every third of it) keep at least two thirds. */
export function leaseIsLate(lease: NodeLease): boolean {
  return lease.remainingS * 2 < lease.grantedS;
}

/** The LEASE column: `up`, `late 3s` (renewals stopped; the row goes in 3 s) or `gone` (no registration). */
export function leaseCell(c: Pick<NodeCheck, 'lease' | 'leaseLate' | 'leaseRemainingS'>): string {
  if (!c.lease) return 'gone';
  return c.leaseLate ? `late ${c.leaseRemainingS}s` : 'up';
}

/** How many of a node's lone views the summary line names before `and N more`. */
const SHOWN_LONE_VIEWS = 3;

/** The BFD column: one state when every session agrees (`up`), else each `peer state`; `-` without BFD. */
export function bfdCell(bfd: NodeCheck['bfd']): string {
  if (bfd === null) return '-';
  const entries = Object.entries(bfd).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return 'no session';
  const states = new Set(entries.map(([, s]) => s));
  return states.size === 1 ? (entries[0]?.[1] ?? '-') : entries.map(([p, st]) => `${p} ${st}`).join(', ');
}

/** The STATUS AGE column: `42s` under 2 min, `17m` under 2 h, else `5h`; `-` without a status record. */
export function statusAgeCell(ageS: number | null): string {
  if (ageS === null) return '-';
  if (ageS < 120) return `${ageS}s`;
  if (ageS < 7_200) return `${Math.floor(ageS / 60)}m`;
  return `${Math.floor(ageS / 3_600)}h`;
}

/** Whole s from the record's `at` to `nowMs` (0 for a clock ahead of ours); null when absent or not a time. */
function ageS(at: string | undefined, nowMs: number): number | null {
  const t = at === undefined ? Number.NaN : Date.parse(at);
  return Number.isNaN(t) ? null : Math.max(0, Math.floor((nowMs - t) / 1_000));
}

/** The agent's account of rejected records, read defensively: a status record is etcd data like any other. */
function rejectedOf(status: NodeView['status']): { total: number; last: string | null } {
  const r = (status as { rejectedRecords?: { total?: unknown; last?: { error?: unknown } } } | undefined)
    ?.rejectedRecords;
  const total = typeof r?.total === 'number' && Number.isSafeInteger(r.total) && r.total > 0 ? r.total : 0;
  const last = typeof r?.last?.error === 'string' ? r.last.error.slice(0, 200) : null;
  return { total, last: total > 0 ? last : null };
}

/** probeFailuresOmitted, read defensively (etcd data): a count, else 0. */
function omittedOf(status: NodeView['status']): number {
  const v: unknown = status?.probeFailuresOmitted;
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : 0;
}

export function checkNodes(
  nodes: readonly NodeView[],
  expected: ReadonlyMap<string, string>,
  decided: ReadonlyMap<string, string> = new Map(),
  nowMs: number = Date.now(),
  leases: ReadonlyMap<string, NodeLease> = new Map(),
): NodeCheck[] {
  const alone = (n: NodeView): Record<string, string> =>
    Object.fromEntries(
      Object.entries(n.status?.probeFailures ?? {})
        .filter(([member]) => decided.get(member) !== 'down')
        .map(([member, f]) => [member, f.reason]),
    );
  return nodes.map((n) => {
    const lease = n.record !== undefined ? leases.get(n.name) : undefined;
    return {
      name: n.name,
      lease: n.record !== undefined,
      leaseRemainingS: lease?.remainingS ?? null,
      leaseLate: lease !== undefined && leaseIsLate(lease),
      drained: n.drained,
      failStatic: n.status?.failStatic ?? false,
      desiredRevision: n.status?.desiredRevision ?? null,
      announced: n.status ? [...n.status.announced] : null,
      mismatched: n.status ? [...expected].filter(([k, sum]) => n.status?.tables[k] !== sum).map(([k]) => k) : [],
      extraTables: Object.keys(n.status?.tables ?? {})
        .filter((k) => !expected.has(k))
        .sort(),
      rejectedRecords: rejectedOf(n.status).total,
      lastRejected: rejectedOf(n.status).last,
      bfd: n.status?.bfd ?? null,
      seesDownAlone: alone(n),
      seesDownOmitted: omittedOf(n.status),
      statusAgeS: n.status ? ageS(n.status.at, nowMs) : null,
    };
  });
}

/**
 * `Node n3 sees 2 member(s) down that the fleet decides up: web/be1 (timeout), web/be2 (timeout); ...`. The members
 * and reasons are the node's status record's (etcd data, a backend agent's words): shown through printableText.
 */
function loneViewLines(checks: readonly NodeCheck[]): string[] {
  return checks.flatMap((c) => {
    const views = Object.entries(c.seesDownAlone);
    const check = `check the path from ${c.name} (l4fleet probe there)`;
    if (views.length === 0) {
      // None of the listed ones is alone, but the record left some out: they may be.
      if (c.seesDownOmitted === 0) return [];
      return [
        `Node ${c.name} sees ${c.seesDownOmitted} member(s) down beyond the ones its status record lists (some may be ones the fleet decides up); ${check}`,
      ];
    }
    const shown = views.slice(0, SHOWN_LONE_VIEWS).map(([m, why]) => printableText(`${m} (${why})`));
    const more = views.length > SHOWN_LONE_VIEWS ? ` and ${views.length - SHOWN_LONE_VIEWS} more` : '';
    const omitted = c.seesDownOmitted > 0 ? `, and ${c.seesDownOmitted} more down its status record does not list` : '';
    return [
      `Node ${c.name} sees ${views.length} member(s) down that the fleet does not: ${shown.join(', ')}${more}${omitted}; ${check}`,
    ];
  });
}

function counts(fleet: Fleet, decided: ReadonlyMap<string, string>, ramps: MemberRamps) {
  let members = 0;
  let active = 0;
  let draining = 0;
  let disabled = 0;
  let down = 0;
  for (const p of fleet.pools) {
    for (const m of p.members) {
      members++;
      if (m.state === 'active') active++;
      else if (m.state === 'draining') draining++;
      else disabled++;
      if (decided.get(`${p.name}/${m.name}`) === 'down') down++;
    }
  }
  // Members in slow start (the decided records' ramps): their tables move at each step.
  const slowStart = ramps.size;
  const vipsDisabled = fleet.vips.length - servedVips(fleet).length;
  const vipsDraining = fleet.vips.filter((v) => v.state === 'draining').length;
  return {
    vips: fleet.vips.length,
    vipsDisabled,
    vipsDraining,
    pools: fleet.pools.length,
    members,
    active,
    draining,
    disabled,
    down,
    slowStart,
  };
}

export function registerStatus(program: Command, ctx: FleetCommandContext): void {
  program
    .command('status')
    .description('fleet summary: desired revision, members, leader, nodes and table checksum agreement')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (opts: { output: string }, cmd: Command) => {
      const format = outputFormat(opts.output);
      await withStore(ctx, cmd, async (store) => {
        const [desired, { decided, ramps }, nodes, leader, { history }, writes, leases] = await Promise.all([
          store.getDesired(),
          store.getDecided(),
          store.listNodes(),
          store.getLeader(),
          store.getTableHistory(),
          store.getDesiredHistory({ limit: 1 }),
          // The lease times refine LEASE (up/late); without them status still shows everything else and says why.
          store.nodeLeases().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))),
        ]);
        const leaseError = leases instanceof Error ? leases.message : null;
        // The write behind the desired state (its time and writer), when it is that same revision.
        const last = writes.revisions[0]?.revision === desired.revision ? writes.revisions[0] : undefined;
        const expected = new Map<string, string>();
        if (desired.fleet.hashSeed !== undefined) {
          // A disabled VIP has no table on any node (vips[].state).
          for (const vip of servedVips(desired.fleet))
            expected.set(vipKey(vip), buildVipTable(desired.fleet, vip, decided, history, ramps).checksum);
        }
        const checks = checkNodes(nodes, expected, decided, Date.now(), leases instanceof Error ? undefined : leases);
        // Served VIPs the fleet's rule has no node announce (no member, or fewer than minUpMembers, take new flows).
        const rule = announcementRule(desired.fleet, decided, ramps);
        const withdrawn = servedVips(desired.fleet).flatMap((vip) => {
          const reason = rule(vip);
          return reason === undefined ? [] : [{ vip: vipKey(vip), reason }];
        });
        const summary = {
          revision: desired.revision,
          ...(last ? { appliedAt: last.appliedAt, ...(last.appliedBy ? { appliedBy: last.appliedBy } : {}) } : {}),
          leader: leader ?? null,
          ...counts(desired.fleet, decided, ramps),
          nodes: checks,
          withdrawn,
          expectedChecksums: Object.fromEntries(expected),
          ...(leaseError ? { leaseError } : {}),
        };
        if (format !== 'table') return ctx.io.out(renderData(format, summary));
        const differing = checks.filter((c) => c.mismatched.length > 0 || c.extraTables.length > 0);
        const rejecting = checks.filter((c) => c.rejectedRecords > 0);
        ctx.io.out(
          [
            `Desired revision: ${desired.revision}${
              last
                ? ` (applied ${last.appliedAt}${last.appliedBy ? ` by ${printableText(last.appliedBy)}` : ''}; \`l4fleet history\`)`
                : ''
            }`,
            `VIPs: ${summary.vips}${vipStates(summary)}  pools: ${summary.pools}  members: ${summary.members} (active ${summary.active}, draining ${summary.draining}, disabled ${summary.disabled}, decided down ${summary.down}${summary.slowStart ? `, in slow start ${summary.slowStart}` : ''})`,
            ...withdrawn.map((w) => `VIP ${w.vip} withdrawn by every node: ${w.reason}`),
            `Aggregator leader: ${leader === undefined ? '(none)' : printableText(leader)}`,
            `Nodes: ${checks.filter((c) => c.lease).length} registered${lateText(checks)}, ${checks.filter((c) => c.drained).length} drained, ${differing.length} with differing tables`,
            ...(leaseError ? [`Lease times not read (LEASE shows up for every registered node): ${leaseError}`] : []),
            // The store's message quotes the refused value: etcd data, escaped for the terminal.
            ...rejecting.map(
              (c) =>
                `Node ${c.name} rejected ${c.rejectedRecords} record(s) from etcd; last: ${printableText(c.lastRejected ?? '')}`,
            ),
            ...loneViewLines(checks),
            '',
            renderTable(
              ['NODE', 'LEASE', 'DRAINED', 'FAIL-STATIC', 'BFD', 'REVISION', 'TABLES', 'REJECTED', 'STATUS AGE'],
              checks.map((c) => [
                c.name,
                leaseCell(c),
                c.drained ? 'yes' : 'no',
                c.failStatic ? 'yes' : 'no',
                bfdCell(c.bfd),
                c.desiredRevision === null ? '-' : String(c.desiredRevision),
                c.desiredRevision === null ? 'no status' : tablesCell(c),
                String(c.rejectedRecords),
                statusAgeCell(c.statusAgeS),
              ]),
            ),
            // Every key of a node is on its lease: a node that dies shows as it was until the lease runs out, then
            // leaves no row (unless drained). Said here so a fresh kill that still reads `up` is not taken as health.
            ...(checks.length > 0 ? ['', LEASE_NOTE] : []),
          ].join('\n'),
        );
      });
    });
}

/** The TABLES column: `ok`, `DIFFER: <keys>` (wrong or missing), `EXTRA: <keys>` (not in the fleet), or both. */
export function tablesCell(c: Pick<NodeCheck, 'mismatched' | 'extraTables'>): string {
  const parts = [
    ...(c.mismatched.length ? [`DIFFER: ${c.mismatched.join(' ')}`] : []),
    ...(c.extraTables.length ? [`EXTRA: ${c.extraTables.join(' ')}`] : []),
  ];
  return parts.length > 0 ? parts.join('; ') : 'ok';
}

/** ` (1 renewal late: n2)`: the registered nodes whose agents stopped renewing; '' when none. */
function lateText(checks: readonly NodeCheck[]): string {
  const late = checks.filter((c) => c.leaseLate).map((c) => c.name);
  return late.length > 0 ? ` (${late.length} renewal late: ${late.join(', ')})` : '';
}

/** ` (draining 1, disabled 2)`: the VIPs not taking new flows; '' when every VIP does. */
function vipStates(s: { readonly vipsDraining: number; readonly vipsDisabled: number }): string {
  const parts = [
    ...(s.vipsDraining ? [`draining ${s.vipsDraining}`] : []),
    ...(s.vipsDisabled ? [`disabled ${s.vipsDisabled}`] : []),
  ];
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}
