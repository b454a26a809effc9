/**
 * What the aggregator decides from: each node's health report (etcd, the truth) with the node's newer observations
 * (NATS, or this node itself) over it, kept to the live nodes and the current members. NATS brings every node's
 * observations to every node, and on a follower no report watch replaces them, so anything decideAll would not
 * count is dropped here rather than kept.
 */
import type { HealthReport } from '@l4fleet/store';
import type { Clock } from '../clock.js';
import type { ObservedStatus } from '../health/hysteresis.js';
import { timerDelayMs } from './clock-bounds.js';
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

/**
 * Observations whose lead ends within this of the one a timer fires for lose it together, ms: one timer pass for
 * a burst of changes (a member failing is observed by every node within ms of each other), not one per ms.
 */
const EXPIRY_BATCH_MS = 250;

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
  /**
   * Entries held: report entries, unsettled observations and the etcd reports they stand over (bounded by live
   * nodes x members, three times).
   */
  readonly kept: number;
  /** Stops the expiry timer. */
  close(): void;
}

/**
 * `onExpired`: observations lost their lead with no etcd delivery (OBSERVATION_LEAD_MS), and what a node's report
 * says changed: decide again.
 */
export function createObservations(clock: Clock, onExpired: () => void = () => undefined): Observations {
  const reports = new Map<string, Map<string, ObservedStatus>>();
  /** Per node: its report as the watch last delivered it, what an observation gives way to when its lead ends. */
  const etcd = new Map<string, Map<string, ObservedStatus>>();
  /**
   * Per node: observations not yet seen in its etcd report (see OBSERVATION_LEAD_MS), each with when it arrived on
   * the steady clock (a local receive time: a wall-clock step must not stretch or cut the lead).
   */
  const unsettled = new Map<string, Map<string, { status: ObservedStatus; atMs: number }>>();
  let members: ReadonlySet<string> = new Set();
  let live: ReadonlySet<string> = new Set();
  /** Nodes in the report watch's last delivery; empty while no watch runs. */
  let etcdNodes: ReadonlySet<string> = new Set();
  /** Fires when the earliest unsettled observation loses its lead; undefined while none is pending. */
  let expiryTimer: unknown;

  /** A node's etcd report with its newer observations over it; observations etcd now shows are settled. */
  const withUnsettled = (node: string, fromEtcd: Map<string, ObservedStatus>): Map<string, ObservedStatus> => {
    const pending = unsettled.get(node);
    if (!pending) return fromEtcd;
    const now = clock.monoMs();
    for (const [member, o] of pending) {
      // etcd leaves 'unknown' out of a report: absent there is the same as 'unknown'.
      const etcdSays = fromEtcd.get(member) ?? 'unknown';
      if (etcdSays === o.status || now - o.atMs >= OBSERVATION_LEAD_MS) pending.delete(member);
      else fromEtcd.set(member, o.status);
    }
    if (pending.size === 0) unsettled.delete(node);
    return fromEtcd;
  };

  /** The node's etcd report of `member` again (absent there: unknown); true when its report changed. */
  const restore = (node: string, member: string): boolean => {
    const r = reports.get(node);
    if (!r) return false;
    const was = r.get(member);
    const etcdSays = etcd.get(node)?.get(member);
    if (etcdSays === undefined) r.delete(member);
    else r.set(member, etcdSays);
    if (r.size === 0) reports.delete(node);
    return was !== etcdSays;
  };

  /**
   * Arms the timer at the earliest lead's end. Observations are stamped with the steady clock, so one pending
   * already armed for ends no later than any added after it: an armed timer stays.
   */
  const arm = (): void => {
    if (expiryTimer !== undefined) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const pending of unsettled.values()) for (const o of pending.values()) earliest = Math.min(earliest, o.atMs);
    if (earliest === Number.POSITIVE_INFINITY) return;
    expiryTimer = clock.setTimeout(expire, timerDelayMs(earliest + OBSERVATION_LEAD_MS, clock.monoMs()));
  };

  /**
   * Observations no etcd delivery settled within OBSERVATION_LEAD_MS lose their lead, also while etcd is quiet
   * (nothing else would ever end it): the node's etcd report stands again, and the aggregator decides again.
   */
  const expire = (): void => {
    expiryTimer = undefined;
    const now = clock.monoMs();
    let changed = false;
    for (const [node, pending] of unsettled) {
      for (const [member, o] of pending) {
        if (now + EXPIRY_BATCH_MS - o.atMs < OBSERVATION_LEAD_MS) continue;
        pending.delete(member);
        if (restore(node, member)) changed = true;
      }
      if (pending.size === 0) unsettled.delete(node);
    }
    arm();
    if (changed) onExpired();
  };

  /** Drops what belongs to no live node (nor one the watch still delivers) or to no current member. */
  const prune = (): void => {
    for (const held of [reports, etcd]) {
      for (const [node, r] of held) {
        if (!live.has(node) && !etcdNodes.has(node)) held.delete(node);
        else for (const member of r.keys()) if (!members.has(member)) r.delete(member);
      }
    }
    for (const [node, pending] of unsettled) {
      if (live.has(node)) for (const member of pending.keys()) if (!members.has(member)) pending.delete(member);
      if (!live.has(node) || pending.size === 0) unsettled.delete(node);
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
      etcd.clear();
      for (const r of list) {
        seen.add(r.node);
        etcd.set(r.node, new Map(r.members));
        reports.set(r.node, withUnsettled(r.node, new Map(r.members)));
      }
      etcdNodes = seen;
      for (const node of [...reports.keys()]) {
        if (seen.has(node)) continue;
        if (!live.has(node)) {
          reports.delete(node);
          unsettled.delete(node);
          continue;
        }
        // A live node with no record: it reports every member unknown (a restarted agent, its old lease's record
        // gone; a node whose endpoints changed). Its earlier report must not keep voting: only its observations
        // etcd has not shown yet stand.
        const r = withUnsettled(node, new Map());
        if (r.size === 0) reports.delete(node);
        else reports.set(node, r);
      }
    },
    etcdEnded() {
      etcdNodes = new Set();
      etcd.clear();
      prune();
    },
    observe(node, member, status) {
      // decideAll counts only live nodes and current members: anything else would only be kept.
      if (!live.has(node) || !members.has(member)) return false;
      let pending = unsettled.get(node);
      if (!pending) unsettled.set(node, (pending = new Map()));
      pending.set(member, { status, atMs: clock.monoMs() });
      arm();
      let r = reports.get(node);
      if (!r) reports.set(node, (r = new Map()));
      if (r.get(member) === status) return false;
      r.set(member, status);
      return true;
    },
    get kept() {
      let n = 0;
      for (const held of [reports, etcd]) for (const r of held.values()) n += r.size;
      for (const p of unsettled.values()) n += p.size;
      return n;
    },
    close() {
      clock.clearTimeout(expiryTimer);
      expiryTimer = undefined;
    },
  };
}
