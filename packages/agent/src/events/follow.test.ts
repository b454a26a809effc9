/** followEvents over a fake NATS connection: how the follow ends decides whether the CLI exits 0 or 1. */
import type { connect } from 'nats';
import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { followEvents } from './follow.js';

/** A connection whose one subscription yields `texts` and then ends, as nats.js does once it gives up reconnecting. */
function fakeConnect(texts: string[], closedWith?: Error) {
  let ended: () => void = () => undefined;
  const unsubscribed = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const conn = {
    closedCalls: 0,
    subscribe(_subject: string, opts: { max?: number }) {
      const max = opts.max ?? Number.POSITIVE_INFINITY;
      return {
        unsubscribe: () => ended(),
        async *[Symbol.asyncIterator]() {
          let n = 0;
          for (const t of texts) {
            if (n >= max) return;
            n += 1;
            yield { subject: 'l4fleet.default.node.state.n1', data: new TextEncoder().encode(t) };
          }
          // stays open (for abort) only when asked to: an ended connection ends the iterator at once
          if (closedWith === undefined && texts.length === 0) await unsubscribed;
        },
      };
    },
    flush: async () => undefined,
    close: async () => undefined,
    closed: async () => closedWith,
  };
  return (async () => conn) as unknown as typeof connect;
}

describe('events - follow', () => {
  // nats.js gives up after its reconnect attempts and ends the subscription: `l4fleet events` exited 0, silently.
  test('the connection ends before --count or an abort: AgentError naming NATS and why', async () => {
    const seen: string[] = [];
    const p = followEvents({
      servers: ['nats://127.0.0.1:4222'],
      subject: 'l4fleet.default.*.*.>',
      onMessage: (t) => seen.push(t),
      connect: fakeConnect(['a', 'b'], new Error('reconnect attempts exhausted')),
    });
    await expect(p).rejects.toBeInstanceOf(AgentError);
    await expect(p).rejects.toThrow(/nats nats:\/\/127\.0\.0\.1:4222: connection lost.*reconnect attempts exhausted/);
    expect(seen).toEqual(['a', 'b']);
  });

  test('the connection ends without a reason: still an error', async () => {
    const p = followEvents({
      servers: ['nats://127.0.0.1:4222'],
      subject: 's',
      max: 5,
      onMessage: () => undefined,
      connect: fakeConnect(['a']),
    });
    await expect(p).rejects.toThrow(/connection lost/);
  });

  test('--count reached: ends normally', async () => {
    const seen: string[] = [];
    await followEvents({
      servers: ['nats://127.0.0.1:4222'],
      subject: 's',
      max: 2,
      onMessage: (t) => seen.push(t),
      connect: fakeConnect(['a', 'b', 'c']),
    });
    expect(seen).toEqual(['a', 'b']);
  });

  test('aborted: ends normally', async () => {
    const abort = new AbortController();
    await followEvents({
      servers: ['nats://127.0.0.1:4222'],
      subject: 's',
      signal: abort.signal,
      onSubscribed: () => abort.abort(),
      onMessage: () => undefined,
      connect: fakeConnect([]),
    });
    expect(abort.signal.aborted).toBe(true);
  });
});

describe('events - follow a secured NATS (token, user and password, TLS with a private CA)', () => {
  /** A connect() that records its options and hands out a connection ending after `max`. */
  function recordingConnect() {
    const calls: Record<string, unknown>[] = [];
    const inner = fakeConnect(['a']);
    const fn = (async (o: Record<string, unknown>) => {
      calls.push(o);
      return inner(o as never);
    }) as unknown as typeof connect;
    return { calls, fn };
  }

  test.each([
    [{ token: 'nats-token-of-the-fleet' }, { token: 'nats-token-of-the-fleet' }],
    [
      { user: 'ops', password: 'N3wS3cret' },
      { user: 'ops', pass: 'N3wS3cret' },
    ],
    [{ ca: '-----BEGIN CERTIFICATE-----\n' }, { tls: { ca: '-----BEGIN CERTIFICATE-----\n' } }],
    [
      { token: 't0k3n', ca: 'PEM' },
      { token: 't0k3n', tls: { ca: 'PEM' } },
    ],
  ])('auth %j reaches connect() as %j', async (auth, expected) => {
    const rec = recordingConnect();
    await followEvents({
      servers: ['tls://198.19.0.2:4222'],
      subject: 's',
      max: 1,
      auth,
      onMessage: () => undefined,
      connect: rec.fn,
    });
    expect(rec.calls).toHaveLength(1);
    expect(rec.calls[0]).toMatchObject({ servers: ['tls://198.19.0.2:4222'], ...expected });
    if (!('token' in auth)) expect(rec.calls[0]).not.toHaveProperty('token');
    if (!('user' in auth)) expect(rec.calls[0]).not.toHaveProperty('user');
    if (!('ca' in auth)) expect(rec.calls[0]).not.toHaveProperty('tls');
  });

  test('no auth: only servers, name and timeout', async () => {
    const rec = recordingConnect();
    await followEvents({
      servers: ['nats://127.0.0.1:4222'],
      subject: 's',
      max: 1,
      onMessage: () => undefined,
      connect: rec.fn,
    });
    expect(Object.keys(rec.calls[0] ?? {}).sort()).toEqual(['name', 'servers', 'timeout']);
  });

  test('a URL with userinfo is masked in the messages (cannot connect, connection lost)', async () => {
    const servers = ['nats://ops:N3wS3cret@198.19.0.2:4222'];
    const refusing = (async () => {
      throw new Error('connect to nats://ops:N3wS3cret@198.19.0.2:4222 refused');
    }) as unknown as typeof connect;
    const p1 = followEvents({ servers, subject: 's', onMessage: () => undefined, connect: refusing });
    await expect(p1).rejects.toThrow(
      'nats nats://***@198.19.0.2:4222: cannot connect: connect to nats://***@198.19.0.2:4222 refused',
    );
    const p2 = followEvents({
      servers,
      subject: 's',
      max: 5,
      onMessage: () => undefined,
      connect: fakeConnect(['a'], new Error('lost nats://ops:N3wS3cret@198.19.0.2:4222')),
    });
    await expect(p2).rejects.toThrow(
      /^nats nats:\/\/\*\*\*@198\.19\.0\.2:4222: connection lost after 1 event\(s\): lost nats:\/\/\*\*\*@/,
    );
  });
});

describe('events - follow: a connection that breaks before the subscription is confirmed', () => {
  /**
   * A connection whose flush() rejects as nats.js does on a blip (DISCONNECT), counting what is left behind: the
   * abort listeners added and removed, the connections closed.
   */
  function flushFailingConnect() {
    const counts = { closed: 0, unsubscribed: 0 };
    const fn = (async () => ({
      subscribe: () => ({
        unsubscribe: () => {
          counts.unsubscribed += 1;
        },
        async *[Symbol.asyncIterator]() {},
      }),
      flush: async () => {
        throw new Error('DISCONNECT nats://ops:S3cret@198.19.0.2:4222');
      },
      close: async () => {
        counts.closed += 1;
      },
      closed: async () => undefined,
    })) as unknown as typeof connect;
    return { counts, fn };
  }

  // The dashboard's follow() loop calls again 2 s later: each failed call left a self-reconnecting connection with an
  // unread subscription and an abort listener, for the life of the process.
  test('each failed call closes its connection and removes its abort listener; AgentError CLOSED, userinfo masked', async () => {
    const { counts, fn } = flushFailingConnect();
    const abort = new AbortController();
    let added = 0;
    let removed = 0;
    const add = abort.signal.addEventListener.bind(abort.signal);
    const remove = abort.signal.removeEventListener.bind(abort.signal);
    abort.signal.addEventListener = ((...a: Parameters<typeof add>) => {
      added += 1;
      add(...a);
    }) as typeof add;
    abort.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
      removed += 1;
      remove(...a);
    }) as typeof remove;
    const errors: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      await followEvents({
        servers: ['nats://198.19.0.2:4222'],
        subject: 's',
        signal: abort.signal,
        onMessage: () => undefined,
        connect: fn,
      }).catch((err: unknown) => errors.push(err));
    }
    expect({ added, removed, closed: counts.closed, failed: errors.length }).toEqual({
      added: 100,
      removed: 100,
      closed: 100,
      failed: 100,
    });
    const err = errors[0] as AgentError;
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('CLOSED');
    expect(err.message).toMatch(/nats nats:\/\/198\.19\.0\.2:4222: .*DISCONNECT/);
    expect(err.message).not.toMatch(/S3cret/);
  });
});
