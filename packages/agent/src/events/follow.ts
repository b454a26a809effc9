/**
 * Follows agent events on NATS (what `l4fleet events` prints); ends on `max` events or abort. A connection that ends
 * on its own (nats.js gives up after its reconnect attempts) is an AgentError `CLOSED`, not a quiet end: the CLI
 * exited 0 having printed nothing while NATS was gone.
 */
import { connect } from 'nats';
import { AgentError } from '../errors.js';

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
  /** nats.js connect(); a fake in unit tests. */
  readonly connect?: typeof connect;
}

export async function followEvents(opts: FollowEventsOptions): Promise<void> {
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await (opts.connect ?? connect)({
      servers: [...opts.servers],
      name: 'l4fleet-events',
      timeout: opts.connectTimeoutMs ?? 3_000,
    });
  } catch (err) {
    throw new AgentError(
      'STARTUP_FAILED',
      `nats ${opts.servers.join(',')}: cannot connect: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const sub = nc.subscribe(opts.subject, opts.max ? { max: opts.max } : {});
  const stop = () => sub.unsubscribe();
  opts.signal?.addEventListener('abort', stop, { once: true });
  if (opts.signal?.aborted) stop();
  await nc.flush();
  opts.onSubscribed?.();
  const decoder = new TextDecoder();
  let received = 0;
  try {
    for await (const m of sub) {
      received += 1;
      opts.onMessage(decoder.decode(m.data), m.subject);
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    await nc.close();
  }
  if (opts.signal?.aborted || (opts.max !== undefined && received >= opts.max)) return;
  // Closed before we closed it: closed() holds why (or nothing, when nats.js ran out of reconnect attempts).
  const why = await nc.closed();
  throw new AgentError(
    'CLOSED',
    `nats ${opts.servers.join(',')}: connection lost after ${received} event(s)` +
      `${why ? `: ${why.message}` : ' (reconnect attempts ran out)'}; not following any more`,
    why ? { cause: why } : undefined,
  );
}
