/**
 * The `grpc` check against real gRPC servers (test/support/grpc-health.ts: @grpc/grpc-js, the health service loaded
 * from health.proto by @grpc/proto-loader, so the messages are encoded by protobuf.js, not by the probe's own code),
 * cleartext and TLS, on loopback.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HealthCheck } from '@l4fleet/config';
import { makeCerts } from '@l4fleet/daemons';
import { type GrpcHealthServer, startGrpcHealthServer } from '@l4fleet/test-support/grpc-health';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMember } from './probe.js';
import { healthCheckRequest, probeGrpcTestHooks, servingStatus } from './probe-grpc.js';
import { MAX_PROBE_REPLY_BYTES } from './reply-match.js';

const check = (c: Partial<HealthCheck> = {}): HealthCheck => ({
  type: 'grpc',
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 1,
  fall: 1,
  ...c,
});

let dir: string;
let ca: Buffer;
const STATUSES = [
  ['', 'SERVING'],
  ['myapp.v1.Orders', 'SERVING'],
  ['myapp.v1.Billing', 'NOT_SERVING'],
] as const;
let plain: GrpcHealthServer;
let tls: GrpcHealthServer;
/** A gRPC server without the health service. */
let bare: GrpcHealthServer;
let http1: HttpServer;
let silent: Server;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-probe-grpc-'));
  await makeCerts(dir);
  ca = await readFile(join(dir, 'ca.pem'));
  const [key, cert] = await Promise.all([readFile(join(dir, 'server.key')), readFile(join(dir, 'server.pem'))]);
  plain = await startGrpcHealthServer({ statuses: STATUSES });
  tls = await startGrpcHealthServer({ statuses: STATUSES, tls: { key, cert } });
  bare = await startGrpcHealthServer({ withHealth: false });
  http1 = createHttpServer((_req, res) => res.writeHead(200).end('ok'));
  await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
  silent = createServer(() => undefined); // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  await Promise.all([plain, tls, bare].map((s) => s?.close()));
  http1?.closeAllConnections();
  http1?.close();
  silent?.close();
  await rm(dir, { recursive: true, force: true });
});

const member = (port: number) => ({ address: '127.0.0.1', port });

describe('probe - grpc (gRPC Health Checking Protocol)', () => {
  test('SERVING for the server as a whole and for a named service: up', async () => {
    expect(await probeMember(member(plain.port), check())).toEqual({ ok: true, latencyMs: expect.any(Number) });
    expect(await probeMember(member(plain.port), check({ service: 'myapp.v1.Orders' }))).toMatchObject({ ok: true });
  });

  test('NOT_SERVING: down, named; a service the server does not know: down with what the code means', async () => {
    expect(await probeMember(member(plain.port), check({ service: 'myapp.v1.Billing' }))).toMatchObject({
      ok: false,
      reason: 'serving status NOT_SERVING',
    });
    expect(await probeMember(member(plain.port), check({ service: 'myapp.v1.Gone' }))).toMatchObject({
      ok: false,
      reason: 'grpc-status 5 (NOT_FOUND: the server does not know the service): unknown service myapp.v1.Gone',
    });
  });

  test('the state changes at the server: the next probe follows', async () => {
    plain.statuses.set('myapp.v1.Orders', 'NOT_SERVING');
    try {
      expect(await probeMember(member(plain.port), check({ service: 'myapp.v1.Orders' }))).toMatchObject({ ok: false });
    } finally {
      plain.statuses.set('myapp.v1.Orders', 'SERVING');
    }
    expect(await probeMember(member(plain.port), check({ service: 'myapp.v1.Orders' }))).toMatchObject({ ok: true });
  });

  test('a gRPC server without the health service, an HTTP/1 server, a closed port, a silent one: each down, named', async () => {
    expect(await probeMember(member(bare.port), check())).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^grpc-status 12 \(UNIMPLEMENTED: the server has no grpc\.health\.v1 service\)/),
    });
    const h1 = await probeMember(member((http1.address() as AddressInfo).port), check());
    expect(h1.ok).toBe(false);
    expect(h1.reason).toMatch(/^ERR_HTTP2_ERROR \(not an HTTP\/2 server/);
    const tmp = createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    const closed = (tmp.address() as AddressInfo).port;
    await new Promise((r) => tmp.close(r));
    expect(await probeMember(member(closed), check())).toMatchObject({ ok: false, reason: 'ECONNREFUSED' });
    expect(await probeMember(member((silent.address() as AddressInfo).port), check({ timeoutMs: 300 }))).toMatchObject({
      ok: false,
      reason: 'timeout',
    });
  });

  test('tls: up without verifying; with verifyCertificate, the test CA and host localhost up, Node roots alone down', async () => {
    expect(await probeMember(member(tls.port), check({ tls: true }))).toEqual({
      ok: true,
      latencyMs: expect.any(Number),
    });
    expect(
      await probeMember(member(tls.port), check({ tls: true, verifyCertificate: true, host: 'localhost' }), { ca }),
    ).toMatchObject({ ok: true });
    const untrusted = await probeMember(
      member(tls.port),
      check({ tls: true, verifyCertificate: true, host: 'localhost' }),
    );
    expect(untrusted).toMatchObject({ ok: false, reason: expect.stringMatching(/CERT|SELF_SIGNED|UNABLE/) });
    // Cleartext HTTP/2 to a TLS port: down.
    expect((await probeMember(member(tls.port), check({ timeoutMs: 500 }))).ok).toBe(false);
  });

  test('grpc-message: percent-decoded; a raw % from a server that does not encode it is shown as sent, not a crash', async () => {
    // A trailers-only reply (grpc-status in the headers) whose grpc-message is whatever the server wrote.
    let sent = '';
    const h2: Http2Server = createHttp2Server();
    h2.on('stream', (stream) => {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': sent },
        { endStream: true },
      );
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      const port = (h2.address() as AddressInfo).port;
      sent = 'load%20100%25';
      expect(await probeMember(member(port), check())).toMatchObject({
        ok: false,
        reason: 'grpc-status 14 (UNAVAILABLE): load 100%',
      });
      sent = 'load 100%';
      expect(await probeMember(member(port), check())).toMatchObject({
        ok: false,
        reason: 'grpc-status 14 (UNAVAILABLE): load 100%',
      });
    } finally {
      await new Promise((r) => h2.close(r));
    }
  });

  /** A SERVING reply with these trailers, from a real HTTP/2 server, for each set of trailers: the probe's results. */
  const probeWithTrailers = async (trailers: Record<string, string>[]) => {
    let sent: Record<string, string> = {};
    const h2: Http2Server = createHttp2Server();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(sent));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, 1])); // SERVING
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      const port = (h2.address() as AddressInfo).port;
      const out = [];
      for (const t of trailers) {
        sent = t;
        out.push(await probeMember(member(port), check()));
      }
      return out;
    } finally {
      await new Promise((r) => h2.close(r));
    }
  };

  test('grpc-status that is not a decimal code ("", "0x0", "+0", "0.0"): down, named, never read as 0 (OK)', async () => {
    const values = ['', '0x0', '+0', '0.0', '-0', `0${'x'.repeat(500)}`];
    const [ok, ...results] = await probeWithTrailers(['0', ...values].map((v) => ({ 'grpc-status': v })));
    expect(ok).toMatchObject({ ok: true }); // the same reply with grpc-status 0: up
    results.forEach((r, i) => {
      expect(r, values[i]).toMatchObject({ ok: false });
      expect(r.reason, values[i]).toMatch(/^grpc-status ".*" is not a status code$/);
    });
    expect(results[1]?.reason).toBe('grpc-status "0x0" is not a status code');
    expect((results[5]?.reason ?? '').length).toBeLessThan(100); // cut
  });

  test('a reply dripped one byte per DATA frame is read whole: SERVING is up, NOT_SERVING down', async () => {
    let status = 1;
    const h2: Http2Server = createHttp2Server();
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      const bytes = [0, 0, 0, 0, 2, 0x08, status];
      const next = (): void => {
        const b = bytes.shift();
        if (b === undefined) stream.end();
        else stream.write(Buffer.from([b]), next);
      };
      next();
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      const port = (h2.address() as AddressInfo).port;
      expect(await probeMember(member(port), check())).toMatchObject({ ok: true });
      status = 2;
      expect(await probeMember(member(port), check())).toMatchObject({
        ok: false,
        reason: 'serving status NOT_SERVING',
      });
    } finally {
      await new Promise((r) => h2.close(r));
    }
  });

  // Past the cap, every further DATA frame of a server that keeps sending was kept as an empty chunk: the list grew
  // for as long as the server sent, though no byte of it was read.
  test('a reply past MAX_PROBE_REPLY_BYTES in small frames: the chunks kept stop at the cap, none empty', async () => {
    const h2: Http2Server = createHttp2Server();
    const FRAME = 4_096;
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      let left = (2 * MAX_PROBE_REPLY_BYTES) / FRAME;
      const next = (): void => {
        left -= 1;
        if (left < 0) stream.end();
        else stream.write(Buffer.alloc(FRAME, 1), next);
      };
      next();
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    const kept: number[][] = [];
    probeGrpcTestHooks.onBodyKept = (sizes) => void kept.push([...sizes]);
    try {
      const port = (h2.address() as AddressInfo).port;
      await probeMember(member(port), check({ timeoutMs: 5_000 }));
      expect(kept).toHaveLength(1);
      const sizes = kept[0] ?? [];
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(MAX_PROBE_REPLY_BYTES);
      expect(sizes.filter((n) => n === 0)).toEqual([]);
    } finally {
      delete probeGrpcTestHooks.onBodyKept;
      await new Promise((r) => h2.close(r));
    }
  });

  test('grpc-message with terminal escapes and a line end (percent-encoded ESC, BEL, C1 CSI, LF): escaped, one line', async () => {
    const [r] = await probeWithTrailers([
      { 'grpc-status': '14', 'grpc-message': '%1B]0;owned%07%1B[2J%C2%9B2J%0Agone  now' },
    ]);
    expect(r).toMatchObject({
      ok: false,
      reason: 'grpc-status 14 (UNAVAILABLE): \\u001b]0;owned\\u0007\\u001b[2J\\u009b2J\\u000agone  now',
    });
    expect(r?.reason).not.toMatch(/\p{Cc}/u);
  });

  test('messages: the request as protobuf encodes it; replies with other fields, none, or broken bytes', () => {
    expect([...healthCheckRequest('')]).toEqual([0, 0, 0, 0, 0]);
    expect([...healthCheckRequest('a.B')]).toEqual([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x2e, 0x42]);
    const reply = (...bytes: number[]) => Buffer.from([0, 0, 0, 0, bytes.length, ...bytes]);
    expect(servingStatus(reply(0x08, 1))).toBe(1);
    expect(servingStatus(reply())).toBe(0); // proto3 leaves out UNKNOWN
    expect(servingStatus(reply(0x12, 2, 0x61, 0x62, 0x08, 2))).toBe(2); // an unknown field 2 first, skipped
    expect(servingStatus(reply(0x08))).toBe('a malformed reply');
    expect(servingStatus(Buffer.from([1, 0, 0, 0, 0]))).toBe('a compressed reply (none was offered)');
    expect(servingStatus(Buffer.from([0, 0, 0, 0, 9, 0x08]))).toBe('a truncated reply');
  });

  test('messages: varints are up to 10 bytes (64 bits): an unknown uint64 field is skipped, a negative enum read as such', () => {
    const reply = (...bytes: number[]) => Buffer.from([0, 0, 0, 0, bytes.length, ...bytes]);
    const max64 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]; // 2^64 - 1, or -1 as an int32/enum
    expect(servingStatus(reply(0x18, ...max64, 0x08, 1))).toBe(1); // field 3, a uint64, before the status
    expect(servingStatus(reply(0x08, 1, 0x18, ...max64))).toBe(1); // and after it
    expect(servingStatus(reply(0x08, ...max64))).toBe(-1); // an enum value the server's proto has and ours not
    expect(servingStatus(reply(0x08, 0x82, 0x80, 0x80, 0x80, 0x10))).toBe(2); // 2^32 + 2: an int32 keeps the low 32 bits
    expect(servingStatus(reply(0x18, ...max64.slice(0, 9), 0x81, 0x01))).toBe('a malformed reply'); // 11 bytes
  });
});
