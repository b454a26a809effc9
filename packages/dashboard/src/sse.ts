/**
 * Server-sent events (WHATWG HTML §9.2): one long response per page, `event: NAME` + `data: JSON` records. The
 * browser's EventSource reconnects by itself; each (re)connect first gets the full state, then changes.
 */
import type { ServerResponse } from 'node:http';

/** Comment line sent this often so proxies and the browser keep an idle stream open. */
export const SSE_HEARTBEAT_MS = 15_000;
/**
 * A stream with more than this still unsent (4 MiB: a page that stopped reading, or a link far too slow for the
 * fleet's changes) is destroyed rather than written to, so its backlog cannot grow without bound. Its EventSource
 * reconnects and is sent the full state again.
 */
export const SSE_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

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
  const send = (text: string) => {
    for (const c of clients) {
      if (c.writableLength > SSE_MAX_BUFFERED_BYTES) {
        clients.delete(c);
        c.destroy();
      } else {
        c.write(text);
      }
    }
  };
  const heartbeat = setInterval(() => send(': keepalive\n\n'), heartbeatMs);
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
      send(sseRecord(event, data));
    },
    size: () => clients.size,
    close() {
      clearInterval(heartbeat);
      for (const c of clients) c.end();
      clients.clear();
    },
  };
}
