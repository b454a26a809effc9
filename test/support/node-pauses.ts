/**
 * The pauses of the flows one node carried before a step against the pauses of every other flow, over the same
 * window (since the flow run's last mark). A pause both groups see is the lab's own (the flow worker or the router
 * starved of CPU: 279 ms in a full CI run, 0.9-1.0 s at load 10-16 on the 2-core VM), not the step's: tight
 * absolute bounds failed on that load, and would pass a step that stalls every flow a little. It passes a step that
 * stalls every flow alike, too: the drains add DRAIN_MAX_PAUSE_MS. One implementation for the drain steps (lab-e2e,
 * lab-bpf-routed) and the agent-kill loop (lab-faults).
 */
import { type FlowRun, type FlowSample, flowKey } from '@l4fleet/lab';

/** What a drain may add to the pause of the flows it moves, over the pause of the flows it does not move. */
export const DRAIN_EXTRA_PAUSE_MS = 250;

/**
 * The longest pause of any flow in a drain step, ms (exclusive). The relative check above is the drain's own; this cap
 * catches a drain that stalls every flow, which that check passes (both groups pause alike) and which breaks none
 * until DEFAULT_BROKEN_AFTER_MS (15 s). The loaded lab's own stalls measured up to ~1.4 s (1,386 ms, lab-bpf-routed
 * on the 2-core VM); a drain: 237 ms [208, 382] (README); the add-node steps cap the same way.
 */
export const DRAIN_MAX_PAUSE_MS = 3_000;

export interface NodePauses {
  /** Open flows `node` carried before the step. */
  readonly nodeFlows: number;
  /** The longest pause of those since the last mark, ms (a gap still open counts: the worker's report). */
  readonly nodePauseMs: number;
  /** The longest pause of the other open flows carried before the step, ms. */
  readonly othersPauseMs: number;
}

/**
 * Splits the open flows known in `carriedBefore` (FlowRun.carriers(), read before the step's mark) by whether
 * `node` carried them; flows opened since, or not seen by the router, are in neither group.
 */
export function nodePauses(flows: FlowRun, carriedBefore: ReadonlyMap<string, string>, node: string): NodePauses {
  const open = flows.report.flows.filter(
    (f) => f.state === 'open' && carriedBefore.has(flowKey(f.protocol, f.localPort)),
  );
  const onNode = (f: FlowSample) => carriedBefore.get(flowKey(f.protocol, f.localPort)) === node;
  const longest = (fs: readonly FlowSample[]) => Math.max(0, ...fs.map((f) => f.maxPauseMs));
  const mine = open.filter(onNode);
  return {
    nodeFlows: mine.length,
    nodePauseMs: longest(mine),
    othersPauseMs: longest(open.filter((f) => !onNode(f))),
  };
}
