/**
 * The HTTP surface: the page, its assets, the state as JSON, the event stream, the fleet's recent changes, explain,
 * and the guarded writes.
 */
import { ConfigError, explainFlow, formatProblem, parseVipKey } from '@l4fleet/config';
import { type DesiredChanges, StoreError } from '@l4fleet/store';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Actions, MemberAction, VipAction } from './actions.js';
import type { Asset } from './assets.js';
import type { WriteGuard } from './auth.js';
import { DashboardError, HTTP_STATUS } from './errors.js';
import type { LabFlows } from './lab-flows.js';
import type { LiveFleet } from './live-fleet.js';
import type { MetricsRecorder } from './metrics-history.js';
import type { SseHub } from './sse.js';
import type { Timeline } from './timeline.js';

export interface ServerDeps {
  readonly logger: Logger;
  readonly assets: ReadonlyMap<string, Asset>;
  /** The assets' build (assetsBuild), in index.html and in `hello`: a page of another build reloads itself. */
  readonly build: string;
  readonly fleet: LiveFleet;
  readonly timeline: Timeline;
  readonly metrics: MetricsRecorder;
  readonly hub: SseHub;
  readonly guard: WriteGuard;
  readonly actions: Actions;
  /** The last good flows of `lab watch` (null: none seen). */
  readonly labFlows: () => LabFlows | null;
  /** The fleet's last writes with what each changed (`l4fleet history`), read from etcd when asked. */
  readonly changes: () => Promise<DesiredChanges>;
}

/** Scripts and styles only from this server (no CDN, no inline script): the page works offline and resists XSS. */
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'";

/** Request bodies are tiny JSON objects; anything larger is refused before parsing. */
const BODY_LIMIT_BYTES = 4_096;

/**
 * A request must have arrived whole within this (Node's default is none): a body that stops half way would hold its
 * connection, and a handler, for ever.
 */
export const REQUEST_TIMEOUT_MS = 10_000;

/**
 * A source port from the explain form: a JSON integer or decimal digits, 0-65535. Number() would take "" (0), null,
 * true, "0x50" and [80], and explain a flow the operator never typed.
 */
function portOf(value: unknown): number | undefined {
  const n =
    typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 65_535 ? n : undefined;
}

/**
 * Throws unless a write comes from the dashboard's own page (or a script: neither header is sent then). A browser
 * sends a cross-site form or no-cors fetch with a foreign Origin and Sec-Fetch-Site, and with a content type that
 * needs no preflight (text/plain, a form's): refused here, before anything is recorded, so another site cannot fill
 * the timeline with forged refusals. Sec-Fetch-Site, when sent, is the browser's own verdict (it holds behind a proxy
 * that rewrites Host); Origin against Host is the check for browsers without it.
 */
function checkWriteSource(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  if (site !== undefined) {
    // `none`: typed by the user (not a page's request); `same-origin`: the dashboard's own page.
    if (site !== 'same-origin' && site !== 'none') {
      throw new DashboardError(
        'FOREIGN_ORIGIN',
        `sec-fetch-site: ${JSON.stringify(site)} is not same-origin (writes are taken from the dashboard's own page only)`,
      );
    }
  } else if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined; // `null` (a sandboxed page, a file) or garbage: never this dashboard
    }
    if (host === undefined || host !== req.headers.host?.toLowerCase()) {
      throw new DashboardError(
        'FOREIGN_ORIGIN',
        `origin: ${JSON.stringify(origin)} is not this dashboard (writes are taken from its own page only)`,
      );
    }
  }
  const type = req.headers['content-type'];
  // A body must be JSON (the page's); none at all is a script's bare POST, which no cross-site page can send unseen.
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new DashboardError('UNSUPPORTED_MEDIA_TYPE', `content-type: ${JSON.stringify(type)} is not application/json`);
  }
}

function statusOf(err: unknown): { status: number; message: string } {
  if (err instanceof DashboardError) return { status: HTTP_STATUS[err.code], message: err.message };
  if (err instanceof ConfigError)
    return { status: err.code === 'VIP_NOT_FOUND' ? 404 : 400, message: err.problems.map(formatProblem).join('; ') };
  if (err instanceof StoreError) {
    const status = err.code === 'CONFLICT' ? 409 : err.code === 'NOT_FOUND' ? 404 : 503;
    return { status, message: err.message };
  }
  const e = err as { statusCode?: number; message?: string };
  if (typeof e.statusCode === 'number' && e.statusCode < 500)
    return { status: e.statusCode, message: String(e.message) };
  return { status: 500, message: `internal error: ${(err as Error).message}` };
}

export function snapshot(deps: ServerDeps) {
  return {
    writes: deps.guard.enabled,
    /** The timeline's ids are this process's (Timeline.instance). */
    instance: deps.timeline.instance,
    /** The page's build: a page loaded from another one reloads (public/app.js). */
    build: deps.build,
    view: deps.fleet.view(),
    timeline: deps.timeline.list(),
    metrics: deps.metrics.history(),
    flows: deps.labFlows(),
  };
}

export function createServer(deps: ServerDeps): FastifyInstance {
  // forceCloseConnections: close() ends every connection, not only the idle ones: a request still arriving (or a
  // stream whose page stopped reading) would otherwise keep close(), and so SIGTERM, waiting.
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    forceCloseConnections: true,
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    return payload;
  });
  app.setErrorHandler((err, req, reply) => {
    const { status, message } = statusOf(err);
    if (status >= 500) deps.logger.error({ event: 'requestFailed', url: req.url, err }, message);
    void reply.code(status).send({ error: message });
  });

  for (const [route, asset] of deps.assets) {
    app.get(route, async (_req, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body));
  }
  app.get('/api/state', async () => snapshot(deps));
  // Not in the stream: read from etcd (one range read per write) only when a page asks, after the revision moved.
  app.get('/api/changes', async () => deps.changes());
  app.get('/api/stream', (req, reply) => {
    reply.hijack();
    const s = snapshot(deps);
    deps.hub.attach(reply.raw, [
      ['hello', { writes: s.writes, instance: s.instance, build: s.build }],
      ['view', s.view],
      ['timeline', s.timeline],
      ['metrics', s.metrics],
      ...(s.flows ? [['flows', s.flows] as [string, unknown]] : []),
    ]);
    req.raw.on('close', () => reply.raw.end());
  });
  app.post('/api/explain', async (req) => {
    const body = (req.body ?? {}) as { src?: unknown; sport?: unknown; vip?: unknown };
    const sport = portOf(body.sport);
    if (typeof body.src !== 'string' || body.src === '')
      throw new DashboardError('BAD_REQUEST', `src: ${JSON.stringify(body.src)} is not an address`);
    if (typeof body.vip !== 'string')
      throw new DashboardError('BAD_REQUEST', `vip: ${JSON.stringify(body.vip)} is not a VIP key`);
    if (sport === undefined) {
      throw new DashboardError(
        'BAD_REQUEST',
        `sport: ${JSON.stringify(body.sport)} is not a port (an integer 0-65535)`,
      );
    }
    const vip = parseVipKey(body.vip);
    const { desired, decided, history } = deps.fleet.inputs();
    const flow = { src: body.src, sport, dst: vip.address, dport: vip.port, protocol: vip.protocol };
    const explained = explainFlow(desired.fleet, decided.decided, flow, history?.history, decided.ramps);
    return { ...explained, revision: desired.revision };
  });

  const who = (req: FastifyRequest) => req.ip;
  /**
   * Checks where the write comes from (nothing recorded when another site sent it), then the token; a write refused
   * for its token is still an action in the timeline (Actions.refused bounds how many).
   */
  const guarded =
    (action: string, target: (req: FastifyRequest) => string, fn: (req: FastifyRequest) => Promise<unknown>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      checkWriteSource(req);
      try {
        deps.guard.check(req.headers.authorization);
      } catch (err) {
        deps.actions.refused(action, target(req), (err as Error).message, who(req));
        throw err;
      }
      return reply.send(await fn(req));
    };
  type NodeParams = { Params: { name: string } };
  for (const [verb, drained] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    app.post<NodeParams>(
      `/api/nodes/:name/${verb}`,
      guarded(
        `node ${verb}`,
        (req) => (req.params as { name: string }).name,
        (req) => deps.actions.setNodeDrain((req.params as { name: string }).name, drained, who(req)),
      ),
    );
  }
  type MemberParams = { pool: string; member: string };
  for (const verb of ['drain', 'enable'] as const satisfies readonly MemberAction[]) {
    app.post(
      `/api/pools/:pool/members/:member/${verb}`,
      guarded(
        `member ${verb}`,
        (req) => `${(req.params as MemberParams).pool}/${(req.params as MemberParams).member}`,
        (req) => {
          const p = req.params as MemberParams;
          return deps.actions.setMemberState(p.pool, p.member, verb, who(req));
        },
      ),
    );
  }
  for (const verb of ['disable', 'drain', 'enable'] as const satisfies readonly VipAction[]) {
    app.post(
      `/api/vips/:vip/${verb}`,
      guarded(
        `vip ${verb}`,
        (req) => (req.params as { vip: string }).vip,
        (req) => deps.actions.setVipState((req.params as { vip: string }).vip, verb, who(req)),
      ),
    );
  }
  return app;
}
