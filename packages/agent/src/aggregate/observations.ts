/**
 * What the aggregator decides from: each node's health report (etcd, the truth) with the node's newer observations
 * (NATS, or this node itself) over it, kept to the live nodes and the current members. NATS brings every node's
 * observations to every node, and on a follower no report watch replaces them, so anything decideAll would not
 * count is dropped here rather than kept.
 */
import type { HealthReport } from '@l4fleet/store';
import type { Clock } from '../clock.js';
import type { ObservedStatus } from '../health/hysteresis.js';
import type { HealthReports } from './decide.js';

/**
 * How long an observation that came by NATS (or from this node itself) outranks the same node's etcd report when
 * they disagree, ms. A node writes its whole view to etcd after every change, one write in flight; the watch
 * delivers every node's record on every change, so a record written before an observation (unchanged, or still
 * in flight) arrives after it. Letting that record win flipped a decision back: "down" at +2.44 s, "up" at +2.49,
 * "down" at +2.58 in a lab run (backend3 failed; three pools failing on three nodes within 0.2 s), and every
 * node's tables moved three times. Once etcd shows the observed status the observation is settled; past this
 * time etcd wins again (it is the truth: a node whose etcd writes keep failing is not believed forever).
 */
export const OBSERVATION_LEAD_MS = 10_000;

export interface Observations {
  /** Per node: member -> status, etcd's report with the unsettled observations over it. */
  readonly reports: HealthReports;
  readonly live: ReadonlySet<string>;
  setMembers(keys: readonly string[]): void;
  setLiveNodes(nodes: ReadonlySet<string>): void;
  /** The report watch delivered every node's record. */
  fromEtcd(list: readonly HealthReport[]): void;
  /** The report watch ended (leadership lost): nodes it delivered count no more unless live. */
  etcdEnded(): void;
  /** One node's observation; true when it changed what that node's report says. */
  observe(node: string, member: string, status: ObservedStatus): boolean;
  /** Entries held: report entries plus unsettled observations (bounded by live nodes x members, twice). */
  readonly kept: number;
}

export function createObservations(clock: Clock): Observations {
  const reports = new Map<string, Map<string, ObservedStatus>>();
  /** Per node: observations not yet seen in its etcd report (see OBSERVATION_LEAD_MS). */
  const unsettled = new Map<string, Map<string, { status: ObservedStatus; atMs: number }>>();
  let members: ReadonlySet<string> = new Set();
  let live: ReadonlySet<string> = new Set();
  /** Nodes in the report watch's last delivery; empty while no watch runs. */
  let etcdNodes: ReadonlySet<string> = new Set();
  /** When observe() last dropped the observations past OBSERVATION_LEAD_MS, ms. */
  let sweptMs = Number.NEGATIVE_INFINITY;

  /** A node's etcd report with its newer observations over it; observations etcd now shows are settled. */
  const withUnsettled = (node: string, fromEtcd: Map<string, ObservedStatus>): Map<string, ObservedStatus> => {
    const pending = unsettled.get(node);
    if (!pending) return fromEtcd;
    const now = clock.now();
    for (const [member, o] of pending) {
      // etcd leaves 'unknown' out of a report: absent there is the same as 'unknown'.
      const etcdSays = fromEtcd.get(member) ?? 'unknown';
      if (etcdSays === o.status || now - o.atMs >= OBSERVATION_LEAD_MS) pending.delete(member);
      else fromEtcd.set(member, o.status);
    }
    if (pending.size === 0) unsettled.delete(node);
    return fromEtcd;
  };

  /** Drops what belongs to no live node (nor one the watch still delivers) or to no current member. */
  const prune = (): void => {
    for (const [node, r] of reports) {
      if (!live.has(node) && !etcdNodes.has(node)) reports.delete(node);
      else for (const member of r.keys()) if (!members.has(member)) r.delete(member);
    }
    for (const [node, pending] of unsettled) {
      if (live.has(node)) for (const member of pending.keys()) if (!members.has(member)) pending.delete(member);
      if (!live.has(node) || pending.size === 0) unsettled.delete(node);
    }
  };

  /** Observations no etcd report settled within OBSERVATION_LEAD_MS lose their lead (as in withUnsettled). */
  const sweep = (now: number): void => {
    if (now - sweptMs < OBSERVATION_LEAD_MS) return;
    sweptMs = now;
    for (const [node, pending] of unsettled) {
      for (const [member, o] of pending) if (now - o.atMs >= OBSERVATION_LEAD_MS) pending.delete(member);
      if (pending.size === 0) unsettled.delete(node);
    }
  };

  return {
    reports,
    get live() {
      return live;
    },
    setMembers(keys) {
      members = new Set(keys);
      prune();
    },
    setLiveNodes(nodes) {
      live = nodes;
      prune();
    },
    fromEtcd(list) {
      const seen = new Set<string>();
      for (const r of list) {
        seen.add(r.node);
        reports.set(r.node, withUnsettled(r.node, new Map(r.members)));
      }
      etcdNodes = seen;
      for (const node of [...reports.keys()]) {
        if (!seen.has(node) && !live.has(node)) {
          reports.delete(node);
          unsettled.delete(node);
        }
      }
    },
    etcdEnded() {
      etcdNodes = new Set();
      prune();
    },
    observe(node, member, status) {
      // decideAll counts only live nodes and current members: anything else would only be kept.
      if (!live.has(node) || !members.has(member)) return false;
      const now = clock.now();
      sweep(now);
      let pending = unsettled.get(node);
      if (!pending) unsettled.set(node, (pending = new Map()));
      pending.set(member, { status, atMs: now });
      let r = reports.get(node);
      if (!r) reports.set(node, (r = new Map()));
      if (r.get(member) === status) return false;
      r.set(member, status);
      return true;
    },
    get kept() {
      let n = 0;
      for (const r of reports.values()) n += r.size;
      for (const p of unsettled.values()) n += p.size;
      return n;
    },
  };
}
