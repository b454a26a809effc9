/**
 * Fail-static across restarts against the real daemons (issue 6): etcd stopped, the agent restarted, and its
 * state file makes it announce exactly what it announced before. With gobgpd kept, the route never leaves the RIB
 * and keeps its age (no withdraw, no re-add); with gobgpd restarted empty, the agent announces it again without
 * etcd. etcd back: the agent leaves fail-static and follows etcd.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig, type RunningAgent, runAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { type GobgpdHandle, startGobgpd } from '@l4fleet/daemons';
import { freePort } from '@l4fleet/process';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const VIP_PREFIX = '198.51.100.20/32';
const VIP2_PREFIX = '198.51.100.21/32';

type Rib = Record<string, { age?: number; nlri?: { prefix?: string } }[]>;

describe('agent restart while etcd is down (state file)', () => {
  let etcd: EtcdHandle;
  let gobgpd: GobgpdHandle;
  let store: EtcdFleetStore;
  let stateDir = '';
  let running: RunningAgent | undefined;
  let peerPort = 0;

  const rib = async (): Promise<Rib> => (await gobgpd.cliJson<Rib>('global', 'rib', '-a', 'ipv4')) ?? {};
  const prefixes = async () => Object.keys(await rib()).sort();

  const start = async () => {
    const config = parseAgentConfig({
      fleet: 'restart',
      // A next hop a router could forward to (a loopback one is refused): nothing binds it, the peer never answers.
      node: { name: 'r1', interface: 'lo', address: '198.18.251.1' },
      bgp: {
        asn: 65001,
        gobgpdAddress: gobgpd.apiAddress,
        // A peer that never answers: the routes sit in gobgpd's RIB, which is what this test reads.
        peers: [{ address: '127.0.0.1', asn: 65000, port: peerPort }],
      },
      etcd: { endpoints: etcd.endpoints, prefix: '/restart-test', dialTimeoutMs: 500, leaseTtlS: 3 },
      metrics: { listen: '127.0.0.1:0' },
      dataplane: { driver: 'dry-run' },
      state: { dir: stateDir },
    });
    running = await runAgent(config, { logger });
    return running;
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'l4fleet-agent-restart-'));
    peerPort = await freePort();
    etcd = await startEtcd();
    gobgpd = await startGobgpd({ name: 'agent-restart' });
    store = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: '/restart-test', logger });
    await store.apply(
      parseFleet({
        hashSeed: 7,
        pools: [
          { name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'a', address: '198.18.0.21', port: 80 }] },
        ],
        vips: [{ address: '198.51.100.20', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await running?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await gobgpd?.close().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }, 30_000);

  test('restart without etcd serves the saved state: no withdraw, gobgpd restarted gets the route back', async () => {
    const first = await start();
    await first.agent.whenReady(15_000);
    await eventually('route in gobgpd', prefixes, (p) => p.join() === VIP_PREFIX);
    const stateFile = join(stateDir, 'restart.r1.state.json');
    await eventually(
      'state file',
      () => stat(stateFile).then((s) => s.size),
      (n) => n > 0,
    );
    const ageBefore = (await rib())[VIP_PREFIX]?.[0]?.age;
    expect(ageBefore).toBeGreaterThan(0);

    // etcd gone, agent restarted (a crash or an upgrade): the route must never leave the RIB.
    await etcd.kill();
    await first.close();
    running = undefined;
    let missing = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        if (!(await prefixes().catch(() => [] as string[])).includes(VIP_PREFIX)) missing += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = Date.now();
    const second = await start(); // returns once the state file is served (it would wait for etcd before)
    await second.agent.whenReady(10_000);
    const readyMs = Date.now() - t0;
    expect(second.agent.status()).toMatchObject({ failStatic: true, inputSource: 'lastState', state: 'serving' });
    const readyz = await fetch(`http://${second.metricsAddress}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toMatch(/fail-static.*state file/);
    const metrics = await (await fetch(`http://${second.metricsAddress}/metrics`)).text();
    expect(metrics).toMatch(/^l4fleet_fail_static\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^l4fleet_last_state_serving\{[^}]*\} 1$/m);
    await new Promise((r) => setTimeout(r, 1_000));
    watching = false;
    await watcher;
    expect(missing).toBe(0);
    expect((await rib())[VIP_PREFIX]?.[0]?.age).toBe(ageBefore); // same path: never withdrawn and re-added
    logger.info({ readyMs }, 'agent ready from the state file');

    // gobgpd restarted empty while etcd is still down: the agent re-announces from the saved state.
    await gobgpd.kill();
    await gobgpd.restart();
    const t1 = Date.now();
    await eventually('route back in the restarted gobgpd', prefixes, (p) => p.join() === VIP_PREFIX, 15_000);
    logger.info({ reannounceMs: Date.now() - t1 }, 'route back after gobgpd restart');

    // etcd back: fail-static ends, etcd's inputs replace the file's, and changes flow again.
    await etcd.start();
    await eventually(
      'etcd inputs',
      () => second.agent.status(),
      (s) => !s.failStatic && s.inputSource === 'etcd',
      20_000,
    );
    expect(await prefixes()).toEqual([VIP_PREFIX]);
    const current = await store.getDesired();
    await store.apply(
      {
        ...current.fleet,
        vips: [
          ...current.fleet.vips,
          { ...(current.fleet.vips[0] as (typeof current.fleet.vips)[number]), address: '198.51.100.21' },
        ],
      },
      { expectRevision: current.revision },
    );
    await eventually('new VIP announced', prefixes, (p) => p.join() === [VIP_PREFIX, VIP2_PREFIX].join(), 15_000);
  }, 90_000);
});
