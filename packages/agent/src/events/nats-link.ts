/**
 * The agent's NATS connection: connects in the background (NATS being down at start must not stop the agent),
 * reconnects forever, and tells the event publisher when it can deliver. nats.js would buffer publishes while
 * disconnected; the publisher checks `isConnected()` first so that buffer never grows. nats.js reconnects by itself
 * but closes the connection for good on some errors (an authorization error repeated while reconnecting): the link
 * then connects anew, as at start. A subscription the server ends (a permissions violation ends its iterator with an
 * error) is logged and made again at the next reconnect or new connection. The TLS files are read once, when the link
 * is made (or handed over read): every connect attempt uses that copy, so a file deleted or renewed since changes
 * nothing until a restart (reloader.ts says so), and a FIFO named there is refused instead of holding the event loop.
 */
import { connect, Events, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import { maskUserinfo } from '../config/fields.js';
import { readTlsFiles, type TlsContent } from '../config/tls-files.js';
import type { NatsSection } from '../config/types.js';
import type { EventTransport } from './publisher.js';

export interface NatsLink extends EventTransport {
  /** Calls `onMessage` for each message on `subject`, across reconnects, until close(). */
  subscribe(subject: string, onMessage: (data: Uint8Array) => void): void;
  close(): Promise<void>;
}

export interface NatsLinkOptions {
  readonly config: NatsSection;
  /**
   * The content of `config.tls`'s files, read at the start (runtime.ts, with etcd's). Absent: read here, once, through
   * readTlsFiles, which throws (AgentError naming the field and the file) for a missing file, a FIFO or a device.
   */
  readonly tls?: TlsContent;
  readonly name: string;
  readonly logger: Logger;
  /** Connection state changes (metrics, flushing the publisher). */
  readonly onConnectionChange?: (connected: boolean) => void;
  /** Time for the first-connect retry; default the system clock. */
  readonly clock?: Clock;
}

const RETRY_FIRST_CONNECT_MS = 1_000;

/** nats.js's tls option (PEM text) from the files' content. */
function tlsOptions(content: TlsContent | undefined) {
  if (!content) return undefined;
  return {
    ...(content.ca ? { ca: content.ca.toString('utf8') } : {}),
    ...(content.cert ? { cert: content.cert.toString('utf8') } : {}),
    ...(content.key ? { key: content.key.toString('utf8') } : {}),
  };
}

export function createNatsLink(opts: NatsLinkOptions): NatsLink {
  // Before anything starts: a bad file throws here, with no timer or connection to undo.
  const tls = tlsOptions(opts.tls ?? readTlsFiles('nats', opts.config.tls));
  const log = opts.logger.child({ component: 'nats' });
  const subs: { subject: string; onMessage: (d: Uint8Array) => void; sub?: Subscription | undefined }[] = [];
  let nc: NatsConnection | undefined;
  let connected = false;
  let closed = false;
  const clock = opts.clock ?? systemClock;
  let retryTimer: unknown;

  const setConnected = (c: boolean) => {
    if (c === connected) return;
    connected = c;
    log.info({ event: c ? 'natsConnected' : 'natsDisconnected' });
    opts.onConnectionChange?.(c);
  };

  const attach = (s: (typeof subs)[number]) => {
    if (!nc || s.sub) return;
    const sub = nc.subscribe(s.subject);
    s.sub = sub;
    void (async () => {
      try {
        for await (const m of sub) {
          try {
            s.onMessage(m.data);
          } catch (err) {
            log.error({ event: 'natsHandlerFailed', subject: s.subject, err });
          }
        }
      } catch (err) {
        // nats.js ends the iterator with the error (a permissions violation for the subject); unhandled, it would end
        // the agent.
        log.warn({ event: 'natsSubscriptionFailed', subject: s.subject, err: (err as Error).message });
      } finally {
        if (s.sub === sub) s.sub = undefined;
      }
    })();
  };

  const scheduleStart = () => {
    clock.clearTimeout(retryTimer);
    retryTimer = clock.setTimeout(() => void start(), RETRY_FIRST_CONNECT_MS);
  };

  /** nats.js closed `conn` for good (it does not reconnect it any more): connect anew unless close() did it. */
  const onClosed = (conn: NatsConnection, err: Error | undefined) => {
    if (closed || nc !== conn) return;
    log.warn({ event: 'natsClosed', err: err?.message });
    nc = undefined;
    for (const s of subs) s.sub = undefined;
    setConnected(false);
    scheduleStart();
  };

  const start = async (): Promise<void> => {
    if (closed || opts.config.servers.length === 0) return;
    try {
      const conn = await connect({
        servers: [...opts.config.servers],
        name: opts.name,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        pingInterval: 5_000,
        maxPingOut: 2,
        ...(opts.config.user !== undefined ? { user: opts.config.user, pass: opts.config.password } : {}),
        ...(opts.config.token !== undefined ? { token: opts.config.token } : {}),
        ...(tls ? { tls } : {}),
      });
      if (closed) {
        await conn.close();
        return;
      }
      nc = conn;
      setConnected(true);
      for (const s of subs) attach(s);
      void (async () => {
        for await (const st of conn.status()) {
          if (st.type === Events.Disconnect) setConnected(false);
          else if (st.type === Events.Reconnect) {
            setConnected(true);
            // nats.js re-subscribes what it still holds; a subscription the server ended is made again here.
            for (const s of subs) attach(s);
          }
        }
      })().catch(() => undefined);
      void conn.closed().then(
        (err) => onClosed(conn, err instanceof Error ? err : undefined),
        (err: unknown) => onClosed(conn, err as Error),
      );
    } catch (err) {
      // Masked: the config refuses a URL with userinfo, but a link made otherwise must not log a password either.
      log.warn({
        event: 'natsConnectFailed',
        servers: opts.config.servers.map(maskUserinfo),
        err: maskUserinfo((err as Error).message),
      });
      scheduleStart();
    }
  };
  void start();

  return {
    publish(subject, data) {
      nc?.publish(subject, data);
    },
    isConnected: () => connected && nc !== undefined && !nc.isClosed(),
    subscribe(subject, onMessage) {
      const s = { subject, onMessage };
      subs.push(s);
      attach(s);
    },
    async close() {
      closed = true;
      clock.clearTimeout(retryTimer);
      const conn = nc;
      nc = undefined;
      connected = false;
      if (conn && !conn.isClosed()) await conn.close().catch(() => undefined);
    },
  };
}
