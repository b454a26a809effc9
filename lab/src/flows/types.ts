/** Shapes shared by the flow worker (in the client namespace) and the host side that reads its reports. */

export type FlowProtocol = 'tcp' | 'udp';

export interface FlowTarget {
  readonly protocol: FlowProtocol;
  readonly address: string;
  readonly port: number;
}

export type FlowState = 'connecting' | 'open' | 'broken' | 'closed';

export interface FlowSample {
  readonly id: number;
  readonly protocol: FlowProtocol;
  /** Client source port: with the client address, what identifies the flow on nodes and in `explain flow`. */
  readonly localPort: number;
  readonly localAddress: string;
  readonly target: string;
  /** From the identity server: `backend=<name>`. */
  readonly backend: string | undefined;
  readonly state: FlowState;
  /** Why it broke: `reset`, `closed`, `timeout`, `backend changed`. */
  readonly reason?: string;
  readonly replies: number;
  /** Longest gap between two answers since the last mark (ongoing gap included), ms. */
  readonly maxPauseMs: number;
  /** Epoch ms when the flow was opened. */
  readonly openedAt: number;
  /**
   * Opened after the worker's last mark: the step's new flows. Absent in reports of older workers, where openedAt >=
   * markAt stands in (wrong across a wall-clock step).
   */
  readonly sinceMark?: boolean;
  /** Backends seen over the flow's life (more than one: it lost affinity). */
  readonly backends: readonly string[];
}

export interface WorkerReport {
  readonly at: number;
  readonly markAt: number;
  readonly flows: readonly FlowSample[];
}

export type WorkerCommand =
  | { readonly cmd: 'open'; readonly tcp?: number; readonly udp?: number }
  | { readonly cmd: 'mark' }
  | { readonly cmd: 'stop' };
