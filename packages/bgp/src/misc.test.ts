import { status } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { Backoff } from './backoff.js';
import { BgpError, fromGrpcError } from './errors.js';
import { EventHub } from './event-hub.js';
import { createFakeSpeaker } from './fake-speaker.js';
import { apiAddressProblem, GobgpClient, validateApiAddress } from './gobgp-client.js';

function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

describe('errors - gRPC mapping', () => {
  test('UNAVAILABLE is retryable and keeps status and cause', () => {
    const cause = grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED');
    const err = fromGrpcError('AddPath 198.51.100.1/32', cause);
    expect(err).toMatchObject({ name: 'BgpError', code: 'UNAVAILABLE', grpcStatus: 14, retryable: true, cause });
    expect(err.message).toContain('AddPath 198.51.100.1/32');
  });

  test('a gobgpd refusal (UNKNOWN + Go error text) is not retryable and names the cause', () => {
    const err = fromGrpcError('AddPeer 198.18.0.1', grpcError(status.UNKNOWN, 'can not add peer'));
    expect(err).toMatchObject({ code: 'GOBGP_REJECTED', grpcStatus: 2, retryable: false });
    expect(err.message).toBe('gobgpd AddPeer 198.18.0.1: rejected (UNKNOWN: can not add peer)');
  });

  test('a BgpError passes through unchanged', () => {
    const e = new BgpError('CLOSED', 'closed');
    expect(fromGrpcError('x', e)).toBe(e);
  });
});

describe('gobgp client - API address', () => {
  test.each([
    '127.0.0.1:50051',
    '127.0.0.2:50051',
    '[::1]:50051',
    'localhost:50051',
    'unix:/run/gobgpd.sock',
    'unix:///run/gobgpd.sock',
    // Loopback in any spelling: the regex of the host took only 127.x.y.z, [::1] and localhost.
    '[::ffff:127.0.0.1]:50051',
    '[0:0:0:0:0:0:0:1]:50051',
    '[::FFFF:7F00:1]:50051',
  ])('%s is accepted', (a) => {
    expect(validateApiAddress(a)).toBe(a);
    expect(apiAddressProblem(a)).toBeUndefined();
  });

  test('a non-loopback address or a name other than localhost needs allowRemoteApi', () => {
    for (const a of ['198.18.0.5:50051', '[2001:db8::5]:50051', '[::ffff:198.18.0.5]:50051', 'gobgpd.example:50051']) {
      expect(() => validateApiAddress(a)).toThrow(/is not on this host/);
      expect(validateApiAddress(a, true)).toBe(a);
    }
  });

  test('the problem names the value, says why, and leaves the advice to the caller', () => {
    const why = apiAddressProblem('198.18.0.5:50051');
    expect(why).toBe(
      `"198.18.0.5:50051" is not on this host (loopback: 127.0.0.0/8, ::1 or localhost; or unix:/PATH): gobgpd's API is unauthenticated, and whoever reaches it can announce any route`,
    );
    expect(why).not.toContain('allowRemoteApi');
    // The client, whose caller has the option, names it.
    expect(() => new GobgpClient({ address: '198.18.0.5:50051' })).toThrow(
      `address ${why}; allowRemoteApi: true takes it anyway`,
    );
  });

  test.each([
    '127.0.0.1',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    '',
    ':50051',
    '::1:50051',
    '[127.0.0.1]:50051',
    '[foo]:50051',
    '300.1.1.1:50051',
    '127.1:50051',
    'unix:',
    'unix:run/gobgpd.sock',
    'unix://run/gobgpd.sock',
  ])('%j is refused, even with allowRemoteApi', (a) => {
    expect(() => validateApiAddress(a, true)).toThrow(BgpError);
    expect(apiAddressProblem(a, true)).toMatch(new RegExp(`^${JSON.stringify(a).replace(/[.[\]]/g, '\\$&')} is not `));
  });

  // Only an address that is well formed but remote gets the advice: allowRemoteApi takes no malformed one.
  test.each(['300.1.1.1:50051', 'host:port:x', '127.0.0.1:0', 'unix:run/gobgpd.sock'])(
    'the client refuses %j naming the value, without the allowRemoteApi advice',
    (a) => {
      for (const allowRemoteApi of [false, true]) {
        let err: unknown;
        try {
          new GobgpClient({ address: a, allowRemoteApi });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(BgpError);
        expect(err).toMatchObject({ code: 'API_ADDRESS_INVALID' });
        expect((err as Error).message).toBe(`address ${apiAddressProblem(a, true)}`);
        expect((err as Error).message).toContain(JSON.stringify(a));
        expect((err as Error).message).not.toContain('allowRemoteApi');
      }
    },
  );
});

describe('backoff', () => {
  test('doubles from the initial delay up to the cap', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map(() => b.next())).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    b.reset();
    expect(b.next()).toBe(100);
  });
  test('jitter stays within ±20 %', () => {
    expect(new Backoff({ initialMs: 1_000, random: () => 0 }).next()).toBe(800);
    expect(new Backoff({ initialMs: 1_000, random: () => 0.999_999 }).next()).toBe(1_200);
  });
});

describe('event hub', () => {
  test('every subscriber gets every event; close ends the iterators after the queue', async () => {
    const hub = new EventHub<number>();
    const a = hub.subscribe()[Symbol.asyncIterator]();
    const b = hub.subscribe()[Symbol.asyncIterator]();
    hub.publish(1);
    hub.publish(2);
    hub.close();
    expect(await a.next()).toEqual({ done: false, value: 1 });
    expect(await a.next()).toEqual({ done: false, value: 2 });
    expect((await a.next()).done).toBe(true);
    expect((await b.next()).value).toBe(1);
  });
  test('a slow consumer loses the oldest events, counted', async () => {
    const hub = new EventHub<number>(2);
    const it = hub.subscribe()[Symbol.asyncIterator]();
    for (const n of [1, 2, 3]) hub.publish(n);
    expect(hub.dropped).toBe(1);
    expect((await it.next()).value).toBe(2);
  });
  test('a waiting consumer wakes on publish', async () => {
    const hub = new EventHub<string>();
    const it = hub.subscribe()[Symbol.asyncIterator]();
    const pending = it.next();
    hub.publish('x');
    expect(await pending).toEqual({ done: false, value: 'x' });
  });
});

describe('fake speaker', () => {
  test('validates like the real one and records each announced set', async () => {
    const s = createFakeSpeaker();
    await expect(s.setAdvertisements([{ prefix: '198.51.100.1/24', nextHop: '198.18.0.1' }])).rejects.toMatchObject({
      code: 'PREFIX_INVALID',
    });
    await s.setAdvertisements([{ prefix: '198.51.100.1', nextHop: '198.18.0.1' }]);
    expect(s.advertised.map((a) => a.prefix)).toEqual(['198.51.100.1/32']);
    await s.setAdvertisements([]);
    expect(s.history).toEqual([['198.51.100.1/32'], []]);
  });
  test('peer state changes are events; failWith makes calls fail', async () => {
    const s = createFakeSpeaker();
    await s.setPeers([{ address: '198.18.0.254', asn: 65000 }]);
    const it = s.peerEvents()[Symbol.asyncIterator]();
    s.setPeerState('198.18.0.254', 'established');
    expect((await it.next()).value).toMatchObject({
      address: '198.18.0.254',
      state: 'established',
      previousState: 'unknown',
    });
    expect((await s.peerStates())[0]?.negotiatedHoldTimeS).toBe(3);
    s.failWith(new BgpError('UNAVAILABLE', 'down', { retryable: true }));
    await expect(s.setAdvertisements([])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await s.close();
    expect((await it.next()).done).toBe(true);
  });
});
