/** Follows agent events on NATS (what `l4fleet events` prints); ends on `max` events, abort, or close. */
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
}

export async function followEvents(opts: FollowEventsOptions): Promise<void> {
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await connect({ servers: [...opts.servers], name: 'l4fleet-events', timeout: opts.connectTimeoutMs ?? 3_000 });
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
  try {
    for await (const m of sub) opts.onMessage(decoder.decode(m.data), m.subject);
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    await nc.close();
  }
}
