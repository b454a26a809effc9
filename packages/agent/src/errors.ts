import type { ConfigProblem } from '@l4fleet/config';

/** Why the agent refused its config or failed. Stable strings: callers and tests switch on them. */
export type AgentErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'FLAG_INVALID'
  | 'PROBE_FAILED'
  | 'STATE_INVALID'
  | 'STATE_STALE'
  | 'STATE_SAVE_FAILED'
  | 'METRICS_LISTEN_FAILED'
  | 'RELOAD_REFUSED'
  | 'STARTUP_FAILED'
  | 'TIMEOUT'
  | 'CLOSED';

/**
 * One problem in the agent's config: where (`bgp.peers[0].asn`) and what (`0 is not an ASN (1-4294967295)`). The
 * fleet file's problem shape, collected and formatted (`formatProblem`) by @l4fleet/config.
 */
export type AgentConfigProblem = ConfigProblem;

/** The one error type of @l4fleet/agent; `problems` lists every config problem at once (empty for other codes). */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code: AgentErrorCode;
  readonly problems: readonly AgentConfigProblem[];

  constructor(
    code: AgentErrorCode,
    message: string,
    options?: { cause?: unknown; problems?: readonly AgentConfigProblem[] },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.problems = options?.problems ?? [];
  }
}
