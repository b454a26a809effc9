/**
 * https health checks end to end: agent.yaml's `health.caFile` read by runAgent (what `l4fleet agent` runs), a fleet
 * in a real etcd, real TLS servers on loopback with certificates openssl makes, and the agent's decisions. The
 * speaker is the fake one and the data plane the recording one: nothing is announced or forwarded.
 *
 * Servers: `good` (a certificate for 127.0.0.1 and localhost from the CA in health.caFile), `stranger` (the same
 * names from another CA) and `plain` (HTTP, no TLS). Pools check them three ways: verified with host localhost,
 * unverified, and verified with a host the certificate lacks.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { RunningAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { makeCerts } from '@l4fleet/daemons';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { runRecordingAgent } from '@l4fleet/test-support/etcd-agents';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const PREFIX = `/health-https-${process.pid}`;
const CHECK = { intervalMs: 300, timeoutMs: 250, rise: 1, fall: 1 };

let dir: string;
let etcd: EtcdHandle | undefined;
let admin: EtcdFleetStore | undefined;
let running: RunningAgent | undefined;
const servers: (HttpServer | HttpsServer)[] = [];
const logLines: Record<string, unknown>[] = [];

async function listen<S extends HttpServer | HttpsServer>(s: S): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

async function tlsServer(certDir: string): Promise<number> {
  const [key, cert] = await Promise.all([readFile(join(certDir, 'server.key')), readFile(join(certDir, 'server.pem'))]);
  return listen(createHttpsServer({ key, cert }, (_req, res) => res.writeHead(200).end()));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-health-https-'));
  const ours = join(dir, 'ours');
  const theirs = join(dir, 'theirs');
  await Promise.all([mkdir(ours), mkdir(theirs)]);
  await Promise.all([makeCerts(ours), makeCerts(theirs)]);
  const ports = {
    good: await tlsServer(ours),
    stranger: await tlsServer(theirs),
    plain: await listen(createHttpServer((_req, res) => res.writeHead(200).end())),
  };
  const members = (names: (keyof typeof ports)[]) =>
    names.map((name) => ({ name, address: '127.0.0.1', port: ports[name] }));
  const fleet = parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'verified',
        healthCheck: { type: 'https', verifyCertificate: true, host: 'localhost', ...CHECK },
        members: members(['good', 'stranger', 'plain']),
      },
      { name: 'unverified', healthCheck: { type: 'https', ...CHECK }, members: members(['good', 'stranger', 'plain']) },
      {
        name: 'wrongname',
        healthCheck: { type: 'https', verifyCertificate: true, host: 'www.example.com', ...CHECK },
        members: members(['good']),
      },
    ],
    vips: [
      { address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'verified' },
      { address: '198.51.100.11', port: 443, protocol: 'tcp', pool: 'unverified' },
      { address: '198.51.100.12', port: 443, protocol: 'tcp', pool: 'wrongname' },
    ],
  });
  etcd = await startEtcd();
  const logger = pino({ level: 'silent' });
  admin = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: PREFIX, logger });
  await admin.apply(fleet, { expectRevision: 0 });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line));
      done();
    },
  });
  running = await runRecordingAgent(etcd.endpoints, PREFIX, pino({ level: 'info' }, sink), {
    health: { caFile: join(ours, 'ca.pem') },
  });
}, 60_000);

afterAll(async () => {
  await running?.close();
  await admin?.close();
  await etcd?.stop();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The reason the agent logged when it last saw `member` (pool/name) change, from its memberObserved lines. */
const reasonOf = (member: string): unknown =>
  logLines.filter((l) => l.event === 'memberObserved' && l.member === member).at(-1)?.reason;

describe('https health checks against real TLS servers, decided through etcd', () => {
  test('each member is decided by what its certificate proves, and the reason names the TLS failure', async () => {
    const expected = {
      'verified/good': 'up',
      'verified/stranger': 'down',
      'verified/plain': 'down',
      'unverified/good': 'up',
      'unverified/stranger': 'up',
      'unverified/plain': 'down',
      'wrongname/good': 'down',
    };
    const decided = await eventually(
      'every https member decided',
      () => running?.agent.status().decided ?? {},
      (d) => Object.entries(expected).every(([k, v]) => d[k] === v),
      15_000,
      100,
    );
    expect(decided).toMatchObject(expected);
    // The aggregator wrote these to etcd: the operator's client reads the same.
    const state = await admin?.getDecided();
    expect(Object.fromEntries(state?.decided ?? [])).toMatchObject(expected);
    expect(reasonOf('verified/stranger')).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(['EPROTO', 'ECONNRESET']).toContain(reasonOf('verified/plain'));
    expect(reasonOf('wrongname/good')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  test("the node's status record in etcd names why it sees each member down (what describe vip prints)", async () => {
    const failures = await eventually(
      'probeFailures in the status record',
      async () => (await admin?.listNodes())?.[0]?.status?.probeFailures ?? {},
      (f) => Object.keys(f).length === 4,
      10_000,
      100,
    );
    expect(Object.keys(failures).sort()).toEqual([
      'unverified/plain',
      'verified/plain',
      'verified/stranger',
      'wrongname/good',
    ]);
    expect(failures['verified/stranger']?.reason).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(failures['wrongname/good']?.reason).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(Date.now() - (failures['wrongname/good']?.sinceMs ?? 0)).toBeLessThan(60_000);
  });
});
