import { describe, expect, test } from 'vitest';
import { describeHealthCheck, isHostName, statusExpected } from './health-check.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';

type Raw = Record<string, unknown>;
const fleetWith = (hc: Raw, protocol = 'tcp'): Raw => ({
  hashSeed: 1,
  pools: [{ name: 'web', healthCheck: hc, members: [{ address: '198.18.0.21', port: 443 }] }],
  vips: [{ address: '198.51.100.10', port: 443, protocol, pool: 'web' }],
});

describe('health check - https', () => {
  test('https takes the http defaults and verifyCertificate false; host and verifyCertificate are kept', () => {
    const plain = parseFleet(fleetWith({ type: 'https' }));
    expect(plain.pools[0]?.healthCheck).toEqual({
      type: 'https',
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
      path: '/',
      expectStatus: 200,
      verifyCertificate: false,
    });
    const full = parseFleet(
      fleetWith({
        type: 'https',
        path: '/healthz',
        expectStatus: 204,
        host: 'www.example.com',
        verifyCertificate: true,
      }),
    );
    expect(full.pools[0]?.healthCheck).toMatchObject({
      type: 'https',
      path: '/healthz',
      expectStatus: 204,
      host: 'www.example.com',
      verifyCertificate: true,
    });
  });

  test('expectStatus takes a range LOW-HIGH (canonical text); statusExpected and describe use it', () => {
    const hc = parseFleet(fleetWith({ type: 'http', expectStatus: ' 200 - 399 ' })).pools[0]?.healthCheck;
    expect(hc?.expectStatus).toBe('200-399');
    expect([199, 200, 302, 399, 400].map((s) => statusExpected(hc ?? { expectStatus: 200 }, s))).toEqual([
      false,
      true,
      true,
      true,
      false,
    ]);
    expect([199, 200, 201].map((s) => statusExpected({ expectStatus: 200 }, s))).toEqual([false, true, false]);
    expect(describeHealthCheck(hc as NonNullable<typeof hc>)).toContain('GET / expect 200-399');
  });

  test('http takes a host too, and no verifyCertificate', () => {
    const f = parseFleet(fleetWith({ type: 'http', host: 'app.internal' }));
    expect(f.pools[0]?.healthCheck).toMatchObject({ type: 'http', host: 'app.internal' });
    expect(f.pools[0]?.healthCheck).not.toHaveProperty('verifyCertificate');
  });

  test.each<[string, Raw, string]>([
    [
      'verifyCertificate on http',
      { type: 'http', verifyCertificate: true },
      'pools[0].healthCheck.verifyCertificate: applies only to type https, or tcp or grpc with tls: true, not http',
    ],
    [
      'host on tcp',
      { type: 'tcp', host: 'a.example' },
      'pools[0].healthCheck.host: applies only to type http | https | grpc, or tcp with tls: true, not tcp without tls',
    ],
    [
      'path on tcp',
      { type: 'tcp', path: '/x' },
      'pools[0].healthCheck.path: applies only to type http | https, not tcp',
    ],
    [
      'verifyCertificate not a boolean',
      { type: 'https', verifyCertificate: 'yes' },
      'pools[0].healthCheck.verifyCertificate: "yes" is not true or false',
    ],
    [
      'host an IPv4 address',
      { type: 'https', host: '198.18.0.21' },
      'pools[0].healthCheck.host: "198.18.0.21" is not a host name (RFC 1123',
    ],
    [
      'host with a port',
      { type: 'https', host: 'a.example:8443' },
      'pools[0].healthCheck.host: "a.example:8443" is not a host name',
    ],
    [
      'host with CRLF (header injection)',
      { type: 'http', host: 'a\r\nX-Evil: 1' },
      'pools[0].healthCheck.host: "a\\r\\nX-Evil: 1" is not a host name',
    ],
    ['host not a string', { type: 'https', host: 7 }, 'pools[0].healthCheck.host: 7 is not a host name'],
    [
      'status range upside down',
      { type: 'http', expectStatus: '399-200' },
      'pools[0].healthCheck.expectStatus: "399-200" is not an HTTP status (100-599) or a range LOW-HIGH of them (e.g. "200-399")',
    ],
    ['status class text', { type: 'http', expectStatus: '2xx' }, 'pools[0].healthCheck.expectStatus: "2xx" is not'],
    [
      'status range past 599',
      { type: 'http', expectStatus: '200-600' },
      'pools[0].healthCheck.expectStatus: "200-600" is not',
    ],
    [
      'status range of 1xx only',
      { type: 'http', expectStatus: '100-199' },
      'pools[0].healthCheck.expectStatus: 100-199 is an informational (1xx) status',
    ],
    [
      'https 1xx status',
      { type: 'https', expectStatus: 101 },
      'pools[0].healthCheck.expectStatus: 101 is an informational (1xx) status',
    ],
    [
      'https path with a space',
      { type: 'https', path: '/a b' },
      'pools[0].healthCheck.path: "/a b" is not a request path',
    ],
  ])('refused: %s', (_name, hc, expected) => {
    expect(problems(fleetWith(hc))).toContainEqual(expect.stringContaining(expected));
  });

  test('an https check of a UDP VIP on the member port is refused; with a check port it is fine', () => {
    expect(problems(fleetWith({ type: 'https' }, 'udp'))).toContainEqual(
      expect.stringContaining(
        'pools[0].healthCheck.type: "https" probes TCP on the member\'s port but vips[0] 198.51.100.10:443/udp is udp',
      ),
    );
    expect(parseFleet(fleetWith({ type: 'https', port: 8443 }, 'udp')).pools[0]?.healthCheck.port).toBe(8443);
  });
});

describe('health check - payload and expect', () => {
  test('tcp takes payload and expect; without them it stays a connect check (no fields added)', () => {
    const hc = (raw: Raw) => parseFleet(fleetWith(raw)).pools[0]?.healthCheck;
    expect(hc({ type: 'tcp' })).toEqual({ type: 'tcp', intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 });
    expect(hc({ type: 'tcp', payload: 'PING\r\n', expect: '+PONG' })).toMatchObject({
      payload: 'PING\r\n',
      expect: '+PONG',
    });
    expect(hc({ type: 'tcp', payload: '' })).not.toHaveProperty('payload');
    expect(hc({ type: 'tcp', expect: '220 ' })).toMatchObject({ expect: '220 ' });
    expect(hc({ type: 'https', expect: '"status":"ok"' })).toMatchObject({ expect: '"status":"ok"' });
    expect(
      parseFleet(fleetWith({ type: 'udp', payload: 'q', expect: 'a' }, 'udp')).pools[0]?.healthCheck,
    ).toMatchObject({
      payload: 'q',
      expect: 'a',
    });
  });

  test.each<[string, Raw, string]>([
    [
      'expect on none',
      { type: 'none', expect: 'x' },
      'pools[0].healthCheck.expect: applies only to type tcp | http | https | udp, not none',
    ],
    [
      'payload on http',
      { type: 'http', payload: 'x' },
      'pools[0].healthCheck.payload: applies only to type tcp | udp | agent, not http',
    ],
    ['empty expect', { type: 'tcp', expect: '' }, 'pools[0].healthCheck.expect: "" is not a non-empty string'],
    [
      'expect not a string',
      { type: 'http', expect: 200 },
      'pools[0].healthCheck.expect: 200 is not a non-empty string',
    ],
    [
      'tcp payload over 4,096 bytes',
      { type: 'tcp', payload: 'x'.repeat(4097) },
      'pools[0].healthCheck.payload: 4097 bytes is more than the limit of 4096 (MAX_TCP_PAYLOAD_BYTES',
    ],
    [
      'expect over 1,024 bytes',
      { type: 'http', expect: 'é'.repeat(513) },
      'pools[0].healthCheck.expect: 1026 bytes is more than the limit of 1024 (MAX_EXPECT_BYTES)',
    ],
  ])('refused: %s', (_name, hc, expected) => {
    expect(problems(fleetWith(hc))).toContainEqual(expect.stringContaining(expected));
  });
});

describe('health check - tcp with tls', () => {
  test('tls: true adds a handshake; host and verifyCertificate apply as for https; tls: false is a plain tcp check', () => {
    const hc = (raw: Raw) => parseFleet(fleetWith(raw)).pools[0]?.healthCheck;
    expect(hc({ type: 'tcp', tls: true })).toEqual({
      type: 'tcp',
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
      tls: true,
      verifyCertificate: false,
    });
    const ldaps = {
      type: 'tcp',
      tls: true,
      host: 'ldap.example.com',
      verifyCertificate: true,
      payload: 'x',
      expect: 'y',
    };
    expect(hc(ldaps)).toMatchObject(ldaps);
    expect(hc({ type: 'tcp', tls: false })).toEqual({
      type: 'tcp',
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
    });
  });

  test.each<[string, Raw, string]>([
    ['tls on http', { type: 'http', tls: true }, 'pools[0].healthCheck.tls: applies only to type tcp | grpc, not http'],
    ['tls not a boolean', { type: 'tcp', tls: 'on' }, 'pools[0].healthCheck.tls: "on" is not true or false'],
    [
      'verifyCertificate on tcp without tls',
      { type: 'tcp', verifyCertificate: true },
      'pools[0].healthCheck.verifyCertificate: applies only to type https, or tcp or grpc with tls: true, not tcp without tls',
    ],
    [
      'host an address, with tls',
      { type: 'tcp', tls: true, host: '198.18.0.1' },
      'pools[0].healthCheck.host: "198.18.0.1" is not a host name',
    ],
  ])('refused: %s', (_name, hc, expected) => {
    expect(problems(fleetWith(hc))).toContainEqual(expect.stringContaining(expected));
  });
});

describe('health check - dns', () => {
  test('query is required; queryType A and expectRcode NOERROR by default; fits a UDP or a TCP VIP', () => {
    expect(parseFleet(fleetWith({ type: 'dns', query: 'www.example.com' }, 'udp')).pools[0]?.healthCheck).toEqual({
      type: 'dns',
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
      query: 'www.example.com',
      queryType: 'A',
      expectRcode: 'NOERROR',
    });
    const srv = { type: 'dns', query: '_sip._udp.example.com.', queryType: 'SRV', expectRcode: 'NXDOMAIN' };
    expect(parseFleet(fleetWith(srv)).pools[0]?.healthCheck).toMatchObject(srv);
    expect(parseFleet(fleetWith({ type: 'dns', query: '.', queryType: 'NS' })).pools[0]?.healthCheck.query).toBe('.');
  });

  test.each<[string, Raw, string]>([
    ['no query', { type: 'dns' }, 'pools[0].healthCheck.query: is required for type dns'],
    [
      'query with a space',
      { type: 'dns', query: 'a b.example' },
      'pools[0].healthCheck.query: "a b.example" is not a DNS name',
    ],
    [
      'query with an empty label',
      { type: 'dns', query: 'a..example' },
      'pools[0].healthCheck.query: "a..example" is not a DNS name',
    ],
    ['query label over 63', { type: 'dns', query: `${'a'.repeat(64)}.example` }, 'is not a DNS name'],
    [
      'unknown queryType',
      { type: 'dns', query: 'a.example', queryType: 'ANY' },
      'pools[0].healthCheck.queryType: "ANY" is not one of A | AAAA | CNAME | MX | NS | PTR | SOA | SRV | TXT',
    ],
    [
      'unknown expectRcode',
      { type: 'dns', query: 'a.example', expectRcode: 'SERVFAIL' },
      'pools[0].healthCheck.expectRcode: "SERVFAIL" is not one of NOERROR | NXDOMAIN',
    ],
    [
      'query on udp',
      { type: 'udp', query: 'a.example' },
      'pools[0].healthCheck.query: applies only to type dns, not udp',
    ],
    [
      'expect on dns',
      { type: 'dns', query: 'a.example', expect: 'x' },
      'pools[0].healthCheck.expect: applies only to type tcp | http | https | udp, not dns',
    ],
  ])('refused: %s', (_name, hc, expected) => {
    expect(problems(fleetWith(hc))).toContainEqual(expect.stringContaining(expected));
  });
});

describe('isHostName (RFC 1123, never an IP literal: RFC 6066 §3 forbids one as the TLS server name)', () => {
  test.each([
    ['www.example.com', true],
    ['a', true],
    ['xn--bcher-kva.example', true],
    ['trailing.dot.', true],
    ['1host.example', true],
    [`${'a'.repeat(63)}.example`, true],
    [`${'a'.repeat(64)}.example`, false],
    [`${'a.'.repeat(126)}ab`, false],
    ['198.18.0.21', false],
    ['2001:db8::1', false],
    ['-a.example', false],
    ['a-.example', false],
    ['a..example', false],
    ['', false],
    ['.', false],
    ['a_b.example', false],
  ])('%s -> %s', (name, ok) => {
    expect(isHostName(name)).toBe(ok);
  });
});

describe('health check - agent (HAProxy agent-check)', () => {
  test('agent takes a port (required) and an optional payload; no expect', () => {
    const hc = (raw: Raw) => parseFleet(fleetWith(raw)).pools[0]?.healthCheck;
    expect(hc({ type: 'agent', port: 9777 })).toEqual({
      type: 'agent',
      port: 9777,
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
    });
    expect(hc({ type: 'agent', port: 9777, payload: 'web\n' })?.payload).toBe('web\n');
    expect(problems(fleetWith({ type: 'agent' }))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.port: is required for type agent'),
    );
    expect(problems(fleetWith({ type: 'agent', port: 9777, expect: 'up' }))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.expect: applies only to type tcp | http | https | udp, not agent'),
    );
    // An agent check fits a UDP VIP too: it asks the agent over TCP on its own port.
    expect(parseFleet(fleetWith({ type: 'agent', port: 9777 }, 'udp')).pools[0]?.healthCheck.type).toBe('agent');
  });

  test('describeHealthCheck names the agent port and what it sends', () => {
    expect(
      describeHealthCheck(parseFleet(fleetWith({ type: 'agent', port: 9777, payload: 'web' })).pools[0]!.healthCheck),
    ).toBe('agent port 9777 send "web", every 2000 ms, timeout 1000 ms, rise 2, fall 4');
  });
});

describe('health check - method (GET or HEAD)', () => {
  test('HEAD is kept, GET is the default and not written back; HEAD with expect, or on a non-http check, is refused', () => {
    const hc = (raw: Raw) => parseFleet(fleetWith(raw)).pools[0]?.healthCheck;
    expect(hc({ type: 'http', method: 'HEAD' })?.method).toBe('HEAD');
    expect(hc({ type: 'https', method: 'GET' })).not.toHaveProperty('method');
    expect(hc({ type: 'http' })).not.toHaveProperty('method');
    expect(describeHealthCheck(hc({ type: 'http', method: 'HEAD', path: '/healthz' })!)).toBe(
      'http HEAD /healthz expect 200, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
    expect(problems(fleetWith({ type: 'http', method: 'HEAD', expect: 'ok' }))).toContainEqual(
      'pools[0].healthCheck.expect: a HEAD request gets no body: use method GET with expect',
    );
    expect(problems(fleetWith({ type: 'http', method: 'POST' }))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.method: "POST" is not one of GET | HEAD'),
    );
    expect(problems(fleetWith({ type: 'tcp', method: 'HEAD' }))).toContainEqual(
      'pools[0].healthCheck.method: applies only to type http | https, not tcp',
    );
  });
});

describe('health check - address (F5 alias address, HAProxy addr)', () => {
  const hc = (raw: Raw) => parseFleet(fleetWith(raw)).pools[0]?.healthCheck;

  test('an address of its own is kept canonical, with its port; absent, nothing is written back', () => {
    expect(hc({ type: 'tcp', address: '198.18.3.50', port: 5432 })).toEqual({
      type: 'tcp',
      address: '198.18.3.50',
      port: 5432,
      intervalMs: 2000,
      timeoutMs: 1000,
      rise: 2,
      fall: 4,
    });
    expect(hc({ type: 'http', address: '2001:DB8:0:0::50', port: 8080 })?.address).toBe('2001:db8::50');
    expect(hc({ type: 'tcp' })).not.toHaveProperty('address');
  });

  test('refused, naming the field and the value: not an address, no port, type none, unroutable, loopback, a VIP', () => {
    expect(problems(fleetWith({ type: 'tcp', address: 'db.example', port: 5432 }))).toContainEqual(
      'pools[0].healthCheck.address: "db.example" is not an IPv4 or IPv6 address',
    );
    expect(problems(fleetWith({ type: 'tcp', address: '198.18.3.50' }))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.port: is required with address'),
    );
    expect(problems(fleetWith({ type: 'none', address: '198.18.3.50', port: 1 }))).toContainEqual(
      'pools[0].healthCheck.address: applies only to type tcp | http | https | udp | dns | agent | grpc, not none',
    );
    expect(problems(fleetWith({ type: 'tcp', address: '169.254.1.1', port: 1 }))).toContainEqual(
      'pools[0].healthCheck.address: "169.254.1.1" is a link-local address (169.254.0.0/16, not routed)',
    );
    expect(problems(fleetWith({ type: 'tcp', address: '127.0.0.1', port: 1 }))).toContainEqual(
      'pools[0].healthCheck.address: "127.0.0.1" is a loopback address: every node would probe itself, not the pool\'s',
    );
    expect(problems(fleetWith({ type: 'tcp', address: '198.51.100.10', port: 1 }))).toContainEqual(
      'pools[0].healthCheck.address: "198.51.100.10" is a VIP of this fleet: the nodes would probe themselves, not the pool',
    );
  });

  test('describeHealthCheck says where it probes', () => {
    expect(describeHealthCheck(hc({ type: 'tcp', address: '198.18.3.50', port: 5432 })!)).toBe(
      'tcp at 198.18.3.50 port 5432, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
  });
});

describe('health check - expectNot (F5 receive disable string, HAProxy expect !)', () => {
  const hc = (raw: Raw, protocol = 'tcp') => parseFleet(fleetWith(raw, protocol)).pools[0]?.healthCheck;

  test('kept for http, https and udp, beside expect or alone; absent, nothing is written back', () => {
    expect(hc({ type: 'http', path: '/healthz', expectNot: 'MAINTENANCE' })?.expectNot).toBe('MAINTENANCE');
    expect(hc({ type: 'https', expect: 'ok', expectNot: 'MAINT' })).toMatchObject({ expect: 'ok', expectNot: 'MAINT' });
    expect(hc({ type: 'udp', expectNot: 'busy' }, 'udp')?.expectNot).toBe('busy');
    expect(hc({ type: 'http' })).not.toHaveProperty('expectNot');
  });

  test('refused, naming the field: tcp (no end to read to), HEAD, empty, over the bound, part of expect', () => {
    expect(problems(fleetWith({ type: 'tcp', expectNot: 'x' }))).toContainEqual(
      'pools[0].healthCheck.expectNot: applies only to type http | https | udp, not tcp',
    );
    expect(problems(fleetWith({ type: 'http', method: 'HEAD', expectNot: 'x' }))).toContainEqual(
      'pools[0].healthCheck.expectNot: a HEAD request gets no body: use method GET with expectNot',
    );
    expect(problems(fleetWith({ type: 'http', expectNot: '' }))).toContainEqual(
      'pools[0].healthCheck.expectNot: "" is not a non-empty string',
    );
    expect(problems(fleetWith({ type: 'http', expectNot: 'x'.repeat(70_000) }))).toContainEqual(
      expect.stringMatching(
        /^pools\[0\]\.healthCheck\.expectNot: 70000 bytes is more than the limit of \d+ \(MAX_EXPECT_BYTES\)$/,
      ),
    );
    expect(problems(fleetWith({ type: 'http', expect: 'status ok', expectNot: 'ok' }))).toContainEqual(
      'pools[0].healthCheck.expectNot: "ok" is part of expect "status ok": a reply that passes would always contain it, so the check could never pass',
    );
  });

  test('describeHealthCheck says what the body must not contain', () => {
    expect(describeHealthCheck(hc({ type: 'http', path: '/healthz', expect: 'ok', expectNot: 'MAINT' })!)).toBe(
      'http GET /healthz expect 200 body contains "ok" body without "MAINT", every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
  });
});
