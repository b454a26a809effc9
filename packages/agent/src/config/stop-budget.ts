/**
 * Whether a SIGTERM drain fits the unit's stop timeout (`l4fleet agent --check` warns when it may not): past
 * TimeoutStopSec systemd SIGKILLs the agent mid-drain (routes withdrawn without the RFC 8326 graceful phase, or flows
 * cut). Counted at its worst: each wait shutdown() and the lifecycle's drain may take. Not counted: the withdraw
 * pass's own data-plane and gobgpd calls and closing (STOP_MARGIN_S; milliseconds, usually). Compared with the
 * timeout in force (HostFacts.unitStopTimeout), not the shipped one: a drop-in written on an earlier --check's advice
 * (raise it past 12 s, to 18 s say) outlives install.sh, which replaces the unit only, and shortens the shipped 60 s.
 */
import type { AgentConfigProblem } from '../errors.js';
import { DRAIN_ANNOUNCE_WAIT_MS, DRAIN_PASS_WAIT_MAX_MS } from '../lifecycle/lifecycle.js';
import { RELOAD_SETTLE_MS } from '../lifecycle/shutdown.js';
import type { UnitStopTimeout } from './host.js';
import type { AgentConfig } from './types.js';

/** The agent's unit, as deploy/systemd names it and install.sh installs it. */
export const AGENT_UNIT = 'l4fleet-agent.service';

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

/** systemd's time span units (format_timespan(): what `systemctl show` prints), largest first, in ms. */
const TIMESPAN_UNITS_MS: readonly (readonly [string, number])[] = [
  ['y', 31_557_600_000],
  ['month', 2_629_800_000],
  ['w', 604_800_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['min', 60_000],
  ['s', 1_000],
  ['ms', 1],
  ['us', 0.001],
];
const TIMESPAN_PART = /^(\d+(?:\.\d+)?)([a-zµμ]+)$/;
/** Some systemd builds print microseconds with a mu (MICRO SIGN or GREEK SMALL LETTER MU). */
const unitName = (unit: string): string => (unit === 'µs' || unit === 'μs' ? 'us' : unit);

/**
 * A time span as `systemctl show` prints one (`18s`, `1min 30s`, `1.500000s`, `infinity`), in ms; undefined when
 * `shown` is none (each unit at most once, largest first, as systemd writes them). `0` is no timeout: TimeoutStopSec=0
 * turns it off.
 */
export function parseTimespanMs(shown: string): number | undefined {
  if (shown === 'infinity' || shown === '0') return Number.POSITIVE_INFINITY;
  if (shown === '') return undefined;
  let ms = 0;
  let next = 0; // the first unit the next part may use: each smaller than the one before
  for (const part of shown.split(' ')) {
    const m = TIMESPAN_PART.exec(part);
    const at = m ? TIMESPAN_UNITS_MS.findIndex(([unit]) => unit === unitName(m[2] ?? '')) : -1;
    if (!m || at < next) return undefined;
    ms += Number(m[1]) * (TIMESPAN_UNITS_MS[at]?.[1] ?? Number.NaN);
    next = at + 1;
  }
  return Number.isFinite(ms) ? ms : undefined;
}

/** The stop timeout a drain is compared with, ms, and where it came from (said in the warning). */
interface StopTimeout {
  readonly ms: number;
  readonly source: string;
  /** Whether it is the unit in force's and below the shipped unit's (a drop-in or an edited unit shortens it). */
  readonly lowered: boolean;
}

/** The timeout in force when systemd told it, else the shipped unit's (with why). */
function stopTimeout(inForce: UnitStopTimeout): StopTimeout {
  const shippedMs = UNIT_TIMEOUT_STOP_S * 1000;
  const shipped = (why: string): StopTimeout => ({
    ms: shippedMs,
    source: `the shipped unit's; the unit in force could not be read: ${why}`,
    lowered: false,
  });
  if ('unread' in inForce) return shipped(inForce.unread);
  const ms = parseTimespanMs(inForce.shown);
  if (ms === undefined) return shipped(`systemctl show printed TimeoutStopUSec="${inForce.shown}", no time span`);
  const read = `the unit in force: systemctl show ${AGENT_UNIT}, TimeoutStopUSec=${inForce.shown}`;
  if (ms >= shippedMs) return { ms, source: read, lowered: false };
  return {
    ms,
    source: `${read}; the shipped unit has ${UNIT_TIMEOUT_STOP_S} s, so a drop-in or an edited unit lowers it: systemctl cat ${AGENT_UNIT} shows which`,
    lowered: true,
  };
}

/**
 * The warning when that worst case passes what the unit's stop timeout (`inForce`, else the shipped unit's) leaves a
 * drain; undefined when it fits.
 */
export function sigtermDrainWarning(config: AgentConfig, inForce: UnitStopTimeout): AgentConfigProblem | undefined {
  const worst = sigtermDrainWorstMs(config);
  const timeout = stopTimeout(inForce);
  const allowedMs = timeout.ms - STOP_MARGIN_S * 1000;
  if (worst <= allowedMs) return undefined;
  const waits = [
    `up to ${RELOAD_SETTLE_MS} ms for a reload applying to settle (RELOAD_SETTLE_MS)`,
    `up to ${DRAIN_PASS_WAIT_MAX_MS} ms for its first pass to begin (DRAIN_PASS_WAIT_MAX_MS: a data-plane apply or verify holding the reconciler's queue)`,
    `up to ${DRAIN_ANNOUNCE_WAIT_MS} ms more for gobgpd to take GRACEFUL_SHUTDOWN (DRAIN_ANNOUNCE_WAIT_MS: gobgpd away or refusing it)`,
    `bgp.gracefulShutdownMs (${config.bgp.gracefulShutdownMs}) twice (taken late, the window starts again, once)`,
    `then drain.forwardAfterWithdrawMs (${config.drain.forwardAfterWithdrawMs})`,
  ];
  const needS = Math.ceil(worst / 1000) + STOP_MARGIN_S;
  const advice =
    timeout.lowered && needS <= UNIT_TIMEOUT_STOP_S
      ? `remove that setting (the shipped ${UNIT_TIMEOUT_STOP_S} s fits) or raise it to at least ${needS} s`
      : `raise TimeoutStopSec (a drop-in) to at least ${needS} s`;
  return {
    path: 'drain.forwardAfterWithdrawMs',
    message: `a SIGTERM drain may take ${worst} ms: ${waits.join(', ')}; more than the ${allowedMs} ms a TimeoutStopSec of ${timeout.ms / 1000} s leaves a SIGTERM drain (${timeout.source}): systemd would kill the agent mid-drain; ${advice}`,
  };
}
