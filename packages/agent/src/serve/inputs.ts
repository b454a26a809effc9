/**
 * What the node serves from: the desired fleet, the decided status and the node's drain flag, and where each came
 * from (etcd since this start, or the state file). Tables and routes are built from these only (0006 "Fleet-
 * consistent tables"), so they are the agent's whole served input; the controllers change them through here.
 */
import { createHash } from 'node:crypto';
import type { Fleet, MemberRamps, MemberStatus, PoolHistory, TableHistory } from '@l4fleet/config';
import { type DesiredState, encodePoolHistory } from '@l4fleet/store';
import type { LastState } from '../persist/last-state.js';

/** Where the served inputs came from: etcd, the state file (restarted without etcd), or nothing yet. */
export type InputSource = 'etcd' | 'lastState' | 'none';
/** The four inputs, each delivered by its own etcd watch. */
export type StateInput = 'desired' | 'decided' | 'nodes' | 'history';

export interface ServedInputs {
  readonly fleet: Fleet | undefined;
  /** etcd revision of the desired state (0: none yet). */
  readonly revision: number;
  readonly generation: string;
  readonly decided: ReadonlyMap<string, MemberStatus>;
  /** The decided slow-start steps (from the same records as `decided`). In the state file too. */
  readonly ramps: MemberRamps;
  /** The table history (second chance, 0011): previous owners derive from it. In the state file too. */
  readonly history: TableHistory;
  /** The operator's drain flag (`l4fleet node drain`), from etcd or the file. */
  readonly drainFlag: boolean;
  /**
   * Desired state, decided state, node list and table history are all known: a table may be built (never from
   * partial inputs: a node must not program a table without the previous owners the fleet has).
   */
  readonly complete: boolean;
  /** All four inputs (desired, decided, nodes, history) came from etcd since this start (only those are saved to the state file). */
  readonly allFromEtcd: boolean;
  readonly source: InputSource;
  setDesired(d: DesiredState): void;
  setDecided(decided: ReadonlyMap<string, MemberStatus>, ramps: MemberRamps): void;
  setHistory(history: TableHistory): void;
  /** The node list arrived; returns true when this node's drain flag changed. */
  setNodes(drainFlag: boolean): boolean;
  /**
   * Takes from the state file every input etcd has not delivered since this start (all four at a start without
   * etcd); returns the ones taken. An input etcd delivered stays: its watch, resumed, would not deliver it again
   * unless it changes, so the file's would stay in its place after etcd is back.
   */
  restore(s: LastState): readonly StateInput[];
  /** etcd delivered all four inputs: the file is no longer what the node serves. Returns true if it was. */
  leaveLastState(): boolean;
  /**
   * A string that changes whenever a saved state file would: revision, generation, drain flag, decisions, ramps
   * (percent and sinceMs) and each pool's history record.
   */
  key(): string;
}

export function createServedInputs(): ServedInputs {
  let fleet: Fleet | undefined;
  let revision = 0;
  let generation = '';
  let decided: ReadonlyMap<string, MemberStatus> = new Map();
  let ramps: MemberRamps = new Map();
  let history: TableHistory = new Map();
  let drainFlag = false;
  let haveHistory = false;
  let haveDecided = false;
  let haveNodes = false;
  let servingLastState = false;
  const fromEtcd = { desired: false, decided: false, nodes: false, history: false };
  return {
    get fleet() {
      return fleet;
    },
    get revision() {
      return revision;
    },
    get generation() {
      return generation;
    },
    get decided() {
      return decided;
    },
    get ramps() {
      return ramps;
    },
    get history() {
      return history;
    },
    get drainFlag() {
      return drainFlag;
    },
    get complete() {
      return fleet !== undefined && haveDecided && haveNodes && haveHistory;
    },
    get allFromEtcd() {
      return fromEtcd.desired && fromEtcd.decided && fromEtcd.nodes && fromEtcd.history;
    },
    get source() {
      return servingLastState ? 'lastState' : fleet ? 'etcd' : 'none';
    },
    setDesired(d) {
      fleet = d.fleet;
      revision = d.revision;
      generation = d.generation;
      fromEtcd.desired = true;
    },
    setDecided(d, r) {
      decided = d;
      ramps = r;
      haveDecided = true;
      fromEtcd.decided = true;
    },
    setHistory(h) {
      history = h;
      haveHistory = true;
      fromEtcd.history = true;
    },
    setNodes(flag) {
      haveNodes = true;
      fromEtcd.nodes = true;
      if (flag === drainFlag) return false;
      drainFlag = flag;
      return true;
    },
    restore(s) {
      const taken: StateInput[] = [];
      if (!fromEtcd.desired) {
        fleet = s.fleet;
        revision = s.revision;
        generation = s.generation;
        taken.push('desired');
      }
      if (!fromEtcd.decided) {
        decided = s.decided;
        ramps = s.ramps ?? new Map();
        haveDecided = true;
        taken.push('decided');
      }
      if (!fromEtcd.nodes) {
        drainFlag = s.drained;
        haveNodes = true;
        taken.push('nodes');
      }
      if (!fromEtcd.history) {
        history = s.history ?? new Map();
        haveHistory = true;
        taken.push('history');
      }
      servingLastState = taken.length > 0;
      return taken;
    },
    leaveLastState() {
      const was = servingLastState;
      servingLastState = false;
      return was;
    },
    key() {
      // A digest, not the text: the history records of a large fleet are megabytes.
      const h = createHash('sha256').update(`${revision}|${generation}|${drainFlag}`);
      for (const m of [...decided.keys()].sort()) h.update(`|${m}=${decided.get(m)}`);
      for (const m of [...ramps.keys()].sort()) {
        const r = ramps.get(m);
        h.update(`|ramp ${m}=${r?.percent}@${r?.sinceMs}`);
      }
      // Each pool's record as etcd and the file hold it: a slow-start step replaces the current table with one of
      // the same length and other weights, which the file must have for a restored node's previous owners.
      for (const p of [...history.keys()].sort())
        h.update(`|history ${p}=${encodePoolHistory(history.get(p) as PoolHistory)}`);
      return h.digest('hex');
    },
  };
}
