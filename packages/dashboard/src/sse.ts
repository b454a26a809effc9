/**
 * Server-sent events (WHATWG HTML §9.2): one long response per page, `event: NAME` + `data: JSON` records. The
 * browser's EventSource reconnects by itself; each (re)connect first gets the full state, then changes.
 */
import type { ServerResponse } from 'node:http';

/** Comment line sent this often so proxies and the browser keep an idle stream open. */
export const SSE_HEARTBEAT_MS = 15_000;

export interface SseHub {
  /** Takes over `res` as an event stream; `initial` records are sent first. */
  attach(res: ServerResponse, initial: readonly (readonly [string, unknown])[]): void;
  broadcast(event: string, data: unknown): void;
  /** Open streams. */
  size(): number;
  close(): void;
}

export function sseRecord(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function createSseHub(heartbeatMs = SSE_HEARTBEAT_MS): SseHub {
  const clients = new Set<ServerResponse>();
  const heartbeat = setInterval(() => {
    for (const c of clients) c.write(': keepalive\n\n');
  }, heartbeatMs);
  heartbeat.unref();
  return {
    attach(res, initial) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      for (const [event, data] of initial) res.write(sseRecord(event, data));
      clients.add(res);
      res.on('close', () => clients.delete(res));
    },
    broadcast(event, data) {
      const text = sseRecord(event, data);
      for (const c of clients) c.write(text);
    },
    size: () => clients.size,
    close() {
      clearInterval(heartbeat);
      for (const c of clients) c.end();
      clients.clear();
    },
  };
}
