/**
 * https and Host probes against real TLS servers on loopback, with certificates openssl makes for the test: a
 * server certificate for 127.0.0.1 and localhost signed by a test CA (makeCerts, as etcd's TLS tests use).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import type { HealthCheck } from '@l4fleet/config';
import { makeCerts } from '@l4fleet/daemons';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probeMember } from './probe.js';

const check = (c: Partial<HealthCheck>): HealthCheck => ({
  type: 'https',
  path: '/healthz',
  expectStatus: 200,
  intervalMs: 2000,
  timeoutMs: 1500,
  rise: 1,
  fall: 1,
  ...c,
});

interface Seen {
  readonly host: string | undefined;
  readonly servername: string | false | null | undefined;
}

let dir: string;
let ca: Buffer;
let https: HttpsServer;
let http: HttpServer;
/** A Redis-like service over TLS from the first byte: PING answered +PONG; it records the SNI it was sent. */
let tlsRedis: TlsServer;
const tlsNames: (string | false | null | undefined)[] = [];
const seen: Seen[] = [];
const portOf = (s: HttpServer | HttpsServer) => (s.address() as AddressInfo).port;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-probe-https-'));
  await makeCerts(dir);
  ca = await readFile(join(dir, 'ca.pem'));
  const [key, cert] = await Promise.all([readFile(join(dir, 'server.key')), readFile(join(dir, 'server.pem'))]);
  https = createHttpsServer({ key, cert }, (req, res) => {
    seen.push({ host: req.headers.host, servername: (req.socket as TLSSocket).servername });
    res.writeHead(req.url === '/healthz' ? 200 : 503).end();
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  http = createHttpServer((req, res) => {
    seen.push({ host: req.headers.host, servername: undefined });
    res.writeHead(200).end();
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  tlsRedis = createTlsServer({ key, cert }, (c) => {
    tlsNames.push(c.servername);
    c.on('error', () => undefined); // a probe closes without a goodbye
    c.on('data', (d) => c.write(d.toString().startsWith('PING') ? '+PONG\r\n' : '-ERR\r\n'));
  });
  tlsRedis.on('tlsClientError', () => undefined); // the plain-tcp probe below never handshakes
  await new Promise<void>((r) => tlsRedis.listen(0, '127.0.0.1', r));
}, 30_000);

afterAll(async () => {
  https?.closeAllConnections();
  https?.close();
  http?.closeAllConnections();
  http?.close();
  tlsRedis?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const lastSeen = (): Seen | undefined => seen[seen.length - 1];

describe('probe - https against a real TLS server', () => {
  test('without verifyCertificate any certificate serves: up; no SNI for an address, Host is address:port', async () => {
    const target = { address: '127.0.0.1', port: portOf(https) };
    expect(await probeMember(target, check({ verifyCertificate: false }))).toMatchObject({ ok: true });
    expect(lastSeen()).toEqual({ host: `127.0.0.1:${portOf(https)}`, servername: false });
    expect(await probeMember(target, check({ path: '/other' }))).toMatchObject({
      ok: false,
      reason: 'status 503 (expected 200)',
    });
  });

  test('verifyCertificate: trusted roots and the address in the certificate are up; Node roots alone are not', async () => {
    const target = { address: '127.0.0.1', port: portOf(https) };
    expect(await probeMember(target, check({ verifyCertificate: true }), { ca })).toMatchObject({ ok: true });
    // The test CA is in no public store: the chain does not verify.
    expect(await probeMember(target, check({ verifyCertificate: true }))).toMatchObject({
      ok: false,
      reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  test('host is the SNI and Host header, and the name the certificate must carry', async () => {
    const target = { address: '127.0.0.1', port: portOf(https) };
    expect(await probeMember(target, check({ verifyCertificate: true, host: 'localhost' }), { ca })).toMatchObject({
      ok: true,
    });
    expect(lastSeen()).toEqual({ host: `localhost:${portOf(https)}`, servername: 'localhost' });
    expect(
      await probeMember(target, check({ verifyCertificate: true, host: 'www.example.com' }), { ca }),
    ).toMatchObject({ ok: false, reason: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    // Unverified, a name the certificate lacks still serves (the check asks "does it serve").
    expect(await probeMember(target, check({ host: 'www.example.com' }))).toMatchObject({ ok: true });
    expect(lastSeen()).toEqual({ host: `www.example.com:${portOf(https)}`, servername: 'www.example.com' });
  });

  test('https to a plain HTTP port is down (no TLS handshake)', async () => {
    const r = await probeMember({ address: '127.0.0.1', port: portOf(http) }, check({}));
    expect(r.ok).toBe(false);
    expect(['EPROTO', 'ECONNRESET']).toContain(r.reason);
  });

  test('http: host sets the Host header', async () => {
    const target = { address: '127.0.0.1', port: portOf(http) };
    expect(await probeMember(target, check({ type: 'http', host: 'app.internal' }))).toMatchObject({ ok: true });
    expect(lastSeen()?.host).toBe(`app.internal:${portOf(http)}`);
  });

  test('tcp with tls: the handshake, then payload and expect inside TLS; host and verifyCertificate as for https', async () => {
    const target = { address: '127.0.0.1', port: (tlsRedis.address() as AddressInfo).port };
    const tcp = (c: Partial<HealthCheck>) =>
      check({ type: 'tcp', tls: true, payload: 'PING\r\n', expect: '+PONG', ...c });
    expect(await probeMember(target, tcp({}))).toMatchObject({ ok: true });
    expect(tlsNames.at(-1)).toBe(false);
    expect(await probeMember(target, tcp({ verifyCertificate: true, host: 'localhost' }), { ca })).toMatchObject({
      ok: true,
    });
    expect(tlsNames.at(-1)).toBe('localhost');
    expect(await probeMember(target, tcp({ verifyCertificate: true }))).toMatchObject({
      ok: false,
      reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    // Plain tcp to a TLS port connects (a connect check) but a payload answered in clear text is never read.
    const plain = await probeMember(
      target,
      check({ type: 'tcp', payload: 'PING\r\n', expect: '+PONG', timeoutMs: 500 }),
    );
    expect(plain.ok).toBe(false);
    // tls to a plain HTTP port: no handshake.
    const r = await probeMember({ address: '127.0.0.1', port: portOf(http) }, check({ type: 'tcp', tls: true }));
    expect(r.ok).toBe(false);
    expect(['ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO', 'ECONNRESET']).toContain(r.reason);
  });
});
