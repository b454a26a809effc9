import { beforeEach, describe, expect, test, vi } from 'vitest';
import { buildTopology } from '../topology/model.js';
import type { LabContext } from './lab-runtime.js';

// No process is signalled here: the test only sees which pids the runtime would kill.
const processes = vi.hoisted(() => ({ killAll: vi.fn(async (_pids: number[]) => {}), inNamespace: [] as number[] }));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  killAll: processes.killAll,
  namespacePids: vi.fn(async (_namespace: string) => processes.inNamespace),
}));

const { netnsRuntime } = await import('./netns-runtime.js');

describe('lab netns runtime - etcd members', () => {
  const topology = buildTopology({ id: 'x' });
  const lab = { id: 'x', topology, ns: (host: string) => `l4f-x-${host}` } as unknown as LabContext;
  const etcd2 = topology.control.etcdMembers[1];
  beforeEach(() => {
    processes.killAll.mockClear();
  });

  test('lab netns runtime - kill etcd2 signals its recorded pid only while it runs in the control namespace', async () => {
    if (!etcd2) throw new Error('no etcd2');
    processes.inNamespace = [300, 301];
    await netnsRuntime.stopEtcd(lab, etcd2, 301);
    expect(processes.killAll).toHaveBeenCalledWith([301]);
    processes.killAll.mockClear();
    // A pid from a hand-edited state or reused after the member died: some other process of this machine.
    await netnsRuntime.stopEtcd(lab, etcd2, 4242);
    expect(processes.killAll).not.toHaveBeenCalled();
  });
});
