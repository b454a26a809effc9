/**
 * Hostile records written straight into a real etcd while an agent serves (issue 12): the etcd store refuses each
 * one (`INVALID_RECORD`), and the agent keeps its last good state while it reports the record: metric per family,
 * `record.rejected` event, and `rejectedRecords` in its status record in etcd (what `l4fleet status` shows). Then
 * the corrupt pointer is replaced through the store's recovery path and the agent serves the new state.
 *
 * The agent runs with the fake speaker, the dry-run data plane and health checks `none`: nothing is sent anywhere.
 */

import { type Agent, type AgentEvent, type AgentStatusReport, createAgent, parseAgentConfig } from '@l4fleet/agent';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { runCli } from '@l4fleet/cli';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { until } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const PREFIX = '/rejected-test';
const NS = `${PREFIX}/v1/`;

describe('agent with a real etcd - hostile records', () => {
  let etcd: EtcdHandle;
  let admin: EtcdFleetStore;
  let agentStore: EtcdFleetStore;
  let agent: Agent;
  const speaker = createFakeSpeaker();
  const dataPlane = createRecordingDataPlane({ requireSamePort: false });
  const events: AgentEvent[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    admin = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: PREFIX, logger });
    await admin.apply(twoPoolFleet({ type: 'none' }));
    agentStore = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: PREFIX, logger });
    agent = createAgent({
      config: parseAgentConfig({
        node: { name: 'n1', interface: 'lo', address: '198.18.0.11' },
        bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
        etcd: { endpoints: etcd.endpoints, prefix: PREFIX },
        dataplane: { driver: 'dry-run' },
      }),
      store: agentStore,
      speaker,
      dataPlane,
      logger,
      onEvent: (e) => events.push(e),
    });
    await agent.start();
    await agent.whenReady(10_000);
    await until('aggregator elected', () => agent.status().aggregator, 10_000);
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    await agentStore?.close();
    await admin?.close();
    await etcd?.stop();
  }, 30_000);

  const rejectedIn = async (family: string): Promise<number> => {
    const m = await agent.metrics.registry.getSingleMetricAsString('l4fleet_store_rejected_records_total');
    const hit = new RegExp(`family="${family}"[^}]*\\} (\\d+)`).exec(m);
    return hit ? Number(hit[1]) : 0;
  };
  const statusRecord = async () =>
    (await admin.listNodes()).find((n) => n.name === 'n1')?.status as AgentStatusReport | undefined;

  test('each family: reported (metric, event, status record in etcd); the last good state keeps serving', async () => {
    const tables = agent.status().tables;
    const routes = speaker.advertised.map((a) => a.prefix).sort();
    const applies = dataPlane.applied.length;
    expect(routes).toEqual(['198.51.100.10/32', '198.51.100.11/32']);

    const pointer = JSON.parse(await etcd.etcdctl('get', `${NS}desired/current`, '--print-value-only')) as Record<
      string,
      unknown
    >;
    const hostile: [family: string, key: string, value: string][] = [
      ['nodes', 'nodes/ghost', JSON.stringify({ name: 7, registeredAt: 'x' })],
      ['health', 'health/ghost/web', JSON.stringify({ 'web/a': 42 })],
      ['decided', 'decided/web', '{"web/a": "sideways"'],
      // a pointer that claims a billion chunks: refused before any chunk is fetched
      ['desired', 'desired/current', JSON.stringify({ ...pointer, chunks: 1_000_000_000 })],
    ];
    for (const [family, key, value] of hostile) {
      await etcd.etcdctl('put', `${NS}${key}`, value);
      await until(`${family} rejected`, async () => (await rejectedIn(family)) >= 1, 10_000);
      const rec = await until(`${family} in the status record`, async () => {
        const s = await statusRecord();
        return (s?.rejectedRecords?.byFamily as Record<string, number> | undefined)?.[family] ? s : undefined;
      });
      expect(rec.rejectedRecords?.last.error).toContain(key);
      expect(events.some((e) => e.kind === 'record.rejected' && (e.data as { family: string }).family === family)).toBe(
        true,
      );
      // what the operator sees (while the desired state and decisions still read: they block `status` itself)
      if (family === 'health') {
        const out: string[] = [];
        const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
        const code = await runCli(['--etcd', etcd.endpoints.join(','), '--prefix', PREFIX, 'status'], io);
        expect({ code, out: out.join('\n') }).toMatchObject({
          code: 0,
          out: expect.stringMatching(/Node n1 rejected 2 record\(s\) from etcd; last: health\/ghost\/web/),
        });
      }
    }
    expect(events.some((e) => e.kind === 'state.rejected')).toBe(true);

    // nothing changed: same tables, same routes, no data-plane apply, not fail-static
    expect(agent.status()).toMatchObject({ state: 'serving', failStatic: false, tables });
    expect(speaker.advertised.map((a) => a.prefix).sort()).toEqual(routes);
    expect(dataPlane.applied.length).toBe(applies);
  });

  test('the corrupt pointer replaced by the recovery apply: the agent serves the new state', async () => {
    // corrupt whatever pointer is there (the test above leaves it corrupt already; this one stands alone)
    const key = `${NS}desired/current`;
    const pointer = JSON.parse(await etcd.etcdctl('get', key, '--print-value-only')) as Record<string, unknown>;
    await etcd.etcdctl('put', key, JSON.stringify({ ...pointer, chunks: 1_000_000_000 }));
    await until('pointer rejected', async () => (await rejectedIn('desired')) >= 1, 10_000);
    const fleet = twoPoolFleet({ type: 'none' });
    await admin.apply({ ...fleet, vips: fleet.vips.slice(0, 1) }, { recoverInvalid: true });
    await until('one VIP announced', () => speaker.advertised.length === 1, 10_000);
    expect(speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32']);
  });
});
