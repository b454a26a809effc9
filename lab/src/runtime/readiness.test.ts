import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { buildTopology } from '../topology/model.js';

// etcdctl is not run: `run` answers as an etcd cluster that does not come up would.
const etcdctl = vi.hoisted(() => ({ calls: 0 }));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    if (argv[0] !== 'etcdctl') return { code: 0, stdout: '', stderr: '' };
    etcdctl.calls++;
    return {
      code: 1,
      stdout: '',
      stderr:
        '{"level":"warn","msg":"retrying of unary invoker failed"}\n' +
        'http://198.19.0.2:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n' +
        'Error: unhealthy cluster\n',
    };
  }),
}));

const { waitEtcd, waitNats } = await import('./readiness.js');

describe('lab readiness - a wait that fails says why', () => {
  const topology = buildTopology({ id: 'r1' });
  beforeEach(() => {
    etcdctl.calls = 0;
  });

  test('lab readiness - etcd not ready: the timeout carries what etcdctl said last', async () => {
    await expect(waitEtcd(topology, 300)).rejects.toThrow(
      /etcd etcd1,etcd2,etcd3 not ready within 300 ms: .*is unhealthy: failed to commit proposal: context deadline exceeded/,
    );
  });

  test('lab readiness - etcd whose daemon exited: the wait ends at once naming it, not at the timeout', async () => {
    const reason = 'etcd2 of control (pid 42) exited with code 1; see /run/l4fleet-lab/r1/control/etcd2.log';
    await expect(waitEtcd(topology, 60_000, topology.control.etcdMembers, () => reason)).rejects.toThrow(reason);
    expect(etcdctl.calls).toBe(0);
  });
});

describe('lab readiness - NATS', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  async function listening(): Promise<number> {
    server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('no address');
    return address.port;
  }

  test('lab readiness - NATS answers once its port takes a connection', async () => {
    const port = await listening();
    await expect(waitNats(`nats://127.0.0.1:${port}`, 2_000)).resolves.toBeUndefined();
  });

  test('lab readiness - NATS that never listens: a timeout naming its url; one that exited: at once, naming it', async () => {
    const port = await listening();
    await new Promise<void>((r) => server?.close(() => r()));
    server = undefined;
    await expect(waitNats(`nats://127.0.0.1:${port}`, 300)).rejects.toThrow(
      `nats-server at nats://127.0.0.1:${port} not ready within 300 ms`,
    );
    const reason = 'nats of control (pid 43) exited with code 1; see /x/nats.log';
    await expect(waitNats(`nats://127.0.0.1:${port}`, 60_000, () => reason)).rejects.toThrow(reason);
  });
});
