/**
 * Whether a SIGTERM drain fits the shipped unit's stop timeout (`l4fleet agent --check` warns when it may not):
 * past TimeoutStopSec systemd SIGKILLs the agent mid-drain (routes withdrawn without the RFC 8326 graceful phase, or
 * flows cut). Counted at its worst: each wait shutdown() and the lifecycle's drain may take. Not counted: the withdraw
 * pass's own data-plane and gobgpd calls and closing (STOP_MARGIN_S; milliseconds, usually).
 */
import type { AgentConfigProblem } from '../errors.js';
import { DRAIN_ANNOUNCE_WAIT_MS, DRAIN_PASS_WAIT_MAX_MS } from '../lifecycle/lifecycle.js';
import { RELOAD_SETTLE_MS } from '../lifecycle/shutdown.js';
import type { AgentConfig } from './types.js';

/** deploy/systemd/l4fleet-agent.service's TimeoutStopSec, s (preflight.test.ts reads the unit to keep them equal). */
export const UNIT_TIMEOUT_STOP_S = 60;
/** What the unit's stop timeout must leave past the drain's waits (the withdraw pass, closing), s. */
const STOP_MARGIN_S = 3;

/**
 * The longest a SIGTERM drain may wait, ms. First up to RELOAD_SETTLE_MS for a reload applying when SIGTERM came
 * (shutdown() lets it settle before draining). Before the graceful window: up to DRAIN_PASS_WAIT_MAX_MS for the first
 * draining pass (a verify or apply holding the reconciler's queue when SIGTERM came; the agent does not know the
 * unit's budget, so it cannot cut this short), and from a pass that began just before that cap, DRAIN_ANNOUNCE_WAIT_MS
 * more for gobgpd to take GRACEFUL_SHUTDOWN. The window, bgp.gracefulShutdownMs, may run twice: a fallback window
 * starts again, once, when gobgpd takes the set late (just before it ran out, at worst). Then
 * drain.forwardAfterWithdrawMs of forwarding.
 */
export function sigtermDrainWorstMs(config: AgentConfig): number {
  const graceful = config.bgp.gracefulShutdownMs;
  return (
    RELOAD_SETTLE_MS +
    DRAIN_PASS_WAIT_MAX_MS +
    DRAIN_ANNOUNCE_WAIT_MS +
    2 * graceful +
    config.drain.forwardAfterWithdrawMs
  );
}

/** The warning when that worst case passes what the shipped unit leaves a drain; undefined when it fits. */
export function sigtermDrainWarning(config: AgentConfig): AgentConfigProblem | undefined {
  const worst = sigtermDrainWorstMs(config);
  const allowedMs = (UNIT_TIMEOUT_STOP_S - STOP_MARGIN_S) * 1000;
  if (worst <= allowedMs) return undefined;
  const waits = [
    `up to ${RELOAD_SETTLE_MS} ms for a reload applying to settle (RELOAD_SETTLE_MS)`,
    `up to ${DRAIN_PASS_WAIT_MAX_MS} ms for its first pass to begin (DRAIN_PASS_WAIT_MAX_MS: a data-plane apply or verify holding the reconciler's queue)`,
    `up to ${DRAIN_ANNOUNCE_WAIT_MS} ms more for gobgpd to take GRACEFUL_SHUTDOWN (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it)`,
    `bgp.gracefulShutdownMs (${config.bgp.gracefulShutdownMs}) twice (taken late, the window starts again, once)`,
    `then drain.forwardAfterWithdrawMs (${config.drain.forwardAfterWithdrawMs})`,
  ];
  return {
    path: 'drain.forwardAfterWithdrawMs',
    message: `a SIGTERM drain may take ${worst} ms: ${waits.join(', ')}; more than the ${allowedMs} ms the shipped unit leaves a SIGTERM drain (TimeoutStopSec=${UNIT_TIMEOUT_STOP_S}): systemd would kill the agent mid-drain; raise TimeoutStopSec (a drop-in) to at least ${Math.ceil(worst / 1000) + STOP_MARGIN_S} s`,
  };
}
