/**
 * etcd endpoint failover (issue 12): a real three-member etcd cluster, members killed and frozen (SIGSTOP), and
 * the store as the CLI and the agent use it, given all three endpoints. Every command must still work, a hung
 * member must be abandoned within a bounded time, and a node's lease and watches must survive a frozen member.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliIo, runCli } from '@l4fleet/cli';
import { parseFleet } from '@l4fleet/config';
import { DEFAULT_CALL_TIMEOUT_MS, EtcdFleetStore, type FleetStore, type StoreError } from '@l4fleet/store';
import { type EtcdClusterHandle, startEtcdCluster } from '@l4fleet/test-support/etcd';
import { until } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleetOf = (members: number) =>
  parseFleet({
    hashSeed: 11,
    pools: [
      {
        name: 'web',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/**
 * An operation against a cluster with one hung member: at most one attempt on it (DEFAULT_DIAL_TIMEOUT_MS), then
 * the next member. If the hung member is etcd's leader, the others stall too until they elect a new one (~1-2 s), so
 * the store retries for about DEFAULT_CALL_TIMEOUT_MS; that plus 2 s of slack for two shared cores is the bound.
 */
const HUNG_OP_BOUND_MS = DEFAULT_CALL_TIMEOUT_MS + 2_000;

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-failover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const t0 = Date.now();
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n'), ms: Date.now() - t0 };
}

describe('etcd failover - three members, one killed or frozen', () => {
  let cluster: EtcdClusterHandle;
  const stores: FleetStore[] = [];
  const open = (prefix: string) => {
    const s = new EtcdFleetStore({ endpoints: cluster.endpoints, prefix, logger });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  });
  afterEach(async () => {
    for (const m of cluster.members) m.thaw();
    for (const s of stores.splice(0)) await s.close();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  test.each(['killed', 'frozen'] as const)(
    'CLI commands with the first endpoint %s all succeed',
    async (how) => {
      const prefix = `/fo-cli-${how}`;
      const g = ['--etcd', cluster.endpoints.join(','), '--prefix', prefix];
      const f = join(dir, `${how}.yaml`);
      writeFileSync(f, JSON.stringify(fleetOf(2)));
      const initial = await cli('apply', '-f', f, '--new-fleet', ...g);
      expect(initial.err).toBe('');
      expect(initial.code).toBe(0);
      const first = cluster.members[0];
      if (!first) throw new Error('no member');
      if (how === 'killed') await first.kill();
      else first.freeze();
      try {
        // etcd3 shuffles the endpoints per call: the rounds draw the bad member many times over (a frozen one costs
        // up to one dial timeout per command, so fewer rounds).
        for (let i = 0; i < (how === 'killed' ? 10 : 4); i++) {
          for (const argv of [
            ['get', 'vips', '-o', 'json'],
            ['get', 'nodes'],
            ['status'],
            ['apply', '-f', f, '--dry-run'],
          ]) {
            const r = await cli(...argv, ...g);
            expect(r.err).toBe('');
            expect(r.code).toBe(0);
            expect(r.ms).toBeLessThan(HUNG_OP_BOUND_MS);
          }
        }
        writeFileSync(f, JSON.stringify(fleetOf(3)));
        const applied = await cli('apply', '-f', f, ...g);
        expect(applied.err).toBe('');
        expect(applied.code).toBe(0);
      } finally {
        if (how === 'killed') await first.start();
        else first.thaw();
      }
    },
    120_000,
  );

  test('a node (lease, watches) rides through each member frozen in turn; its lease is never lost', async () => {
    const prefix = '/fo-agent';
    const writer = open(prefix);
    const agent = open(prefix);
    await writer.apply(fleetOf(1));
    const leaseLost: StoreError[] = [];
    await agent.registerNode({ name: 'lb1' }, { leaseTtlS: 10, onLeaseLost: (e) => leaseLost.push(e) });
    const seen: number[] = [];
    const watch = await agent.watchDesired({
      onUpdate: (d) => seen.push(d.fleet.pools[0]?.members.length ?? 0),
      onError: () => undefined,
    });
    let members = 1;
    for (const m of cluster.members) {
      m.freeze();
      try {
        members += 1;
        const t0 = Date.now();
        await writer.apply(fleetOf(members));
        expect(Date.now() - t0).toBeLessThan(HUNG_OP_BOUND_MS);
        // A watch stream on the frozen member is found dead by keepalive (6 s) and resumes on another one.
        await until(`update with ${m.name} frozen`, () => seen.at(-1) === members, 15_000, 50);
        // Longer than the keepalive bound: the lease's keepalive stream must have moved if it was on this member.
        await new Promise((r) => setTimeout(r, 7_000));
        expect((await writer.listNodes()).map((n) => n.name)).toEqual(['lb1']);
      } finally {
        m.thaw();
      }
    }
    expect(leaseLost).toEqual([]);
    await watch.close();
  }, 120_000);

  test('two of three members down: calls fail within a bound with UNAVAILABLE or TIMEOUT, never hang', async () => {
    const s = open('/fo-quorum');
    await s.apply(fleetOf(1));
    const [a, b] = cluster.members;
    if (!a || !b) throw new Error('no members');
    await a.kill();
    b.freeze();
    try {
      const t0 = Date.now();
      const err = await s.apply(fleetOf(2)).catch((e: StoreError) => e);
      expect(Date.now() - t0).toBeLessThan(HUNG_OP_BOUND_MS + 5_000);
      expect(['UNAVAILABLE', 'TIMEOUT', 'OUTCOME_UNKNOWN']).toContain((err as StoreError).code);
    } finally {
      b.thaw();
      await a.start();
    }
    await until(
      'quorum back',
      () =>
        s
          .getDesired()
          .then(() => true)
          .catch(() => false),
      20_000,
      100,
    );
  }, 60_000);
});
