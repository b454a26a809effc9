/** The reconciler's inputs, its served state and its options (reconciler.ts does the passes). */
import type { Advertisement, Speaker } from '@l4fleet/bgp';
import type { DecidedStatus, Fleet, MemberRamps, TableHistory } from '@l4fleet/config';
import type { DataPlane } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { EventPublisher } from '../events/publisher.js';
import type { AgentMetrics } from '../observe/metrics.js';
import type { PlannedTable, RouteContext } from './plan.js';

/** What a pass needs to know; read fresh at the start of each pass. */
export interface ServeInputs {
  readonly fleet: Fleet | undefined;
  readonly revision: number;
  readonly decided: DecidedStatus;
  /** The decided slow-start steps (from the same records as `decided`). */
  readonly ramps: MemberRamps;
  /** The table history (second chance, 0011): the tables' previous owners. */
  readonly history?: TableHistory;
  /** serving: announce usable VIPs; draining: announce with GRACEFUL_SHUTDOWN; withdrawn: announce nothing. */
  readonly routeMode: 'serving' | 'draining' | 'withdrawn';
  /** false from shutdown() on: serving announces only prefixes announced already (default true). */
  readonly announceNew?: boolean;
}

export interface ServedState {
  readonly tables: readonly PlannedTable[];
  /** vipKey -> checksum of the table the data plane holds. */
  readonly checksums: ReadonlyMap<string, string>;
  readonly routes: ReadonlyMap<string, Advertisement>;
  readonly announcedVips: readonly string[];
  readonly appliedRevision: number;
  /** At least one pass programmed the data plane. */
  readonly applied: boolean;
  /**
   * gobgpd did not confirm `routes` (away: the speaker re-applies them when it is back, and passes send them again
   * until it confirms): the prefixes it may still announce, those it last confirmed; empty when confirmed.
   */
  readonly unconfirmedRoutes: readonly string[];
  /** gobgpd has not confirmed the last route set (it may never have confirmed one since the start). */
  readonly routesPending: boolean;
  /** The data plane refused the last apply, of this revision, for this reason; undefined once one went through. */
  readonly refused?: { readonly revision: number; readonly reason: string };
}

export interface Reconciler {
  /** Asks for a pass; resolves when a pass that started after this call finished (at once after close(): none will). */
  request(): Promise<void>;
  readonly served: ServedState;
  close(): void;
}

export interface ReconcilerOptions {
  readonly inputs: () => ServeInputs;
  readonly dataPlane: DataPlane;
  readonly speaker: Speaker;
  readonly routeContext: RouteContext;
  readonly events: EventPublisher;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Called after every pass that changed something (status record, readiness). */
  readonly onServedChange?: (s: ServedState) => void;
  /** Called after every data-plane apply: whether the data plane took the tables (BFD follows it, 0010). */
  readonly onDataPlaneApply?: (ok: boolean) => void;
  /** A draining pass handed the GRACEFUL_SHUTDOWN set to the speaker and gobgpd took it: the graceful window may start. */
  readonly onDrainAnnounced?: () => void;
  /** A draining pass began (it sends the GRACEFUL_SHUTDOWN set before anything else): the lifecycle's fallback starts. */
  readonly onDrainPassBegan?: () => void;
  /**
   * The data plane is verified (read back, drift repaired) this many ms after the last verify ended (the first: after
   * the first apply that went through), or VERIFY_SPACING_FACTOR times the last verify's duration when that is longer,
   * while no apply is running, queued or failing; 0 never. Default DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS (60 s).
   */
  readonly verifyIntervalMs?: number;
}
