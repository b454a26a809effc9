/**
 * `startDashboard`: the live fleet view (etcd watches), the event timeline (NATS), the metrics history (agents'
 * /metrics) and the HTTP server, wired together; close() stops all of it. Dependencies are passed in: the store,
 * the logger and (for tests) the metrics fetcher.
 */
import { type FollowEventsOptions, followEvents } from '@l4fleet/agent';
import { type DesiredChanges, desiredChanges, type FleetStore } from '@l4fleet/store';
import type { Logger } from 'pino';
import { createActions } from './actions.js';
import { loadPageAssets } from './assets.js';
import { createWriteGuard } from './auth.js';
import { DashboardError } from './errors.js';
import { type LabFlows, parseLabFlows } from './lab-flows.js';
import { watchFleet } from './live-fleet.js';
import { createMetricsRecorder, type FetchText, SCRAPE_INTERVAL_MS } from './metrics-history.js';
import { DEFAULT_LISTEN, parseListen } from './options.js';
import { serveViews } from './served-view.js';
import { createServer } from './server.js';
import { createSseHub } from './sse.js';
import { createTimeline, parseAgentEvent } from './timeline.js';

/** Wait before following NATS again after the connection failed or ended. */
export const NATS_RETRY_MS = 2_000;
/**
 * A rejected NATS message (not an agent event, too large) is warned at most once per this long per subject, the
 * warning counting the ones rejected since: anyone who may publish on the subject could otherwise fill the log.
 */
export const REJECTED_WARN_EVERY_MS = 60_000;
/** The fleet's writes the page's "Changes" lists (`l4fleet history` shows more). */
export const CHANGES_ON_PAGE = 10;

export interface DashboardOptions {
  readonly store: FleetStore;
  readonly logger: Logger;
  /** `HOST:PORT`; default DEFAULT_LISTEN (loopback). */
  readonly listen?: string;
  /** Bearer token for writes; none: writes are refused (there is no default token). */
  readonly token?: string;
  /**
   * NATS servers, the event subject (eventFilter(prefix, fleet)) and, optionally, the subject `lab watch` publishes
   * its flows on (labFlowsSubject(prefix, fleet)); none: no agent events in the timeline, no lab flows.
   */
  readonly nats?: {
    readonly servers: readonly string[];
    readonly subject: string;
    readonly flowsSubject?: string;
    /** Token, user and password, CA (a secured NATS: the operator guide's tls:// with a private CA and a token). */
    readonly auth?: FollowEventsOptions['auth'];
  };
  /** Node -> its agent's /metrics URL. */
  readonly metricsTargets?: ReadonlyMap<string, string>;
  readonly scrapeIntervalMs?: number;
  readonly fetchText?: FetchText;
}

export interface Dashboard {
  /** `http://HOST:PORT/` actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const log = opts.logger.child({ component: 'dashboard' });
  const listen = parseListen(opts.listen ?? DEFAULT_LISTEN);
  const guard = createWriteGuard(opts.token);
  const { assets, build } = await loadPageAssets();
  const timeline = createTimeline();
  const hub = createSseHub();
  const metrics = createMetricsRecorder({
    targets: opts.metricsTargets ?? new Map(),
    ...(opts.fetchText ? { fetchText: opts.fetchText } : {}),
  });
  // The pages are served the last view that could be sent: one that cannot be serialised keeps the one before.
  const fleet = serveViews(await watchFleet(opts.store, log), hub, log);
  const actions = createActions(opts.store, timeline);
  let labFlows: LabFlows | null = null;
  // The changes behind one desired revision never change (compaction only drops older writes): every page asking at
  // that revision shares one read (a 10,000-member fleet's took 1-2 s).
  let changes: { revision: number; read: Promise<DesiredChanges> } | undefined;
  const changesOnce = (revision: number): Promise<DesiredChanges> => {
    if (changes?.revision !== revision) {
      const read = desiredChanges(opts.store, CHANGES_ON_PAGE);
      changes = { revision, read };
      read.catch(() => {
        if (changes?.read === read) changes = undefined; // a failed read is tried again by the next page
      });
    }
    return changes.read;
  };
  const app = createServer({
    logger: log,
    assets,
    build,
    fleet,
    timeline,
    metrics,
    hub,
    guard,
    actions,
    labFlows: () => labFlows,
    changes: () => changesOnce(fleet.view().revision),
  });

  const unsubscribe = [timeline.subscribe((e) => hub.broadcast('timeline', [e]))];
  let closed = false;
  const scrape = async () => {
    await metrics.tick(Date.now(), performance.now());
    // The new column only (pages got the whole history when they connected): the history is 300 columns per series.
    const column = metrics.lastColumn();
    if (column) hub.broadcast('metrics-column', column);
  };
  const scrapeTimer = opts.metricsTargets?.size
    ? setInterval(
        () => void scrape().catch((err) => log.warn({ event: 'scrapeFailed', err })),
        opts.scrapeIntervalMs ?? SCRAPE_INTERVAL_MS,
      )
    : undefined;

  const abort = new AbortController();
  /** Follows one subject until close, again NATS_RETRY_MS after the connection failed or ended. */
  const follow = async (servers: readonly string[], subject: string, onMessage: (text: string) => void) => {
    let warnedAtMs: number | undefined;
    let rejectedSinceWarn = 0;
    const rejected = (err: unknown) => {
      const now = performance.now();
      if (warnedAtMs !== undefined && now - warnedAtMs < REJECTED_WARN_EVERY_MS) {
        rejectedSinceWarn++;
        log.debug({ event: 'eventRejected', subject, err: (err as Error).message });
        return;
      }
      log.warn({ event: 'eventRejected', subject, err: (err as Error).message, rejectedSinceWarn });
      warnedAtMs = now;
      rejectedSinceWarn = 0;
    };
    while (!closed) {
      try {
        await followEvents({
          servers,
          subject,
          ...(opts.nats?.auth ? { auth: opts.nats.auth } : {}),
          signal: abort.signal,
          onMessage(text) {
            try {
              onMessage(text);
            } catch (err) {
              rejected(err);
            }
          },
        });
      } catch (err) {
        log.warn({ event: 'natsUnavailable', subject, err: (err as Error).message });
      }
      if (!closed) await new Promise((r) => setTimeout(r, NATS_RETRY_MS));
    }
  };
  const following = opts.nats
    ? [
        follow(opts.nats.servers, opts.nats.subject, (text) => timeline.add(parseAgentEvent(text))),
        ...(opts.nats.flowsSubject
          ? [
              follow(opts.nats.servers, opts.nats.flowsSubject, (text) => {
                labFlows = parseLabFlows(text);
                hub.broadcast('flows', labFlows);
              }),
            ]
          : []),
      ]
    : [];

  const stop = async () => {
    closed = true;
    abort.abort();
    if (scrapeTimer) clearInterval(scrapeTimer);
    for (const u of unsubscribe) u();
    actions.close();
    hub.close();
    await app.close();
    await fleet.close();
    await Promise.all(following);
  };
  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (err) {
    await stop();
    throw new DashboardError('LISTEN_FAILED', `listen "${opts.listen ?? DEFAULT_LISTEN}": ${(err as Error).message}`, {
      cause: err,
    });
  }
  const a = app.server.address();
  const port = typeof a === 'object' && a ? a.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `http://${host}:${port}/`;
  log.info({ event: 'dashboardListening', url, writes: guard.enabled });
  return { url, close: stop };
}
