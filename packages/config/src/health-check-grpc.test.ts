/** `type: grpc`, the gRPC Health Checking Protocol: its fields, defaults, refusals and description. */
import { describe, expect, test } from 'vitest';
import { describeHealthCheck } from './health-check.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';

type Raw = Record<string, unknown>;
const fleetWith = (hc: Raw, protocol = 'tcp'): Raw => ({
  hashSeed: 1,
  pools: [{ name: 'web', healthCheck: hc, members: [{ address: '198.18.0.21', port: 50051 }] }],
  vips: [{ address: '198.51.100.10', port: 443, protocol, pool: 'web' }],
});
const checkOf = (hc: Raw) => parseFleet(fleetWith(hc)).pools[0]?.healthCheck;

describe('health check - grpc', () => {
  test('alone: the server as a whole, cleartext, nothing added; service, tls, host and verifyCertificate are kept', () => {
    expect(checkOf({ type: 'grpc' })).toEqual({ type: 'grpc', intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 });
    expect(checkOf({ type: 'grpc', service: '' })).not.toHaveProperty('service');
    const full = {
      type: 'grpc',
      port: 9090,
      service: 'myapp.v1.Orders',
      tls: true,
      host: 'orders.example.com',
      verifyCertificate: true,
    };
    expect(checkOf(full)).toMatchObject(full);
    // Without tls, host is the :authority only, and there is no certificate to verify.
    expect(checkOf({ type: 'grpc', host: 'orders.example.com' })).toMatchObject({ host: 'orders.example.com' });
    expect(checkOf({ type: 'grpc', host: 'orders.example.com' })).not.toHaveProperty('verifyCertificate');
  });

  test.each<[string, Raw, string]>([
    [
      'a service that is no name',
      { service: 'my app' },
      'pools[0].healthCheck.service: "my app" is not a gRPC service name',
    ],
    ['a service that is no string', { service: 7 }, 'pools[0].healthCheck.service: 7 is not a gRPC service name'],
    ['a leading dot', { service: '.myapp.Orders' }, 'pools[0].healthCheck.service: ".myapp.Orders" is not a gRPC'],
    [
      'verifyCertificate without tls',
      { verifyCertificate: true },
      'pools[0].healthCheck.verifyCertificate: applies only to type https, or tcp or grpc with tls: true, not grpc without tls',
    ],
    ['a path', { path: '/healthz' }, 'pools[0].healthCheck.path: applies only to type http | https, not grpc'],
    [
      'expect',
      { expect: 'SERVING' },
      'pools[0].healthCheck.expect: applies only to type tcp | http | https | udp, not grpc',
    ],
  ])('refused, naming the field: %s', (_name, extra, message) => {
    expect(problems(fleetWith({ type: 'grpc', ...extra }))).toContainEqual(expect.stringContaining(message));
  });

  test('service on another type is refused; a grpc check of a UDP VIP on the member port is refused, with a port fine', () => {
    expect(problems(fleetWith({ type: 'http', service: 'myapp.Orders' }))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.service: applies only to type grpc, not http'),
    );
    expect(problems(fleetWith({ type: 'grpc' }, 'udp'))).toContainEqual(
      expect.stringContaining('pools[0].healthCheck.type: "grpc" probes TCP on the member\'s port but vips[0]'),
    );
    expect(() => parseFleet(fleetWith({ type: 'grpc', port: 9090 }, 'udp'))).not.toThrow();
  });

  test('describeHealthCheck says which service, and SERVING', () => {
    const hc = checkOf({ type: 'grpc', port: 9090, service: 'myapp.v1.Orders', tls: true });
    expect(hc && describeHealthCheck(hc)).toBe(
      'grpc tls port 9090 service myapp.v1.Orders expect SERVING, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
    const whole = checkOf({ type: 'grpc' });
    expect(whole && describeHealthCheck(whole)).toBe(
      'grpc server expect SERVING, every 2000 ms, timeout 1000 ms, rise 2, fall 4',
    );
  });
});
