/**
 * Writes against a real three-member etcd that lost two members (issue 16: "writes refused with a clear error"):
 * `l4fleet apply` and `l4fleet node drain` exit 1 saying the cluster has no quorum, which endpoint answered (the
 * survivor, without a leader) and which did not; after the two come back the same apply works. Free loopback ports.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliIo, runCli } from '@l4fleet/cli';
import { parseFleet } from '@l4fleet/config';
import { type EtcdClusterHandle, startEtcdCluster } from '@l4fleet/test-support/etcd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

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

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-no-quorum-'));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('etcd without quorum - writes refused, saying why', () => {
  let cluster: EtcdClusterHandle;
  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('two of three killed: apply and node drain exit 1 with no quorum, the answering endpoint and the silent ones', async () => {
    const g = ['--etcd', cluster.endpoints.join(','), '--prefix', '/nq'];
    const f = join(dir, 'fleet.yaml');
    writeFileSync(f, JSON.stringify(fleetOf(2)));
    expect((await cli('apply', '-f', f, '--new-fleet', ...g)).code).toBe(0);
    const [a, b, c] = cluster.members;
    if (!a || !b || !c) throw new Error('no members');
    await a.kill();
    await b.kill();
    try {
      writeFileSync(f, JSON.stringify(fleetOf(3)));
      const applied = await cli('apply', '-f', f, ...g);
      console.log(`no quorum: apply said: ${applied.err}`);
      expect(applied.code).toBe(1);
      expect(applied.err).toContain('the etcd cluster has no quorum (1 of 3 endpoints answered');
      expect(applied.err).toContain(`answered: ${c.endpoint} (no leader)`);
      expect(applied.err).toContain(`no answer: ${a.endpoint}, ${b.endpoint}`);
      expect(applied.err).toContain('majority (2 of 3)');
      expect(applied.err).not.toMatch(/\n\s+at /);
      const drained = await cli('node', 'drain', 'lb1', ...g);
      expect(drained.code).toBe(1);
      expect(drained.err).toContain('the etcd cluster has no quorum');
    } finally {
      await a.start();
      await b.start();
    }
    const again = await cli('apply', '-f', f, ...g);
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
  }, 120_000);
});
