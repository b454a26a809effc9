/**
 * Second chance, control plane (issue 15; docs/design/0011-second-chance.md): against a real etcd, the elected
 * aggregator records the pools' table history and every agent, one started after the change included, hands the
 * data plane the same previousSlots (and the same checksum), equal to what the CLI derives from etcd. A hostile
 * history record is refused (INVALID_RECORD naming key, field and value), the agents keep their last good tables and
 * the leader puts the last good record back.
 *
 * Agents run with the fake speaker, the recording data plane and health checks `none`: nothing is sent anywhere.
 */
import { buildVipTable, type Fleet, parseFleet } from '@l4fleet/config';
import type { VipTable } from '@l4fleet/dataplane';
import { type EtcdAgents, type RecordedNode, startEtcdAgents } from '@l4fleet/test-support/etcd-agents';
import { until } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const PREFIX = `/second-chance-${process.pid}`;
const SIZE = 251;

const fleetOf = (n: number): Fleet =>
  parseFleet({
    hashSeed: 0x5eed,
    pools: [
      {
        name: 'web',
        forwarding: 'gue',
        healthCheck: { type: 'none' },
        members: Array.from({ length: n }, (_v, i) => ({ address: `198.18.2.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: SIZE }],
  });

type Node = RecordedNode;

describe('second chance - table history through a real etcd', () => {
  let fleet: EtcdAgents;
  let admin: EtcdAgents['admin'];
  let etcd: EtcdAgents['etcd'];
  const startNode = (name: string, i: number): Promise<Node> => fleet.startNode(name, i);
  const tableOf = (n: Node): VipTable | undefined => n.dataPlane.current[0];
  const previousOf = (n: Node) => {
    const t = tableOf(n);
    return t?.previousSlots ? { backends: t.backends.map((b) => b.name), previous: [...t.previousSlots] } : undefined;
  };

  beforeAll(async () => {
    fleet = await startEtcdAgents(PREFIX, fleetOf(4), logger);
    ({ admin, etcd } = fleet);
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  }, 30_000);

  test('a backend added: every agent, one started after the change too, programs the same previous owners', async () => {
    const [n1, n2] = [await startNode('n1', 0), await startNode('n2', 1)];
    await until('history recorded', async () => (await admin.getTableHistory()).history.has('web'), 10_000);
    expect(previousOf(n1)).toBeUndefined(); // nothing moved yet

    await admin.apply(fleetOf(5));
    const first = await until('n1 has previous owners', () => previousOf(n1), 10_000);
    await until('n2 has previous owners', () => previousOf(n2), 10_000);
    await until('the writer caught up', async () => (await admin.getTableHistory()).history.get('web')?.earlier.length);
    expect(previousOf(n2)).toEqual(first);
    expect(previousOf(n1)).toEqual(first); // unchanged once the history record caught up with the apply

    // What the CLI derives from etcd alone: the same previous owners, the same checksum the nodes report.
    const [{ history }, { decided }, desired] = await Promise.all([
      admin.getTableHistory(),
      admin.getDecided(),
      admin.getDesired(),
    ]);
    const derived = buildVipTable(desired.fleet, desired.fleet.vips[0]!, decided, history);
    expect([...derived.previousSlots!]).toEqual(first.previous);
    expect(n1.agent.status().tables).toEqual(n2.agent.status().tables);
    expect(Object.values(n1.agent.status().tables)).toEqual([derived.checksum]);
    const moved = first.previous.filter((i) => i >= 0).length;
    expect(moved).toBeGreaterThan(SIZE / 10);

    // A node that starts now (or restarts) has no memory of the change: it derives the same from etcd.
    const n3 = await startNode('n3', 2);
    await until('n3 has previous owners', () => previousOf(n3), 10_000);
    expect(previousOf(n3)).toEqual(first);
  }, 60_000);

  test('a hostile history record is refused naming key, field and value; agents keep their previous owners', async () => {
    const n1 = fleet.nodes[0]!;
    const before = previousOf(n1);
    const tables = n1.agent.status().tables;
    expect(before).toBeDefined();
    const value = JSON.stringify({ pool: 'web', current: [['a', '198.18.2.1', 80, 'NaN']], earlier: [] });
    await etcd.etcdctl('put', `${PREFIX}/v1/history/web`, value);
    const rejected = await until(
      'n1 reports the record',
      () => n1.events.find((e) => e.kind === 'record.rejected' && (e.data as { family: string }).family === 'history'),
      10_000,
    );
    expect((rejected.data as { error: string }).error).toContain(
      'history/web: current[0].weight: "NaN" is not a weight (0-65535)',
    );
    expect(previousOf(n1)).toEqual(before);
    expect(n1.agent.status().tables).toEqual(tables);

    // The leader puts the last good record back, so a node that starts now derives the same previous owners.
    const good = await until(
      'the leader rewrote the record',
      async () => (await admin.getTableHistory()).history.get('web'),
      10_000,
    );
    expect(good.earlier).toHaveLength(1);
    const n4 = await startNode('n4', 3);
    await until('n4 has previous owners', () => previousOf(n4), 10_000);
    expect(previousOf(n4)).toEqual(before);
    expect(n4.agent.status().tables).toEqual(tables);
  }, 30_000);
});
