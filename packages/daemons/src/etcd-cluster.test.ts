import { ProcessError } from '@l4fleet/process';
import { beforeEach, describe, expect, test, vi } from 'vitest';

// Members without etcd: launchEtcd answers per member name as the test says, etcdctl always succeeds.
const etcd = vi.hoisted(() => ({
  launches: [] as string[],
  stops: new Map<string, unknown[][]>(),
  fail: new Set<string>(),
}));
vi.mock('./etcd.js', () => ({
  ETCD_READY_TIMEOUT_MS: 1_000,
  etcdctl: async () => 'healthy',
  launchEtcd: async (args: readonly string[]) => {
    const name = args[args.indexOf('--name') + 1] ?? '?';
    etcd.launches.push(name);
    if (etcd.fail.has(name)) throw new ProcessError('TIMEOUT', `etcd ${name} not ready`);
    await new Promise((r) => setTimeout(r, 50)); // the others come up after the failure
    const stops: unknown[][] = [];
    etcd.stops.set(name, stops);
    return { process: { kill: () => true }, stop: async (...a: unknown[]) => void stops.push(a) };
  },
}));

const { startEtcdCluster } = await import('./etcd-cluster.js');

beforeEach(() => {
  etcd.launches.length = 0;
  etcd.stops.clear();
  etcd.fail.clear();
});

describe('etcd cluster - start and stop', () => {
  test('a member that fails to start: the members that came up meanwhile are stopped too', async () => {
    etcd.fail.add('n2');
    await expect(startEtcdCluster()).rejects.toMatchObject({ code: 'TIMEOUT' });
    await new Promise((r) => setTimeout(r, 100)); // any launch still in flight has ended by now
    expect(etcd.stops.get('n1')).toEqual([['SIGTERM']]);
    expect(etcd.stops.get('n3')).toEqual([['SIGTERM']]);
  });

  test('a member start() after the cluster stop() is refused: its data dir is gone', async () => {
    const cluster = await startEtcdCluster({ members: 1 });
    const launched = etcd.launches.length;
    await cluster.stop();
    const member = cluster.members[0];
    await expect(member?.start()).rejects.toMatchObject({
      code: 'STOPPED',
      message: 'etcd member "n1": the cluster was stopped (its data dir is gone)',
    });
    expect(etcd.launches.length).toBe(launched);
  });
});
