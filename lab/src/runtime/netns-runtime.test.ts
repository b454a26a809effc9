import { EventEmitter } from 'node:events';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { buildTopology } from '../topology/model.js';
import type { LabContext } from './lab-runtime.js';

// No process is signalled here: the test only sees which pids the runtime would kill.
const processes = vi.hoisted(() => ({
  killAll: vi.fn(async (_pids: number[]) => {}),
  inNamespace: [] as number[],
  /** What startDaemon returned, as a child process that can be made to exit. */
  started: [] as (import('node:events').EventEmitter & { pid: number })[],
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  killAll: processes.killAll,
  startDaemon: vi.fn(() => {
    const child = Object.assign(new EventEmitter(), { pid: 7000 + processes.started.length });
    processes.started.push(child);
    return child;
  }),
  namespacePids: vi.fn(async (_namespace: string) => processes.inNamespace),
}));

const { netnsRuntime } = await import('./netns-runtime.js');
const { DaemonExits } = await import('./daemon-exits.js');

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

  test('lab netns runtime - a daemon that exits is kept: the waits name its role, host, exit code and log file', async () => {
    if (!etcd2) throw new Error('no etcd2');
    const exits = new DaemonExits();
    const pids: Record<string, Record<string, number>> = {};
    const watching = {
      ...lab,
      hostDir: (host: string) => `/run/l4fleet-lab/x/${host}`,
      recordPid: (host: string, role: string, pid: number) => {
        pids[host] = { ...pids[host], [role]: pid };
      },
      watchDaemon: exits.watch.bind(exits),
    } as unknown as LabContext;
    await netnsRuntime.startEtcd(watching, etcd2);
    const child = processes.started.at(-1);
    if (!child) throw new Error('nothing started');
    expect(exits.exited({ pids, killed: [] })).toBeUndefined();
    child.emit('exit', 1, null);
    expect(exits.exited({ pids, killed: [] })).toBe(
      `etcd2 of control (pid ${child.pid}) exited with code 1; see /run/l4fleet-lab/x/control/etcd2.log`,
    );
    // Not once the lab killed it on purpose, nor once another process has its role.
    expect(exits.exited({ pids, killed: ['etcd2'] })).toBeUndefined();
    expect(exits.exited({ pids: { control: { etcd2: child.pid + 1 } }, killed: [] })).toBeUndefined();
    expect(exits.exited({ pids, killed: [] }, (host) => host === 'node1')).toBeUndefined();
  });
});
