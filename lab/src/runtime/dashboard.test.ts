import { describe, expect, test } from 'vitest';
import { buildTopology } from '../topology/model.js';
import { dashboardArgv, dashboardUrl, labDashboard } from './dashboard.js';
import type { LabState } from './state.js';

const topology = buildTopology({ id: 'd1', controlSlot: 7, nodeIndexes: [1, 2, 4] });

describe('lab dashboard', () => {
  test('lab dashboard - listens on the control address and reads every etcd member, NATS and every agent', () => {
    const argv = dashboardArgv(topology, '/run/l4fleet-lab/d1/dashboard.token');
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    expect(argv.slice(argv.indexOf('dashboard') - 2, argv.indexOf('dashboard') + 1)).toEqual([
      '--etcd',
      topology.control.etcdEndpoints.join(','),
      'dashboard',
    ]);
    expect(flag('--listen')).toBe('198.19.7.2:9470');
    expect(flag('--nats')).toBe('nats://198.19.7.2:4222');
    expect(flag('--token-file')).toBe('/run/l4fleet-lab/d1/dashboard.token');
    const metrics = (flag('--agent-metrics') ?? '').split(',');
    expect(metrics.map((m) => m.split('=')[0])).toEqual(['node1', 'node2', 'node4']);
    for (const m of metrics) expect(m).toMatch(/^node\d=http:\/\/198\.19\.7\.\d+:9469$/);
    expect(dashboardUrl(topology)).toBe('http://198.19.7.2:9470/');
  });

  test('lab dashboard - status names it only when the state records its process', () => {
    const state = { id: 'd1', pids: { control: { nats: 10 } } } as unknown as LabState;
    expect(labDashboard(state, topology)).toBeNull();
    const running = { ...state, pids: { control: { nats: 10, dashboard: 11 } } } as unknown as LabState;
    expect(labDashboard(running, topology)).toEqual({
      url: 'http://198.19.7.2:9470/',
      tokenFile: expect.stringMatching(/\/d1\/dashboard\.token$/),
    });
  });
});
