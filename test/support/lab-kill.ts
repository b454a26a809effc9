/**
 * Killing a node with flows running, and the bounds of what the product controls there. The router drops the dead
 * node when BFD declares it down (its detection time, interval x multiplier) or, without BFD, when the BGP hold
 * timer runs out; a TCP flow that ECMP sent through it then resumes at its first retransmission after that drop.
 * Its pause is not a fixed figure: the retransmissions come at 1, 3, 7, 15 x RTO after the first lost segment (RTO
 * 210-235 ms in the lab), so a drop 630 ms after the kill instead of 600 ms moved the pause from 3 x RTO (0.7 s) to
 * 7 x RTO (1.5 s), and a 1 s bound on the pause failed by chance on a loaded CI VM. So the drop is bounded by its
 * mechanism, and the pause relative to the measured drop.
 */
import type { FlowRun, FlowSummary, Lab } from '@l4fleet/lab';
import { brokenIds, step } from './lab-scenario.js';

/**
 * What the router may take after BFD declares the node down, until its kernel route no longer has it: bfdd tells
 * bgpd, bgpd withdraws, zebra installs the route; and what the measurement adds: the kill's own commands before the
 * link goes down (the lab lock, `ip link set`), the 100 ms poll of the route. Measured: drops 412-616 ms after the
 * kill began with BFD 100 ms x 3 (netns, load 4-9), so 112-316 ms over the detection time; 700 ms leaves twice that
 * for a starved 2-CPU VM, and the bound (1 s) is still a third of the hold time: a node dropped by the hold timer
 * instead of BFD fails it.
 */
export const BFD_REACTION_MS = 700;
/**
 * The same without BFD, over the hold time: the hold timer runs from the node's last keepalive (every 1 s), so it
 * fires 2-3 s after the kill; the router's reaction and the measurement's share as above, with more room (the
 * figure the lab tests always allowed the hold timer: 3 s + 1 s).
 */
export const HOLD_REACTION_MS = 1_000;
/**
 * What a TCP flow's pause may add to twice the drop time. With the first lost segment at s >= 0 after the kill
 * began and the route gone at d, the retransmission before the drop came at s + (2^k - 1) x RTO < d, so the next one
 * at s + (2^(k+1) - 1) x RTO < 2d - s + RTO <= 2d + RTO. The pause also counts from the flow's last answer before
 * the loss (one send interval earlier, 50 ms), the answer's way back, and the flow worker's reading of it. RTO is
 * 200 ms + the measured RTT variance (210-235 ms in the lab): 500 ms covers RTO, the send interval and ~200 ms of
 * scheduling.
 */
export const RESUME_SLACK_MS = 500;

/** The longest the router may take to drop a killed node of `lab`, ms after the kill began: BFD's, else the hold timer's. */
export function routerDropBoundMs(lab: Lab): number {
  const bfd = lab.topology.bgp.bfd;
  return bfd
    ? bfd.intervalMs * bfd.multiplier + BFD_REACTION_MS
    : lab.topology.bgp.holdTimeS * 1_000 + HOLD_REACTION_MS;
}

/** The longest a flow through a node the router dropped `dropMs` after its kill may pause (its next retransmission). */
export function resumeBoundMs(dropMs: number): number {
  return 2 * dropMs + RESUME_SLACK_MS;
}

/** How old the flow worker's report may be when read: it writes one every 500 ms; the rest for a slow write. */
const STALE_REPORT_MS = 1_000;

export interface KillMeasured {
  /** The step's disruption summary and the flows broken during it. */
  readonly s: FlowSummary;
  readonly broken: number[];
  /** The router's next hops for the TCP VIP once the node was dropped. */
  readonly hops: string[];
  /** When the router's route no longer had the node, ms after the kill began. */
  readonly dropMs: number;
  /** How long `lab.kill` took (its link was down and its processes gone by then), ms. */
  readonly killMs: number;
  readonly dropBoundMs: number;
  /** resumeBoundMs(dropMs). */
  readonly pauseBoundMs: number;
}

/**
 * Kills `node` with `flows` running and measures: the router's route is polled from the start, not only once the kill
 * returned (its own commands took 0.2 s and more under load, and a drop before that was timed at the kill's end).
 * The summary is taken no sooner than `settleMs` after the drop and than the pause bound (+ STALE_REPORT_MS) after
 * the kill returned, so a flow that never resumed shows a pause over the bound (its last answer came before the kill
 * ended).
 */
export async function killAndMeasure(
  lab: Lab,
  flows: FlowRun,
  node: string,
  nextHopsLeft: number,
  opts: { name: string; timeoutMs: number; settleMs: number },
): Promise<KillMeasured> {
  const before = brokenIds(flows);
  await flows.mark();
  const started = Date.now();
  const dropped = lab.waitNextHops(nextHopsLeft, opts.timeoutMs).then((hops) => ({ hops, at: Date.now() }));
  // Handled below; a kill that throws must not leave it unhandled.
  dropped.catch(() => undefined);
  await lab.kill(node);
  const killedAt = Date.now();
  const { hops, at } = await dropped;
  const dropMs = at - started;
  const pauseBoundMs = resumeBoundMs(dropMs);
  const settleMs = Math.max(opts.settleMs, killedAt + pauseBoundMs + STALE_REPORT_MS - Date.now());
  const { s, broken } = await step(flows, opts.name, before, settleMs);
  const dropBoundMs = routerDropBoundMs(lab);
  console.log(
    `${opts.name}: the router dropped ${node} ${dropMs} ms after the kill began (bound ${dropBoundMs} ms; the kill ` +
      `took ${killedAt - started} ms); longest pause ${s.longestPauseMs} ms (bound 2 x ${dropMs} + ` +
      `${RESUME_SLACK_MS} = ${pauseBoundMs} ms)`,
  );
  return { s, broken, hops, dropMs, killMs: killedAt - started, dropBoundMs, pauseBoundMs };
}
