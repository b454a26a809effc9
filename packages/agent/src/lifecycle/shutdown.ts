/**
 * The agent's shutdown() sequence (RFC 8326 graceful shutdown): let a reload applying settle, drain, withdraw,
 * keep forwarding while the router moves the flows, then close.
 */
import type { Logger } from 'pino';
import { type Clock, sleep, withTimeout } from '../clock.js';
import type { Reloader } from '../config/reloader.js';
import type { Reconciler } from '../serve/reconciler.js';
import type { Lifecycle } from './lifecycle.js';

/** How long shutdown() waits for a reload applying when it began, ms: one gobgpd call's deadline (the default). */
export const RELOAD_SETTLE_MS = 5_000;

export interface ShutdownDeps {
  readonly lifecycle: Lifecycle;
  readonly reconciler: Reconciler;
  readonly reloader: Pick<Reloader, 'applying' | 'stopApplying'>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long the node forwards after the withdraw, ms (config.drain.forwardAfterWithdrawMs). */
  readonly forwardAfterWithdrawMs: number;
  /** Closes the agent, last. */
  readonly close: () => Promise<void>;
}

export async function shutdownSequence(deps: ShutdownDeps): Promise<void> {
  const { lifecycle, reconciler, reloader, clock, logger: log } = deps;
  log.info({ event: 'shutdownStarted', state: lifecycle.state });
  // A reload past its last exiting() check (handing gobgpd and bfdd its peers) when SIGTERM came: its changes
  // would land mid RFC 8326 graceful shutdown, the reload reported applied. Wait for it (bounded: a gobgpd call's
  // deadline); past that it stops before its next step, refused saying what it applied. The later reloads are
  // refused from shuttingDown on.
  const applying = reloader.applying();
  if (applying) {
    try {
      await withTimeout(clock, applying, RELOAD_SETTLE_MS, 'the reload applying');
    } catch {
      log.warn({ event: 'reloadStillApplying', ms: RELOAD_SETTLE_MS });
      reloader.stopApplying();
    }
  }
  lifecycle.beginShutdown();
  await lifecycle.drained();
  await reconciler.request();
  const { routesPending, unconfirmedRoutes } = reconciler.served;
  // gobgpd away: the withdraw is pending, and gobgpd may announce what it last confirmed (none confirmed since the
  // start: whatever it held before).
  if (routesPending) log.warn({ event: 'routesMayRemain', prefixes: unconfirmedRoutes });
  // Withdrawn: stopping (node.state, /readyz 503) while the router moves the flows the node still forwards.
  lifecycle.stop('sigterm');
  log.info({ event: 'forwardingAfterWithdraw', ms: deps.forwardAfterWithdrawMs });
  await sleep(clock, deps.forwardAfterWithdrawMs);
  await deps.close();
}
