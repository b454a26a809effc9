import { createSocket, type Socket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket as TcpSocket } from 'node:net';
import type { HealthCheck } from '@l4fleet/config';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMember } from './probe.js';

const check = (c: Partial<HealthCheck>): HealthCheck => ({
  type: 'tcp',
  intervalMs: 1000,
  timeoutMs: 300,
  rise: 1,
  fall: 1,
  ...c,
});
const portOf = (s: Server | HttpServer | Socket) =>
  ('address' in s ? (s.address() as AddressInfo) : ((s as Server).address() as AddressInfo)).port;

/** `p`, or a failure after `ms`: a probe that ignores its end would otherwise hold the test for its whole timeout. */
const settled = <T>(p: Promise<T>, ms = 5_000): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms).unref()),
  ]);

let tcp: Server;
let http: HttpServer;
let silentHttp: HttpServer;
let udp: Socket;
let closedPort: number;
/** Accepts and never answers, nor closes. */
let hung: Server;
/** Answers any request with 101 Switching Protocols. */
let switching: Server;
/** The request methods the http server saw, in order. */
const methods: string[] = [];

beforeAll(async () => {
  tcp = createServer((c) => c.end());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  http = createHttpServer((req, res) => {
    methods.push(req.method ?? '');
    res.writeHead(req.url === '/healthz' ? 200 : 503).end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  silentHttp = createHttpServer(() => undefined); // accepts, never answers
  await new Promise<void>((r) => silentHttp.listen(0, '127.0.0.1', r));
  udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => udp.send(Buffer.concat([Buffer.from('echo '), msg]), rinfo.port, rinfo.address));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  hung = createServer((c) => c.on('error', () => undefined));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  switching = createServer((c) => {
    c.on('error', () => undefined);
    c.once('data', () =>
      c.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
    );
  });
  await new Promise<void>((r) => switching.listen(0, '127.0.0.1', r));
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  closedPort = portOf(tmp);
  await new Promise((r) => tmp.close(r));
});

afterAll(async () => {
  tcp.close();
  hung.close();
  switching.close();
  http.closeAllConnections();
  http.close();
  silentHttp.closeAllConnections();
  silentHttp.close();
  udp.close();
});

describe('probe - real sockets on loopback', () => {
  test('tcp: a listening port is up, a closed one is refused', async () => {
    expect(await probeMember({ address: '127.0.0.1', port: portOf(tcp) }, check({}))).toMatchObject({ ok: true });
    expect(await probeMember({ address: '127.0.0.1', port: closedPort }, check({}))).toMatchObject({
      ok: false,
      reason: 'ECONNREFUSED',
    });
  });

  test('tcp: the check port overrides the member port', async () => {
    const r = await probeMember({ address: '127.0.0.1', port: closedPort }, check({ port: portOf(tcp) }));
    expect(r.ok).toBe(true);
  });

  test("a check's address (and port) replace the member's: the member's own closed port does not matter", async () => {
    const member = { address: '127.0.0.9', port: closedPort };
    expect(await probeMember(member, check({ port: portOf(tcp) }))).toMatchObject({ ok: false });
    expect(await probeMember(member, check({ address: '127.0.0.1', port: portOf(tcp) }))).toMatchObject({ ok: true });
    expect(await probeMember(member, check({ address: '127.0.0.1', port: closedPort }))).toMatchObject({
      ok: false,
      reason: 'ECONNREFUSED',
    });
  });

  test('http: the expected status is up, another status is down with the reason', async () => {
    const target = { address: '127.0.0.1', port: portOf(http) };
    expect(await probeMember(target, check({ type: 'http', path: '/healthz', expectStatus: 200 }))).toMatchObject({
      ok: true,
    });
    expect(await probeMember(target, check({ type: 'http', path: '/other', expectStatus: 200 }))).toMatchObject({
      ok: false,
      reason: 'status 503 (expected 200)',
    });
    expect(await probeMember(target, check({ type: 'http', path: '/other', expectStatus: 503 }))).toMatchObject({
      ok: true,
    });
  });

  test('http: a status range (expectStatus "200-399") takes any status in it', async () => {
    const target = { address: '127.0.0.1', port: portOf(http) };
    expect(await probeMember(target, check({ type: 'http', path: '/healthz', expectStatus: '200-399' }))).toMatchObject(
      {
        ok: true,
      },
    );
    expect(await probeMember(target, check({ type: 'http', path: '/other', expectStatus: '200-399' }))).toMatchObject({
      ok: false,
      reason: 'status 503 (expected 200-399)',
    });
    expect(await probeMember(target, check({ type: 'http', path: '/other', expectStatus: '500-599' }))).toMatchObject({
      ok: true,
    });
  });

  test('http: method HEAD is what the server receives (GET by default)', async () => {
    const at = { address: '127.0.0.1', port: portOf(http) };
    methods.length = 0;
    expect(await probeMember(at, check({ type: 'http', path: '/healthz', expectStatus: 200 }))).toMatchObject({
      ok: true,
    });
    expect(
      await probeMember(at, check({ type: 'http', path: '/healthz', expectStatus: 200, method: 'HEAD' })),
    ).toMatchObject({ ok: true });
    expect(await probeMember(at, check({ type: 'http', path: '/x', expectStatus: 200, method: 'HEAD' }))).toMatchObject(
      {
        ok: false,
        reason: 'status 503 (expected 200)',
      },
    );
    expect(methods).toEqual(['GET', 'HEAD', 'HEAD']);
  });

  test('http: no answer within the timeout is down', async () => {
    const started = Date.now();
    const r = await probeMember(
      { address: '127.0.0.1', port: portOf(silentHttp) },
      check({ type: 'http', timeoutMs: 200 }),
    );
    expect(r).toMatchObject({ ok: false, reason: 'timeout' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('udp: a reply is up; ICMP port unreachable or silence is down', async () => {
    expect(
      await probeMember({ address: '127.0.0.1', port: portOf(udp) }, check({ type: 'udp', payload: 'ping' })),
    ).toMatchObject({ ok: true });
    // Loopback answers a closed port with ICMP port unreachable at once: the connected socket's ECONNREFUSED, down
    // for certain (a silence would be a timeout, which this must not be).
    for (const type of ['udp', 'dns'] as const) {
      const r = await probeMember({ address: '127.0.0.1', port: closedPort }, check({ type, timeoutMs: 2_000 }));
      expect(r, type).toMatchObject({ ok: false, reason: 'ECONNREFUSED' });
    }
  });

  // The subnet broadcast of 127/8: connect() fails (EACCES, no SO_BROADCAST) as it does for an unreachable or
  // prohibited route. The probe ends down with that code; it used to send on the unconnected socket and throw
  // ERR_SOCKET_BAD_PORT outside any listener: an uncaught exception, which ended the agent.
  test.each(['udp', 'dns'] as const)(
    '%s: a destination connect() refuses is down with the code, no uncaught throw',
    async (type) => {
      const r = await probeMember({ address: '127.255.255.255', port: 9 }, check({ type, timeoutMs: 300 }));
      expect(r.ok).toBe(false);
      expect(r.reason).not.toBe('timeout');
      await new Promise((r) => setTimeout(r, 50)); // a throw a tick later would land here, as an unhandled error
    },
  );

  test('tcp: a probe stopped by its signal closes its socket at once (the server sees the close) and is "stopped"', async () => {
    // Accepts and never answers: only the timeout (50 minutes here) would end the probe.
    let serverSide: TcpSocket | undefined;
    const accepted = new Promise<void>((r) => {
      hung.once('connection', (c) => {
        serverSide = c;
        r();
      });
    });
    const ac = new AbortController();
    const probing = probeMember(
      { address: '127.0.0.1', port: portOf(hung) },
      check({ expect: 'never', timeoutMs: 3_000_000 }),
      { signal: ac.signal },
    );
    await accepted;
    const closed = new Promise<void>((r) => serverSide?.once('close', () => r()));
    ac.abort();
    expect(await settled(probing)).toMatchObject({ ok: false, reason: 'stopped' });
    await settled(closed);
  });

  test.each(['tcp', 'http', 'udp', 'dns', 'agent', 'grpc'] as const)(
    '%s: a signal aborted before the probe starts ends it at once, stopped',
    async (type) => {
      const ac = new AbortController();
      ac.abort();
      const r = await settled(
        probeMember({ address: '127.0.0.1', port: portOf(hung) }, check({ type, timeoutMs: 3_000_000 }), {
          signal: ac.signal,
        }),
      );
      expect(r).toMatchObject({ ok: false, reason: 'stopped' });
    },
  );

  test('http: 101 Switching Protocols (never asked for) is down at once with its status, not a timeout', async () => {
    const r = await settled(
      probeMember({ address: '127.0.0.1', port: portOf(switching) }, check({ type: 'http', timeoutMs: 3_000_000 })),
    );
    expect(r).toMatchObject({ ok: false, reason: 'status 101 (expected 200)' });
  });

  test('http: 101 is down even when a 1xx-inclusive expectStatus takes it: a 1xx is never a final answer', async () => {
    // A WebSocket-only endpoint has no body to hold expect or expectNot: 101 taken as up would pass it unread.
    const at = { address: '127.0.0.1', port: portOf(switching) };
    for (const c of [{ expect: 'ok' }, { expectNot: 'maintenance' }, {}]) {
      const r = await settled(
        probeMember(at, check({ type: 'http', expectStatus: '100-399', timeoutMs: 3_000_000, ...c })),
      );
      expect(r, JSON.stringify(c)).toMatchObject({ ok: false, reason: 'status 101 (expected 100-399)' });
    }
  });

  test('none: always up', async () => {
    expect(await probeMember({ address: '198.18.255.1', port: 9 }, check({ type: 'none' }))).toMatchObject({
      ok: true,
    });
  });
});

// health.sourceAddress is one address of one family: bound for a target of the other family, every connect failed
// EINVAL (a v4 source for an IPv6 member), so every such member went down on a dual-stack fleet.
describe('probe - the source address only for targets of its family', () => {
  let v6: Server;
  let v4: Server;
  const peers: string[] = [];
  beforeAll(async () => {
    v6 = createServer((c) => {
      c.on('error', () => undefined); // a probe that sent more than the server read resets it
      c.end('up\n');
    });
    await new Promise<void>((r) => v6.listen(0, '::1', r));
    v4 = createServer((c) => {
      peers.push(c.remoteAddress ?? '');
      c.end();
    });
    await new Promise<void>((r) => v4.listen(0, '127.0.0.1', r));
  });
  afterAll(() => {
    v6.close();
    v4.close();
  });

  test.each(['tcp', 'http', 'udp', 'dns', 'agent', 'grpc'] as const)(
    '%s: an IPv6 target with an IPv4 sourceAddress is probed from the kernel-chosen source',
    async (type) => {
      const r = await probeMember({ address: '::1', port: portOf(v6) }, check({ type, timeoutMs: 300 }), {
        sourceAddress: '127.0.0.1',
      });
      expect(r.reason ?? '').not.toMatch(/EINVAL|EAFNOSUPPORT/);
      if (type === 'tcp' || type === 'agent') expect(r).toMatchObject({ ok: true });
    },
  );

  test('tcp: an IPv4 target is probed from the IPv4 sourceAddress', async () => {
    const r = await probeMember({ address: '127.0.0.1', port: portOf(v4) }, check({}), { sourceAddress: '127.0.0.2' });
    expect(r).toMatchObject({ ok: true });
    expect(peers).toContain('127.0.0.2');
  });
});
