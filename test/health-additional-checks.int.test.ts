/**
 * `pools[].additionalHealthChecks` (all, or `healthChecksRequired` of them), the `agent` check and `expectNot` end to end: a fleet in a real etcd, the real agent (runAgent,
 * what `l4fleet agent` runs) probing real sockets on loopback, and the aggregator's decisions written back to etcd.
 * Each member serves HTTP `/healthz`, a "sidecar" TCP port and an agent port (HAProxy agent-check: the member's own
 * word) on its own loopback address; the pool checks all three. The speaker is the fake one and the data plane the
 * recording one: nothing is announced or forwarded.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server } from 'node:net';
import type { RunningAgent } from '@l4fleet/agent';
import { type CliIo, runCli } from '@l4fleet/cli';
import { parseFleet } from '@l4fleet/config';
import type { EtcdFleetStore } from '@l4fleet/store';
import {
  decidedAs,
  type OneRecordingAgent,
  probeFailuresNaming,
  startOneRecordingAgent,
} from '@l4fleet/test-support/etcd-agents';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const PREFIX = `/health-additional-${process.pid}`;
const CHECK = { intervalMs: 300, timeoutMs: 250, rise: 1, fall: 1 };
/** Two members, each on its own loopback address (Linux routes all of 127.0.0.0/8 to lo), same ports. */
const ADDRESSES = { a: '127.0.0.2', b: '127.0.0.3' } as const;

let env: OneRecordingAgent | undefined;
let admin: EtcdFleetStore | undefined;
let running: RunningAgent | undefined;
const https: HttpServer[] = [];
const sidecars = new Map<string, Server>();
let httpPort = 0;
let sidecarPort = 0;
let agentPort = 0;
/** The body of each member's `/healthz` (200 whatever it says; the http check has `expectNot: MAINTENANCE`). */
const pageOf = new Map<string, string>();
/** What each member's agent answers (HAProxy agent-check words). */
const agentSays = new Map<string, string>(Object.values(ADDRESSES).map((a) => [a, 'up 100%\n']));

async function listen(s: Server | HttpServer, address: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, address, () => resolve());
  });
  return (s.address() as AddressInfo).port;
}

const sidecar = (address: string): Promise<number> => {
  const s = createServer((c) => c.end());
  sidecars.set(address, s);
  return listen(s, address, sidecarPort);
};

beforeAll(async () => {
  for (const address of Object.values(ADDRESSES)) {
    const h = createHttpServer((req, res) =>
      res.writeHead(req.url === '/healthz' ? 200 : 503).end(pageOf.get(address) ?? '{"status":"ok"}'),
    );
    https.push(h);
    httpPort = await listen(h, address, httpPort);
    sidecarPort = await sidecar(address);
    const agent = createServer((c) => c.end(agentSays.get(address) ?? ''));
    sidecars.set(`agent ${address}`, agent);
    agentPort = await listen(agent, address, agentPort);
  }
  const fleet = parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'http', path: '/healthz', expectNot: 'MAINTENANCE', ...CHECK },
        additionalHealthChecks: [
          { type: 'tcp', port: sidecarPort, ...CHECK },
          { type: 'agent', port: agentPort, ...CHECK },
        ],
        members: Object.entries(ADDRESSES).map(([name, address]) => ({ name, address, port: httpPort })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: httpPort, protocol: 'tcp', pool: 'web' }],
  });
  env = await startOneRecordingAgent(PREFIX, fleet, pino({ level: 'silent' }));
  admin = env.admin;
  running = env.running;
}, 60_000);

afterAll(async () => {
  await env?.close();
  for (const s of [...https, ...sidecars.values()]) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    if (s.listening) s.close();
  }
});

const decided = (want: Record<string, string>) => decidedAs(running, want);
/** The node's status record's probeFailures, once it names `member` (what describe vip prints). */
const probeFailures = (member: string) => probeFailuresNaming(admin, member);

describe('additional health checks against real sockets, decided through etcd', () => {
  test('a member whose HTTP check passes but whose sidecar port is closed is decided down, named by its check', async () => {
    expect(await decided({ 'web/a': 'up', 'web/b': 'up' })).toMatchObject({ 'web/a': 'up', 'web/b': 'up' });
    const s = sidecars.get(ADDRESSES.b);
    await new Promise((r) => s?.close(r));
    expect(await decided({ 'web/a': 'up', 'web/b': 'down' })).toMatchObject({ 'web/b': 'down' });
    // The aggregator wrote it to etcd, and the node's status record says which check failed (describe vip prints it).
    expect((await admin?.getDecided())?.decided.get('web/b')).toBe('down');
    const failures = await probeFailures('web/b');
    expect(failures['web/b']?.reason).toBe(`check 2 of 3 (tcp port ${sidecarPort}): ECONNREFUSED`);
    expect(Object.keys(failures)).toEqual(['web/b']);
  });

  test('the sidecar back: up again once every check passes', async () => {
    await sidecar(ADDRESSES.b);
    expect(await decided({ 'web/a': 'up', 'web/b': 'up' })).toMatchObject({ 'web/b': 'up' });
  });

  test("a member's agent says drain: down on its word, named by its check; up again when it says up", async () => {
    agentSays.set(ADDRESSES.a, 'drain # deploying v42\n');
    expect(await decided({ 'web/a': 'down', 'web/b': 'up' })).toMatchObject({ 'web/a': 'down' });
    const failures = await probeFailures('web/a');
    expect(failures['web/a']?.reason).toBe(`check 3 of 3 (agent port ${agentPort}): agent says drain: deploying v42`);
    agentSays.set(ADDRESSES.a, 'ready\n');
    expect(await decided({ 'web/a': 'up', 'web/b': 'up' })).toMatchObject({ 'web/a': 'up' });
  });

  test('a maintenance page that still answers 200 (expectNot, F5 receive disable string): down, named; its normal page: up', async () => {
    pageOf.set(ADDRESSES.b, '<h1>MAINTENANCE until 10:00</h1>');
    expect(await decided({ 'web/a': 'up', 'web/b': 'down' })).toMatchObject({ 'web/b': 'down' });
    const failures = await probeFailures('web/b');
    expect(failures['web/b']?.reason).toBe('check 1 of 3 (http): body contains "MAINTENANCE" (expectNot)');
    pageOf.delete(ADDRESSES.b);
    expect(await decided({ 'web/a': 'up', 'web/b': 'up' })).toMatchObject({ 'web/b': 'up' });
  });

  test('healthChecksRequired 2 (F5 "at least 2 of 3"): one failed check leaves the member up, a second takes it down, counted', async () => {
    const desired = await admin?.getDesired();
    if (!admin || !desired) throw new Error('no admin store');
    const pool = desired.fleet.pools[0];
    if (!pool) throw new Error('no pool');
    const fleet = parseFleet({ ...desired.fleet, pools: [{ ...pool, healthChecksRequired: 2 }] });
    const { revision } = await admin.apply(fleet, { expectRevision: desired.revision });
    await eventually(
      `the agent applies revision ${revision}`,
      () => running?.agent.status().desiredRevision ?? 0,
      (r) => r >= revision,
      10_000,
      100,
    );
    // b's sidecar closes: 2 of 3 still pass. Ten intervals of the check (fall 1) without b leaving `up`.
    const s = sidecars.get(ADDRESSES.b);
    await new Promise((r) => s?.close(r));
    for (let i = 0; i < 30; i++) {
      expect(running?.agent.status().observed['web/b']).toBe('up');
      await new Promise((r) => setTimeout(r, CHECK.intervalMs / 3));
    }
    expect(running?.agent.status().decided['web/b']).toBe('up');
    // Its agent says drain too: 1 of 3 pass, fewer than 2.
    agentSays.set(ADDRESSES.b, 'drain\n');
    expect(await decided({ 'web/a': 'up', 'web/b': 'down' })).toMatchObject({ 'web/b': 'down' });
    const failures = await probeFailures('web/b');
    expect(failures['web/b']?.reason).toBe(
      `2 of 3 checks down (2 must pass): check 2 of 3 (tcp port ${sidecarPort}): ECONNREFUSED`,
    );
    // `l4fleet get members --down` over the same etcd: b alone, decided down, the node's counted reason.
    const out: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => out.push(t) };
    const code = await runCli(
      ['get', 'members', '--down', '-o', 'json', '--etcd', env?.etcd.endpoints.join(',') ?? '', '--prefix', PREFIX],
      io,
    );
    expect(code).toBe(0);
    const rows = JSON.parse(out.join('\n'));
    expect(rows).toEqual([
      expect.objectContaining({ pool: 'web', member: 'b', decided: 'down', takesNewFlows: false }),
    ]);
    expect(Object.values(rows[0].probeFailures).map((f) => (f as { reason: string }).reason)).toEqual([
      failures['web/b']?.reason,
    ]);
    // The agent says ready again: 2 of 3 pass, up while the sidecar is still closed.
    agentSays.set(ADDRESSES.b, 'ready\n');
    expect(await decided({ 'web/a': 'up', 'web/b': 'up' })).toMatchObject({ 'web/b': 'up' });
    expect(sidecars.get(ADDRESSES.b)?.listening).toBe(false);
  });
});
