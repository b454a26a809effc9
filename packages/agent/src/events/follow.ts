/**
 * Follows agent events on NATS (what `l4fleet events` prints); ends on `max` events or abort. A connection that ends
 * on its own (nats.js gives up after its reconnect attempts) is an AgentError `CLOSED`, not a quiet end: the CLI
 * exited 0 having printed nothing while NATS was gone.
 */
import { connect } from 'nats';
import { maskUserinfo } from '../config/fields.js';
import { AgentError } from '../errors.js';

/**
 * How to log in to a secured NATS (the operator guide's agent-secure: tls:// with a private CA and a token). nats.js
 * ignores a URL's userinfo, so these are the only way.
 */
export interface NatsClientAuth {
  readonly token?: string;
  /** With `password`. */
  readonly user?: string;
  readonly password?: string;
  /** PEM text of the CA the servers' certificates are checked against (TLS). */
  readonly ca?: string;
}

export interface FollowEventsOptions {
  readonly servers: readonly string[];
  readonly subject: string;
  /** Stop after this many messages. */
  readonly max?: number;
  readonly signal?: AbortSignal;
  /** Called once the subscription is live (nothing published before this is seen). */
  readonly onSubscribed?: () => void;
  /** Raw message text and subject. */
  readonly onMessage: (text: string, subject: string) => void;
  readonly connectTimeoutMs?: number;
  readonly auth?: NatsClientAuth;
  /** nats.js connect(); a fake in unit tests. */
  readonly connect?: typeof connect;
}

export async function followEvents(opts: FollowEventsOptions): Promise<void> {
  const auth = opts.auth ?? {};
  // Userinfo masked in every message: the CLI refuses it, but these messages reach the dashboard's log too.
  const shown = opts.servers.map(maskUserinfo).join(',');
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await (opts.connect ?? connect)({
      servers: [...opts.servers],
      name: 'l4fleet-events',
      timeout: opts.connectTimeoutMs ?? 3_000,
      ...(auth.token !== undefined ? { token: auth.token } : {}),
      ...(auth.user !== undefined ? { user: auth.user, pass: auth.password ?? '' } : {}),
      ...(auth.ca !== undefined ? { tls: { ca: auth.ca } } : {}),
    });
  } catch (err) {
    // No cause: nats.js's error may quote a server URL as given.
    throw new AgentError('STARTUP_FAILED', `nats ${shown}: cannot connect: ${maskUserinfo((err as Error).message)}`);
  }
  const decoder = new TextDecoder();
  let received = 0;
  let stop: (() => void) | undefined;
  // Everything after connect() is inside the try: a flush rejected on a blip (nats.js: DISCONNECT) left a connection
  // reconnecting on its own with an unread subscription and an abort listener, one more per retry of the caller.
  try {
    const sub = nc.subscribe(opts.subject, opts.max ? { max: opts.max } : {});
    stop = () => sub.unsubscribe();
    opts.signal?.addEventListener('abort', stop, { once: true });
    if (opts.signal?.aborted) stop();
    try {
      await nc.flush();
    } catch (err) {
      // No cause: nats.js's error may quote a server URL as given.
      throw new AgentError(
        'CLOSED',
        `nats ${shown}: subscription to ${opts.subject} not confirmed: ${maskUserinfo((err as Error).message)}`,
      );
    }
    opts.onSubscribed?.();
    for await (const m of sub) {
      received += 1;
      opts.onMessage(decoder.decode(m.data), m.subject);
    }
  } finally {
    if (stop) opts.signal?.removeEventListener('abort', stop);
    await nc.close();
  }
  if (opts.signal?.aborted || (opts.max !== undefined && received >= opts.max)) return;
  // Closed before we closed it: closed() holds why (or nothing, when nats.js ran out of reconnect attempts).
  const why = await nc.closed();
  throw new AgentError(
    'CLOSED',
    `nats ${shown}: connection lost after ${received} event(s)` +
      `${why ? `: ${maskUserinfo(why.message)}` : ' (reconnect attempts ran out)'}; not following any more`,
  );
}
