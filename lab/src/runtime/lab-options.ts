/** The options of the Lab's operations (lab.ts), with their defaults. */
import type { Logger } from 'pino';
import type { TopologyOptions } from '../topology/model.js';
import type { AppliedFleet } from './fleet-apply.js';
import type { LabMode, Runtime } from './state.js';

export interface UpOptions extends TopologyOptions {
  /** `auto` (default): the agent if the built CLI has it, otherwise static announcements. */
  mode?: LabMode | 'auto';
  /** `netns` (default) or `docker` (containers from the locally built images, agent mode only). */
  runtime?: Runtime;
  /** Time for BGP sessions, ECMP routes and VIP answers; default 60 s. */
  readyTimeoutMs?: number;
  /** How long to wait while another lab command holds the lab's lock (lock.ts); default 180 s. */
  lockWaitMs?: number;
  /**
   * The options the user gave, by flag name (up-conflicts.ts); only those are compared with a lab already up.
   * Default: every option set here.
   */
  given?: ReadonlySet<string>;
  log?: Logger;
  /** Told one line for the user when the data path fell back from the default (up-data-path.ts). */
  onNotice?: (line: string) => void;
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000;

export interface AddBackendOptions {
  /**
   * Agent mode: also apply the lab fleet with the new backend in every pool (fleet-apply.ts), under the same lock
   * from the state as it is then, so add-backends apply in their order and no `down` comes in between. Default
   * false (the fleet is left as it is); static mode has no fleet.
   */
  readonly applyFleet?: boolean;
  /** Told the fleet file and apply's output once the fleet is applied. */
  readonly onFleetApplied?: (applied: AppliedFleet) => void;
}

export interface OpenOptions {
  /** How long a command that changes the lab waits while another holds its lock (lock.ts); default 180 s. */
  readonly lockWaitMs?: number | undefined;
}
