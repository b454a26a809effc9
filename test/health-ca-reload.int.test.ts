/**
 * A health CA rotated in place, applied by a reload (SIGHUP's path: RunningAgent.reload) without a restart: the real
 * agent (runAgent) over a real etcd probes a real HTTPS member with `verifyCertificate: true`. The member's
 * certificate is signed by a second CA; with the first CA in `health.caFile` the member is decided down (the chain does
 * not verify), the second CA written over the same file and a reload take it up, and a file that is no CA refuses the
 * reload with the probes keeping the last good roots. Certificates from openssl (makeCerts, as the https probe tests).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { makeCerts } from '@l4fleet/daemons';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import {
  decidedAs,
  probeFailuresNaming,
  recordingAgentConfig,
  runRecordingAgent,
} from '@l4fleet/test-support/etcd-agents';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const PREFIX = `/health-ca-reload-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'l4fleet-health-ca-'));
const caFile = join(dir, 'health-ca.pem');
const config = () => recordingAgentConfig(etcd?.endpoints ?? [], PREFIX, { health: { caFile } });

let etcd: EtcdHandle | undefined;
let admin: EtcdFleetStore | undefined;
let running: RunningAgent | undefined;
let member: HttpsServer | undefined;
let caOne: Buffer;
let caTwo: Buffer;

beforeAll(async () => {
  for (const d of ['one', 'two']) {
    mkdirSync(join(dir, d));
    await makeCerts(join(dir, d));
  }
  caOne = readFileSync(join(dir, 'one', 'ca.pem'));
  caTwo = readFileSync(join(dir, 'two', 'ca.pem'));
  // The member's certificate (127.0.0.1, localhost) is signed by the second CA.
  member = createHttpsServer(
    { key: readFileSync(join(dir, 'two', 'server.key')), cert: readFileSync(join(dir, 'two', 'server.pem')) },
    (_req, res) => res.writeHead(200).end('ok'),
  );
  await new Promise<void>((r) => member?.listen(0, '127.0.0.1', r));
  const port = (member.address() as AddressInfo).port;
  writeFileSync(caFile, caOne);
  etcd = await startEtcd();
  const logger = pino({ level: 'silent' });
  admin = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: PREFIX, logger });
  const check = { intervalMs: 300, timeoutMs: 250, rise: 1, fall: 1 };
  await admin.apply(
    parseFleet({
      hashSeed: 1,
      pools: [
        {
          name: 'web',
          healthCheck: { type: 'https', path: '/', verifyCertificate: true, ...check },
          members: [{ name: 'a', address: '127.0.0.1', port }],
        },
      ],
      vips: [{ address: '198.51.100.10', port, protocol: 'tcp', pool: 'web' }],
    }),
    { expectRevision: 0 },
  );
  running = await runRecordingAgent(etcd.endpoints, PREFIX, logger, { health: { caFile } });
}, 60_000);

afterAll(async () => {
  await running?.close();
  await admin?.close();
  await etcd?.stop();
  member?.closeAllConnections();
  member?.close();
  rmSync(dir, { recursive: true, force: true });
});

const decided = (want: string) => decidedAs(running, { 'web/a': want });

describe('health.caFile rotated in place and reloaded', () => {
  test('the roots of the agent start do not verify the member: down, with the TLS reason', async () => {
    expect((await decided('down'))['web/a']).toBe('down');
    const failures = await probeFailuresNaming(admin, 'web/a');
    expect(failures['web/a']?.reason).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate/i);
  });

  test('the member CA written over the file and a reload: up, without a restart', async () => {
    writeFileSync(caFile, caTwo);
    const plan = await running?.agent.reload(async () => config());
    expect(plan?.changed).toEqual(['health.caFile']);
    expect((await decided('up'))['web/a']).toBe('up');
  });

  test('a file that is no CA refuses the reload, naming it; the probes keep the last good roots', async () => {
    writeFileSync(caFile, 'not a certificate\n');
    await expect(running?.agent.reload(async () => config())).rejects.toThrow(`health.caFile: "${caFile}"`);
    // Still up over several probe intervals (300 ms): the roots in use are the second CA's.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(running?.agent.status().decided['web/a']).toBe('up');
  });
});
