/**
 * Server-sent events (WHATWG HTML §9.2): one long response per page, `event: NAME` + `data: JSON` records. The
 * browser's EventSource reconnects by itself after a network error (not after a failed response, such as a proxy's
 * 502 while the dashboard restarts: the page then opens a new one, public/app.js); each (re)connect first gets the
 * full state, then changes.
 */
import type { ServerResponse } from 'node:http';

/**
 * A `ping` event (`data: {"everyMs": N}`) sent this often: proxies keep an idle stream open, and the page, which
 * sees named events (never comments), marks itself stale and reconnects when none came for 2.5 of them plus the time
 * its full state took to arrive (a half-open connection never errors; public/app.js).
 */
export const SSE_HEARTBEAT_MS = 15_000;
/**
 * A stream with more than this still unsent besides the full-state record it is sending (4 MiB: a page that stopped
 * reading, or a link far too slow for the fleet's changes) is destroyed rather than written to, so its backlog cannot
 * grow without bound. Its EventSource reconnects and is sent the full state again.
 */
export const SSE_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * Events that carry a whole state, so a page needs only the newest: the fleet view (22 MiB at 100 VIPs of 1,000
 * members) and the lab's flows. A stream still sending one gets none in between, but the newest once it has sent it.
 */
export const SSE_LATEST_ONLY_EVENTS: readonly string[] = ['view', 'flows'];

export interface SseHub {
  /** Takes over `res` as an event stream; `initial` records are sent first. */
  attach(res: ServerResponse, initial: readonly (readonly [string, unknown])[]): void;
  /** To every stream; a latest-only event (SSE_LATEST_ONLY_EVENTS) replaces one of the same name still waiting. */
  broadcast(event: string, data: unknown): void;
  /** Open streams. */
  size(): number;
  close(): void;
}

export function sseRecord(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

interface Stream {
  readonly res: ServerResponse;
  /** Bytes of the latest-only records written and not yet sent (0: none in flight). */
  inFlightBytes: number;
  /** Event -> the newest latest-only record, held while others are in flight (the same text for every stream). */
  readonly waiting: Map<string, string>;
}

export function createSseHub(heartbeatMs = SSE_HEARTBEAT_MS): SseHub {
  const streams = new Map<ServerResponse, Stream>();
  const latestOnly = new Set(SSE_LATEST_ONLY_EVENTS);
  const cut = (s: Stream) => {
    streams.delete(s.res);
    s.res.destroy();
  };
  /** Writes the waiting records; the write callback runs once the socket handed them all to the kernel. */
  const sendWaiting = (s: Stream) => {
    const text = [...s.waiting.values()].join('');
    s.waiting.clear();
    s.inFlightBytes = Buffer.byteLength(text);
    s.res.write(text, () => {
      s.inFlightBytes = 0;
      if (s.waiting.size > 0 && streams.has(s.res)) sendWaiting(s);
    });
  };
  /** Whether `s` is still open after its backlog was checked (the full-state record in flight is allowed). */
  const keeps = (s: Stream) => {
    if (s.res.writableLength <= SSE_MAX_BUFFERED_BYTES + s.inFlightBytes) return true;
    cut(s);
    return false;
  };
  const sendTo = (s: Stream, event: string, text: string) => {
    if (!keeps(s)) return;
    if (!latestOnly.has(event)) {
      s.res.write(text);
      return;
    }
    s.waiting.set(event, text);
    if (s.inFlightBytes === 0) sendWaiting(s);
  };
  const ping = sseRecord('ping', { everyMs: heartbeatMs });
  const heartbeat = setInterval(() => {
    for (const s of streams.values()) sendTo(s, 'ping', ping);
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
      const s: Stream = { res, inFlightBytes: 0, waiting: new Map() };
      streams.set(res, s);
      res.on('close', () => streams.delete(res));
      for (const [event, data] of initial) sendTo(s, event, sseRecord(event, data));
    },
    broadcast(event, data) {
      const text = sseRecord(event, data);
      for (const s of streams.values()) sendTo(s, event, text);
    },
    size: () => streams.size,
    close() {
      clearInterval(heartbeat);
      for (const s of streams.values()) s.res.end();
      streams.clear();
    },
  };
}
