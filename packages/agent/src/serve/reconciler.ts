/**
 * Turns (desired state, decided status, node state) into forwarding and routes, in the order that never
 * blackholes: withdraw routes that must go, program the data plane, then announce (ARCHITECTURE step 5).
 * Runs one pass at a time; requests while a pass runs coalesce into one more pass. Between passes it reads the data
 * plane back and repairs what changed behind it (DataPlane.verify), in the same queue: verifyIntervalMs after the
 * last verify ended, or 10 times its duration when longer (verify.ts), since a pass requested meanwhile waits for it.
 */
import { type Advertisement, GRACEFUL_SHUTDOWN_COMMUNITY } from '@l4fleet/bgp';
import { systemClock } from '../clock.js';
import {
  announcedVips,
  hostPrefix,
  type PlannedTable,
  plannedRoutes,
  planTables,
  sameRoutes,
  tablesSignature,
  toDataPlaneTable,
  withCommunity,
  withdrawReason,
} from './plan.js';
import type { Reconciler, ReconcilerOptions, ServedState } from './reconciler-types.js';
import { recordApplied } from './table-metrics.js';
import {
  countApplyRepairs,
  countRepaired,
  createVerifyTimer,
  DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS,
  repairedBy,
  verifyDataPlane,
} from './verify.js';

/** RFC 8326 GRACEFUL_SHUTDOWN well-known community: bgp's constant, under the name the agent's API has used. */
export const GRACEFUL_SHUTDOWN = GRACEFUL_SHUTDOWN_COMMUNITY;
/** First retry of a failed pass, ms; each further failure in a row doubles it, up to RETRY_MAX_MS. */
export const RETRY_MS = 1_000;
/**
 * A state the data plane refuses for good (too large, an address it cannot serve) fails every pass again, and a
 * large one's plan takes seconds of CPU (on the event loop that renews the node's lease): retried every 10 s at most,
 * not every second. A new input (a fleet write, a health change) runs a pass at once whatever the delay.
 */
export const RETRY_MAX_MS = 10_000;

export type { Reconciler, ReconcilerOptions, ServedState, ServeInputs } from './reconciler-types.js';

export function createReconciler(opts: ReconcilerOptions): Reconciler {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger.child({ component: 'serve' });
  const { events, metrics } = opts;
  let tables: PlannedTable[] = [];
  /**
   * The tables of the last pass that set its routes: a VIP removed or disabled still gets its `vip.withdrawn` event,
   * also when the pass that removed it failed and a retry withdraws its route (the retry's `tables` lack it too).
   */
  let previousTables: PlannedTable[] = [];
  const tableCache = new Map<string, PlannedTable & { inputs: string }>();
  let checksums = new Map<string, string>();
  let dpSignature: string | undefined;
  /** undefined until the first pass: after a restart gobgpd may hold routes we do not know. */
  let routes: Map<string, Advertisement> | undefined;
  let drainRoutes: Map<string, Advertisement> | undefined;
  /** The set gobgpd last confirmed; undefined before any (after a restart it may hold routes we do not know). */
  let confirmed: Map<string, Advertisement> | undefined;
  /** The last route set was deferred (gobgpd away): passes keep sending it until gobgpd confirms. */
  let routesPending = false;
  let pendingTimer: unknown;
  /** setAdvertisements calls so far: a pass sends a pending set again only when it sent nothing else. */
  let sends = 0;
  let appliedRevision = 0;
  /** The data plane refused the last apply (kept until one goes through): the revision and why, for /readyz. */
  let refused: { revision: number; reason: string } | undefined;
  /** The VIPs l4fleet_vip_announced says 1 for (and vip.announced was published): per VIP, not per prefix. */
  const markedVips = new Set<string>();
  let applied = false;
  let running: Promise<void> | undefined;
  let again = false;
  let waiters: (() => void)[] = [];
  let retryTimer: unknown;
  /** Passes failed in a row (their data plane apply or routes); 0 after one that went through. */
  let failures = 0;
  const retryLater = (): void => {
    failures += 1;
    clock.clearTimeout(retryTimer);
    retryTimer = clock.setTimeout(() => void request(), Math.min(RETRY_MS * 2 ** (failures - 1), RETRY_MAX_MS));
  };
  let closed = false;
  /** A verify is due: the loop verifies once no pass is queued (one due during a pass waits for it). */
  let verifyDue = false;
  const verifyTimer = createVerifyTimer(clock, opts.verifyIntervalMs ?? DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS, () => {
    verifyDue = true;
    running ??= loop();
  });

  const served = (): ServedState => ({
    tables,
    checksums,
    routes: routes ?? new Map(),
    announcedVips: announcedVips(tables, routes ?? new Map()),
    appliedRevision,
    applied,
    unconfirmedRoutes: routesPending ? [...(confirmed ?? new Map()).keys()].sort() : [],
    routesPending,
    ...(refused ? { refused } : {}),
  });

  /** l4fleet_vips_announced: the VIPs l4fleet_vip_announced says 1 for (two on one address are two). */
  const countAnnounced = (): void => {
    metrics.vipsAnnounced.set(markedVips.size);
  };

  const vipsOf = (prefix: string, from: readonly PlannedTable[]) => [
    ...new Set(from.filter((t) => hostPrefix(t.table.vip.address) === prefix).map((t) => t.key)),
  ];

  /**
   * Every VIP of an announced prefix not said yet gets l4fleet_vip_announced=1 and vip.announced: a new prefix's, and
   * one added on an address announced already (198.51.100.10:443 beside :80), whose routes do not change.
   */
  const markAnnounced = (announced: ReadonlyMap<string, Advertisement>): void => {
    for (const [prefix, adv] of announced) {
      for (const vip of vipsOf(prefix, tables)) {
        if (markedVips.has(vip)) continue;
        markedVips.add(vip);
        events.emit('vip.announced', { vip, prefix, nextHop: adv.nextHop });
        metrics.vipAnnounced.set({ vip }, 1);
      }
    }
    countAnnounced();
  };

  /** `why` for every prefix, or per prefix (a withdraw while serving: withdrawReason). */
  const setRoutes = async (
    next: Map<string, Advertisement>,
    why: string | ((prefix: string) => string),
  ): Promise<void> => {
    const reason = (prefix: string): string => (typeof why === 'string' ? why : why(prefix));
    const before = routes ?? new Map<string, Advertisement>();
    sends += 1;
    try {
      await opts.speaker.setAdvertisements([...next.values()]);
      confirmed = next;
      routesPending = false;
    } catch (err) {
      const retryable = (err as { retryable?: boolean }).retryable === true;
      // A retryable failure means gobgpd is away: the speaker keeps the set and re-applies it when gobgpd is back;
      // until it confirms, the routes are pending (passes send them again) and gobgpd may hold the ones it had.
      const whyText = typeof why === 'string' ? why : 'withdraw';
      // Said once per outage (the pending set is sent again each RETRY_MS while gobgpd is away).
      const level = retryable && routesPending ? 'debug' : 'warn';
      log[level]({ event: retryable ? 'routesDeferred' : 'routesFailed', why: whyText, err: (err as Error).message });
      if (!retryable) throw err;
      routesPending = true;
    }
    routes = next;
    markAnnounced(next);
    for (const prefix of next.keys()) {
      // An attribute change (drain community) is not a new announcement.
      if (!before.has(prefix)) log.info({ event: 'vipAnnounced', prefix, why: reason(prefix) });
    }
    for (const prefix of before.keys()) {
      if (next.has(prefix)) continue;
      const r = reason(prefix);
      // A VIP removed or disabled has no table now: the pass before had it.
      for (const vip of vipsOf(prefix, [...tables, ...previousTables])) {
        markedVips.delete(vip);
        events.emit('vip.withdrawn', { vip, prefix, reason: r });
        metrics.vipAnnounced.set({ vip }, 0);
      }
      log.info({ event: 'vipWithdrawn', prefix, reason: r });
    }
    countAnnounced();
  };

  /**
   * An apply or a verify failed: BFD told (AdminDown, 0010), the log, a retry on the backoff; an apply's error counted
   * (a verify's is in l4fleet_table_verifies_total: verifyDataPlane).
   */
  const dataPlaneFailed = (err: unknown, during: 'apply' | 'verify'): void => {
    if (during === 'apply') {
      metrics.tableAppliesTotal.inc({ result: 'error' });
      // What it repaired before it failed (verifyDataPlane counts a verify's): those listeners are open again.
      countRepaired(repairedBy(err), 'apply', metrics, log);
    }
    opts.onDataPlaneApply?.(false);
    // The data plane may now hold part of the failed tables (or of what a verify repaired), and the next pass must apply
    // (and report, so BFD lifts AdminDown) even when the fleet went back to the tables applied before: forget them.
    dpSignature = undefined;
    const code = (err as { code?: string }).code;
    log.error({ event: 'tablesApplyFailed', during, err: (err as Error).message, code });
    retryLater();
  };

  /**
   * Reads the data plane back and repairs drift. Only over tables the last apply put there: after a failed apply (or
   * none yet) the retry's apply writes everything anyway. A verify that fails is a failed apply: the node that cannot
   * repair its forwarding leaves ECMP (BFD) and retries, like one that cannot take its tables.
   */
  const verify = async (): Promise<void> => {
    if (!applied || dpSignature === undefined || failures > 0) {
      verifyTimer.ended(0);
      return;
    }
    const started = clock.monoMs();
    try {
      await verifyDataPlane(opts.dataPlane, metrics, log, clock);
    } catch (err) {
      if (!closed) dataPlaneFailed(err, 'verify');
    }
    // Spaced by its duration too (verify.ts): a pass requested meanwhile waited for it.
    verifyTimer.ended(clock.monoMs() - started);
  };

  /**
   * A pass with no fleet, not serving: draining keeps the routes it knows, marked GRACEFUL_SHUTDOWN; withdrawn, or
   * routes unknown (gobgpd may hold the previous run's), none. Sent again while gobgpd has not confirmed it.
   */
  const withdrawUnplanned = async (mode: 'draining' | 'withdrawn'): Promise<void> => {
    const want = mode === 'draining' && routes ? (drainRoutes ??= withCommunity(routes, GRACEFUL_SHUTDOWN)) : new Map();
    if (!routes || routesPending || !sameRoutes(routes, want)) await setRoutes(new Map(want), mode);
    if (mode === 'draining' && !routesPending) opts.onDrainAnnounced?.();
  };

  const pass = async (): Promise<void> => {
    const inp = opts.inputs();
    // The lifecycle's DRAIN_ANNOUNCE_WAIT_MS fallback runs from here, not from the drain: a pass or verify holding the
    // queue must not use it up before the GRACEFUL_SHUTDOWN set is even sent.
    if (inp.routeMode === 'draining') opts.onDrainPassBegan?.();
    const fleet = inp.fleet;
    if (!fleet) {
      // Nothing to plan from (desired state refused, no state file), yet a node not serving must not leave routes to
      // gobgpd, after a restart the previous run's too (routes unknown): SIGTERM says gobgpd holds none (0006).
      if (inp.routeMode !== 'serving') await withdrawUnplanned(inp.routeMode);
      return;
    }
    const started = performance.now();
    const planned = planTables(fleet, inp.decided, tableCache, inp.history, inp.ramps);
    const usable = plannedRoutes(planned, opts.routeContext);
    let want: Map<string, Advertisement>;
    if (inp.routeMode === 'serving') {
      drainRoutes = undefined;
      // shutdown() began (its drain waits for a reload applying): what is not announced yet never will be.
      want = inp.announceNew === false ? new Map([...usable].filter(([p]) => routes?.has(p))) : usable;
    } else if (inp.routeMode === 'draining') {
      // RFC 8326: keep what was announced, marked, so the router prefers other nodes before the withdraw.
      // Routes unknown (none set since a restart): none is known announced, and step 1 withdraws whatever gobgpd holds.
      drainRoutes ??= withCommunity(routes ?? new Map(), GRACEFUL_SHUTDOWN);
      want = new Map([...drainRoutes].filter(([p]) => usable.has(p)));
    } else {
      drainRoutes = undefined;
      want = new Map();
    }
    tables = planned;

    // 1. Withdraw first what must go (no route may point at a table about to lose its last backend). A drain only adds
    // GRACEFUL_SHUTDOWN to routes announced already (nothing new): sent here too, so a data plane that refuses the
    // tables (step 2 returns) or takes long does not hold it back while the graceful window runs.
    // Not serving with routes unknown (none set since a restart): gobgpd may hold the previous run's, withdrawn here
    // as if none were known, before the apply and whatever it does (refused, or holding the queue).
    const draining = inp.routeMode === 'draining';
    const sendsBefore = sends;
    const known = routes ?? (inp.routeMode === 'serving' ? undefined : new Map<string, Advertisement>());
    if (known) {
      const keep = new Map(
        [...known].flatMap(([p, r]) => (want.has(p) ? [[p, draining ? (want.get(p) ?? r) : r]] : [])),
      );
      // A draining set gobgpd did not take yet (away) is sent again here too, for the same reason.
      if (!routes || keep.size < known.size || (draining && (routesPending || !sameRoutes(keep, known))))
        await setRoutes(keep, inp.routeMode === 'serving' ? (p) => withdrawReason(p, fleet, planned) : inp.routeMode);
      // Only once gobgpd took it: a deferred set never reached a router, and the window would run out unseen (the
      // lifecycle's DRAIN_ANNOUNCE_WAIT_MS fallback ends a drain whose set never goes out).
      if (draining && !routesPending) opts.onDrainAnnounced?.();
    }

    // 2. Program the data plane (only when some table changed).
    const sig = tablesSignature(planned);
    if (sig !== dpSignature) {
      try {
        const res = await opts.dataPlane.apply(planned.map((t) => toDataPlaneTable(t.table)));
        const seconds = (performance.now() - started) / 1000;
        metrics.tableApplySeconds.observe(seconds);
        metrics.tableAppliesTotal.inc({ result: 'ok' });
        opts.onDataPlaneApply?.(true);
        countApplyRepairs(res, metrics, log);
        checksums = recordApplied(planned, res, {
          seconds,
          revision: inp.revision,
          checksums,
          markedVips,
          events,
          metrics,
        });
        countAnnounced();
        dpSignature = sig;
        appliedRevision = inp.revision;
        applied = true;
        refused = undefined;
        metrics.desiredRevision.set(inp.revision);
        verifyTimer.start();
        log.info({
          event: 'tablesApplied',
          vips: planned.length,
          slotsChanged: res.slotsChanged,
          revision: inp.revision,
          ms: Math.round(seconds * 1000),
        });
      } catch (err) {
        dataPlaneFailed(err, 'apply');
        refused = { revision: inp.revision, reason: (err as Error).message };
        // Announce nothing new over a data plane that did not take the tables (step 1 already withdrew what must go;
        // what stays announced is served by the tables the data plane holds).
        previousTables = planned;
        return;
      }
    } else if (applied && appliedRevision !== inp.revision) {
      // Nothing to program: the data plane holds this revision's tables already (a write that moves no table, say a
      // health check's interval). The node is current with it, and says so (status REVISION, the metric), or it would
      // look behind the fleet until the next table change.
      appliedRevision = inp.revision;
      metrics.desiredRevision.set(inp.revision);
    }

    // minUpMembers is no table input: a change of it alone programs nothing, yet may withdraw or announce.
    for (const t of planned) {
      metrics.tableBelowMinUpMembers.set({ vip: t.key }, t.usableBackends > 0 && !t.announceable ? 1 : 0);
      // A VIP never announced (no IPv6 next hop, a route gobgpd refuses; any after a restart) says 0 before the
      // announce below, which may fail: L4fleetVipNotAnnounced reads `== 0`, and a VIP without a series never matches.
      if (!markedVips.has(t.key)) metrics.vipAnnounced.set({ vip: t.key }, 0);
    }

    // 3. Announce.
    // Pending since an earlier pass, and step 1 did not send them again: now.
    const resend = routesPending && sends === sendsBefore;
    if (!routes || resend || !sameRoutes(routes, want)) await setRoutes(want, inp.routeMode);
    else markAnnounced(routes);
    if (draining && !routesPending) opts.onDrainAnnounced?.();
    previousTables = planned;
  };

  /** One pass, its failure counted, its pending-routes pass armed, its outcome told. */
  const passOnce = async (): Promise<void> => {
    try {
      const before = failures;
      if (!closed) await pass();
      // A pass whose apply failed scheduled its retry (and counted) itself; one that went through resets the count.
      const failed = failures !== before;
      if (!failed) failures = 0;
      // Routes gobgpd did not confirm: a pass each RETRY_MS sends them again (nothing else would without a new input);
      // the speaker fails those at once while gobgpd is away, and the plan comes from the table cache. Not after a
      // failed apply: its retry brings the next pass on the backoff (a state refused for good would otherwise be
      // planned and applied again each second, and a pass that fails its apply never reaches the announce).
      clock.clearTimeout(pendingTimer);
      if (routesPending && !failed && !closed) pendingTimer = clock.setTimeout(() => void request(), RETRY_MS);
      opts.onServedChange?.(served());
    } catch (err) {
      log.error({ event: 'reconcileFailed', err: (err as Error).message });
      retryLater();
    }
  };

  const loop = async (): Promise<void> => {
    do {
      again = false;
      const batch = waiters;
      waiters = [];
      // A loop the verify timer started has no pass to run.
      if (batch.length > 0) await passOnce();
      for (const w of batch) w();
      // After the pass, and only when no request is queued: a verify reads back what the last apply wrote.
      if (verifyDue && !again && !closed) {
        verifyDue = false;
        await verify();
      }
    } while (again && !closed);
    running = undefined;
  };

  const request = (): Promise<void> => {
    // Closed: no pass will run, and a loop still running (a verify) would end on `closed` without resolving it.
    if (closed) return Promise.resolve();
    const done = new Promise<void>((resolve) => waiters.push(resolve));
    if (running) again = true;
    else running = loop();
    return done;
  };

  return {
    request,
    get served() {
      return served();
    },
    close() {
      closed = true;
      clock.clearTimeout(retryTimer);
      clock.clearTimeout(pendingTimer);
      verifyTimer.close();
      for (const w of waiters) w();
      waiters = [];
    },
  };
}
