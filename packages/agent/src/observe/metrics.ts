/**
 * The agent's Prometheus metrics (prom-client), on a registry of its own so several agents can share a process
 * (bench, tests). Names are stable: dashboards and the lab read them.
 */

import type { MemberRamps, MemberStatus } from '@l4fleet/config';
import type { DataPlaneCounters } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RecordFamily } from '../etcd/rejected-records.js';
import type { ObservedStatus } from '../health/hysteresis.js';
import type { NodeState } from '../lifecycle/node-state.js';
import { createDataPlaneReader, registerDataPlaneGauges } from './dataplane-metrics.js';

const NODE_STATES: readonly NodeState[] = ['starting', 'serving', 'draining', 'drained', 'stopping', 'stopped'];
/** BGP FSM states of RFC 4271 §8.2.2, plus unknown. */
const SESSION_STATES = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'] as const;
/** Every key family the store may refuse a record of (a Record, so a new family fails to compile until listed). */
const RECORD_FAMILIES: Record<RecordFamily, true> = {
  desired: true,
  decided: true,
  nodes: true,
  health: true,
  election: true,
  history: true,
};

/** A counter of a running total kept elsewhere (the event publisher's): each `set` adds what is new since the last. */
export interface TotalCounter {
  set(total: number): void;
}

export interface AgentMetrics {
  readonly registry: Registry;
  readonly nodeState: Gauge<'state'>;
  readonly failStatic: Gauge;
  readonly failStaticEnteredTotal: Counter;
  readonly configReloadsTotal: Counter<'result'>;
  readonly etcdConnected: Gauge;
  readonly natsConnected: Gauge;
  readonly aggregatorLeader: Gauge;
  readonly bgpSessionState: Gauge<'peer' | 'state'>;
  readonly vipAnnounced: Gauge<'vip'>;
  readonly vipsAnnounced: Gauge;
  readonly tableChecksum: Gauge<'vip' | 'checksum'>;
  readonly tableBackupServing: Gauge<'vip'>;
  readonly tableBelowMinUpMembers: Gauge<'vip'>;
  readonly tableUsableBackends: Gauge<'vip'>;
  readonly tableApplySeconds: Histogram;
  readonly tableAppliesTotal: Counter<'result'>;
  readonly tableDriftRepairsTotal: Counter;
  readonly tableVerifiesTotal: Counter<'result'>;
  readonly desiredRevision: Gauge;
  readonly memberObserved: Gauge<'member'>;
  readonly memberDecided: Gauge<'member'>;
  readonly memberWeightPercent: Gauge<'member'>;
  readonly probesTotal: Counter<'result'>;
  readonly stateRejectedTotal: Counter;
  readonly storeRejectedRecordsTotal: Counter<'family'>;
  readonly eventsDroppedTotal: TotalCounter;
  readonly eventsPublishedTotal: TotalCounter;
  readonly decisionsWrittenTotal: Counter;
  readonly lastStateServing: Gauge;
  readonly lastStateSavesTotal: Counter<'result'>;
  readonly lastStateBytes: Gauge;
  readonly lastStateAgeSeconds: Gauge;
  readonly gobgpdReachable: Gauge;
  readonly bfdSessionUp: Gauge<'peer'>;
  readonly bfdAdminDown: Gauge<'peer'>;
  readonly bfddReachable: Gauge;
  setNodeState(state: NodeState): void;
  setSessionState(peer: string, state: string): void;
  /** Drops a peer's session series (the peer left agent.yaml on a reload). */
  forgetSession(peer: string): void;
  /**
   * Reads data-plane counters on each scrape; `logger` hears of a run of failed reads (its first and its end), which
   * the metrics show as `l4fleet_dataplane_counters_up` 0 with the other data-plane series missing.
   */
  setDataPlaneSource(fn: (() => Promise<DataPlaneCounters>) | undefined, logger?: Logger): void;
  /** This node's view of a member (l4fleet_member_observed: 1 up, 0 down, -1 unknown). */
  setMemberObserved(member: string, status: ObservedStatus): void;
  /** Drops the observed series of members not in `probed` (removed, disabled: no longer probed). */
  forgetMembersObserved(probed: ReadonlySet<string>): void;
  /** The decided records' series (recordDecided); members in neither map lose theirs. */
  setDecided(decided: ReadonlyMap<string, MemberStatus>, ramps: MemberRamps): void;
}

export interface AgentMetricsOptions {
  readonly node: string;
  readonly fleet: string;
  /** The process metrics (l4fleet_agent_process_*); default true. */
  readonly defaultMetrics?: boolean;
  /** How long a scrape waits for the data-plane counters before it serves the last reading; default 1000 ms. */
  readonly dataPlaneReadTimeoutMs?: number;
}

export function createAgentMetrics(opts: AgentMetricsOptions): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: opts.node, fleet: opts.fleet });
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'l4fleet_agent_process_' });
  const r = [registry];
  const dp = createDataPlaneReader(
    opts.dataPlaneReadTimeoutMs === undefined ? {} : { timeoutMs: opts.dataPlaneReadTimeoutMs },
  );

  const m = {
    registry,
    nodeState: new Gauge({
      name: 'l4fleet_node_state',
      help: '1 for the node lifecycle state',
      labelNames: ['state'],
      registers: r,
    }),
    failStatic: new Gauge({
      name: 'l4fleet_fail_static',
      help: '1 while serving the last good state without etcd',
      registers: r,
    }),
    failStaticEnteredTotal: new Counter({
      name: 'l4fleet_fail_static_entered_total',
      help: 'Times the node went fail-static (a blip between two scrapes shows here, not in l4fleet_fail_static)',
      registers: r,
    }),
    configReloadsTotal: new Counter({
      name: 'l4fleet_config_reloads_total',
      help: 'agent.yaml reloads (SIGHUP) by result: applied, or refused (invalid, or a field only a restart applies)',
      labelNames: ['result'],
      registers: r,
    }),
    etcdConnected: new Gauge({ name: 'l4fleet_etcd_connected', help: '1 while etcd answers', registers: r }),
    natsConnected: new Gauge({ name: 'l4fleet_nats_connected', help: '1 while NATS is connected', registers: r }),
    aggregatorLeader: new Gauge({
      name: 'l4fleet_aggregator_leader',
      help: '1 while this node decides member status',
      registers: r,
    }),
    gobgpdReachable: new Gauge({
      name: 'l4fleet_gobgpd_reachable',
      help: '1 while gobgpd answers the agent (0: dead or hung; the router drops the node within its hold time)',
      registers: r,
    }),
    bfdSessionUp: new Gauge({
      name: 'l4fleet_bfd_session_up',
      help: "1 while the node's BFD session to the peer is up in its bfdd (RFC 5880), 0 otherwise",
      labelNames: ['peer'],
      registers: r,
    }),
    bfdAdminDown: new Gauge({
      name: 'l4fleet_bfd_admin_down',
      help: '1 while the agent holds the BFD session AdminDown because its data plane failed (the router dropped the node)',
      labelNames: ['peer'],
      registers: r,
    }),
    bfddReachable: new Gauge({
      name: 'l4fleet_bfdd_reachable',
      help: "1 while the node's bfdd answers the agent (vtysh); only with bfd.enabled",
      registers: r,
    }),
    bgpSessionState: new Gauge({
      name: 'l4fleet_bgp_session_state',
      help: '1 for the BGP FSM state of each peer (RFC 4271 §8.2.2)',
      labelNames: ['peer', 'state'],
      registers: r,
    }),
    vipAnnounced: new Gauge({
      name: 'l4fleet_vip_announced',
      help: '1 while the VIP is announced',
      labelNames: ['vip'],
      registers: r,
    }),
    vipsAnnounced: new Gauge({ name: 'l4fleet_vips_announced', help: 'VIPs announced', registers: r }),
    tableChecksum: new Gauge({
      name: 'l4fleet_table_checksum_info',
      help: '1 for the checksum of the applied table of each VIP (equal on every node)',
      labelNames: ['vip', 'checksum'],
      registers: r,
    }),
    tableUsableBackends: new Gauge({
      name: 'l4fleet_table_usable_backends',
      help: "members of the VIP's pool taking new flows (a draining VIP refuses new flows regardless)",
      labelNames: ['vip'],
      registers: r,
    }),
    tableBackupServing: new Gauge({
      name: 'l4fleet_table_backup_serving',
      help: "1 while the pool's backup members take new flows of the VIP (fewer primaries than minActiveMembers, default 1, do)",
      labelNames: ['vip'],
      registers: r,
    }),
    tableBelowMinUpMembers: new Gauge({
      name: 'l4fleet_table_below_min_up_members',
      help: "1 while some but fewer than the pool's minUpMembers members take new flows of the VIP, so the node does not announce it",
      labelNames: ['vip'],
      registers: r,
    }),
    tableApplySeconds: new Histogram({
      name: 'l4fleet_table_apply_seconds',
      help: 'time from a desired-state or decision change to the data plane applied',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    tableAppliesTotal: new Counter({
      name: 'l4fleet_table_applies_total',
      help: 'data-plane applies by result (the periodic verifies are counted apart: l4fleet_table_verifies_total)',
      labelNames: ['result'],
      registers: r,
    }),
    tableDriftRepairsTotal: new Counter({
      name: 'l4fleet_table_drift_repairs_total',
      help:
        'verifies (and applies: a proxy listener reopened) that found the data-plane state changed behind the agent ' +
        '(by hand, another program, a lost socket) and repaired it',
      registers: r,
    }),
    tableVerifiesTotal: new Counter({
      name: 'l4fleet_table_verifies_total',
      help:
        'periodic data-plane verifies by result: ok (nothing differed), repaired (drift put back), error (the ' +
        'read-back or the repair failed: handled as a failed apply, BFD AdminDown and a retry)',
      labelNames: ['result'],
      registers: r,
    }),
    desiredRevision: new Gauge({
      name: 'l4fleet_desired_revision',
      help: 'etcd revision of the applied desired state',
      registers: r,
    }),
    memberObserved: new Gauge({
      name: 'l4fleet_member_observed',
      help: "this node's health view of a member: 1 up, 0 down, -1 unknown",
      labelNames: ['member'],
      registers: r,
    }),
    memberDecided: new Gauge({
      name: 'l4fleet_member_decided',
      help: 'the decided status of a member: 1 up, 0 down',
      labelNames: ['member'],
      registers: r,
    }),
    memberWeightPercent: new Gauge({
      name: 'l4fleet_member_weight_percent',
      help: 'the part of its weight a member has in the tables: below 100 while it ramps up in slow start',
      labelNames: ['member'],
      registers: r,
    }),
    probesTotal: new Counter({
      name: 'l4fleet_health_probes_total',
      help: 'health probes by result',
      labelNames: ['result'],
      registers: r,
    }),
    stateRejectedTotal: new Counter({
      name: 'l4fleet_state_rejected_total',
      help: 'invalid desired states found in etcd and rejected (the last good state kept serving)',
      registers: r,
    }),
    storeRejectedRecordsTotal: new Counter({
      name: 'l4fleet_store_rejected_records_total',
      help: 'records the store refused (bad shape, size claims or checksum), by key family; nothing changed',
      labelNames: ['family'],
      registers: r,
    }),
    eventsDroppedTotal: totalCounter(
      new Counter({
        name: 'l4fleet_events_dropped_total',
        help: 'NATS events dropped (buffer full while NATS is away, or a publish NATS refused)',
        registers: r,
      }),
    ),
    eventsPublishedTotal: totalCounter(
      new Counter({ name: 'l4fleet_events_published_total', help: 'NATS events published', registers: r }),
    ),
    decisionsWrittenTotal: new Counter({
      name: 'l4fleet_decisions_written_total',
      help: 'decided-status writes by this node as aggregator',
      registers: r,
    }),
    lastStateServing: new Gauge({
      name: 'l4fleet_last_state_serving',
      help: '1 while the node serves inputs loaded from its state file (restarted while etcd was unreachable)',
      registers: r,
    }),
    lastStateSavesTotal: new Counter({
      name: 'l4fleet_last_state_saves_total',
      help: 'state file writes by result',
      labelNames: ['result'],
      registers: r,
    }),
    lastStateBytes: new Gauge({ name: 'l4fleet_last_state_bytes', help: 'size of the state file', registers: r }),
    lastStateAgeSeconds: new Gauge({
      name: 'l4fleet_last_state_age_seconds',
      help: 'age of the served inputs loaded from the state file, at load (0 when serving from etcd)',
      registers: r,
    }),
  };
  registerDataPlaneGauges(r, dp);
  // A labelled counter has no series until its first inc(): it would appear at 1 with the first event, which increase()
  // does not count, so an alert on it would miss the first error after each start. Every known label value starts at 0.
  for (const result of ['ok', 'error']) m.tableAppliesTotal.inc({ result }, 0);
  for (const result of ['ok', 'repaired', 'error']) m.tableVerifiesTotal.inc({ result }, 0);
  for (const result of ['applied', 'refused']) m.configReloadsTotal.inc({ result }, 0);
  for (const result of ['ok', 'fail']) m.probesTotal.inc({ result }, 0);
  for (const result of ['ok', 'error']) m.lastStateSavesTotal.inc({ result }, 0);
  for (const family of Object.keys(RECORD_FAMILIES)) m.storeRejectedRecordsTotal.inc({ family }, 0);
  // No sample until there is a value: a 0 revision while the agent starts would read as a fleet change at each
  // restart (the dashboard's "Fleet changes"), and a 0 bfdd reachability on a node without BFD as a dead bfdd.
  m.desiredRevision.remove();
  m.bfddReachable.remove();

  const observed = new Set<string>();
  /** Members with a decided / weight series now: a later record without them removes the series. */
  let decidedSeries = new Set<string>();
  let weightSeries = new Set<string>();

  return {
    ...m,
    setMemberObserved(member, status) {
      observed.add(member);
      m.memberObserved.set({ member }, status === 'up' ? 1 : status === 'down' ? 0 : -1);
    },
    forgetMembersObserved(probed) {
      for (const member of observed) {
        if (probed.has(member)) continue;
        observed.delete(member);
        m.memberObserved.remove({ member });
      }
    },
    setDecided(decided, ramps) {
      for (const [member, s] of decided) m.memberDecided.set({ member }, s === 'up' ? 1 : 0);
      const weighted = new Set([...decided.keys(), ...ramps.keys()]);
      for (const member of weighted) m.memberWeightPercent.set({ member }, ramps.get(member)?.percent ?? 100);
      // A member of a pool without checks has no decision, only a ramp: once it ends (or the member left the
      // fleet) its series goes, or it would show its last step for ever.
      for (const member of decidedSeries) if (!decided.has(member)) m.memberDecided.remove({ member });
      for (const member of weightSeries) if (!weighted.has(member)) m.memberWeightPercent.remove({ member });
      decidedSeries = new Set(decided.keys());
      weightSeries = weighted;
    },
    setNodeState(state) {
      for (const s of NODE_STATES) m.nodeState.set({ state: s }, s === state ? 1 : 0);
    },
    setSessionState(peer, state) {
      for (const s of SESSION_STATES) m.bgpSessionState.set({ peer, state: s }, s === state ? 1 : 0);
    },
    forgetSession(peer) {
      for (const s of SESSION_STATES) m.bgpSessionState.remove({ peer, state: s });
    },
    setDataPlaneSource(fn, logger) {
      dp.setSource(fn, logger);
    },
  };
}

function totalCounter(counter: Counter): TotalCounter {
  let last = 0;
  return {
    set(total) {
      if (total > last) counter.inc(total - last);
      last = total;
    },
  };
}

/**
 * The decided records in the metrics: each member's status (1 up, 0 down), and the part of its weight it has
 * (slow start: its ramp's percent; 100 otherwise, also for a member whose ramp just ended). A member in neither
 * (removed from the fleet; of a pool without checks once its ramp ended) loses its series.
 */
export function recordDecided(
  metrics: AgentMetrics,
  decided: ReadonlyMap<string, MemberStatus>,
  ramps: MemberRamps,
): void {
  metrics.setDecided(decided, ramps);
}
