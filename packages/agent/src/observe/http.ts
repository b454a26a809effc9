/** /metrics (Prometheus text), /healthz (the process answers), /readyz (the node serves its desired state). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListenAddress } from '@l4fleet/config';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AgentError } from '../errors.js';

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface ObservabilityServer {
  /** `host:port` actually bound (port 0 in the config picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

export async function startObservabilityServer(opts: {
  listen: string;
  registry: Registry;
  readiness: () => Readiness;
  logger: Logger;
}): Promise<ObservabilityServer> {
  // Validated by the config's parse already; the one reader of a listener's address (no second regex to drift).
  const { host, port } = parseListenAddress(opts.listen, 'metrics.listen');
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const r = opts.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new AgentError('METRICS_LISTEN_FAILED', `metrics.listen "${opts.listen}": ${err.message}`, { cause: err }),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  opts.logger.info({ event: 'metricsListening', address });
  return {
    address,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
