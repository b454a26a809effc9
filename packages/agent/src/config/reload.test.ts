import { describe, expect, test } from 'vitest';
import { parseAgentConfig } from './parse.js';
import { planReload } from './reload.js';

const raw = {
  node: { name: 'n1', interface: 'eth0', address: '198.18.2.11' },
  bgp: {
    asn: 65001,
    gobgpdAddress: '127.0.0.1:50051',
    peers: [{ address: '198.18.2.1', asn: 65000, password: 'secret-1' }],
  },
  etcd: { endpoints: ['http://198.19.0.2:2379'] },
};
const base = parseAgentConfig(raw);
const withBgp = (bgp: Record<string, unknown>) => parseAgentConfig({ ...raw, bgp: { ...raw.bgp, ...bgp } });

describe('agent config - reload plan', () => {
  test('the same file: nothing changed, nothing to restart', () => {
    expect(planReload(base, parseAgentConfig(structuredClone(raw)))).toEqual({ changed: [], needRestart: [] });
  });

  test('a peer added, or its MD5 password rotated: bgp.peers, applied live', () => {
    const added = withBgp({ peers: [...raw.bgp.peers, { address: '198.18.2.2', asn: 65000 }] });
    // bfd.peers follow the BGP peers by default; with BFD off nothing reads them.
    expect(planReload(base, added)).toEqual({ changed: ['bgp.peers', 'bfd.peers'], needRestart: [] });
    const rotated = withBgp({ peers: [{ ...raw.bgp.peers[0], password: 'secret-2' }] });
    expect(planReload(base, rotated)).toEqual({ changed: ['bgp.peers'], needRestart: [] });
  });

  test('with BFD on, a peer added changes its BFD sessions too, live, and so do its timers; turning BFD on takes a restart', () => {
    const bfdOn = { ...raw, bfd: { enabled: true } };
    const added = parseAgentConfig({
      ...bfdOn,
      bgp: { ...raw.bgp, peers: [...raw.bgp.peers, { address: '198.18.2.2', asn: 65000 }] },
    });
    expect(planReload(parseAgentConfig(bfdOn), added)).toEqual({
      changed: ['bgp.peers', 'bfd.peers'],
      needRestart: [],
    });
    const timers = parseAgentConfig({ ...raw, bfd: { enabled: true, receiveIntervalMs: 300, detectMultiplier: 5 } });
    expect(planReload(parseAgentConfig(bfdOn), timers)).toEqual({
      changed: ['bfd.receiveIntervalMs', 'bfd.detectMultiplier'],
      needRestart: [],
    });
    // The poll interval and the vty directory are the agent's own: still a restart.
    const poll = parseAgentConfig({ ...raw, bfd: { enabled: true, pollIntervalMs: 500 } });
    expect(planReload(parseAgentConfig(bfdOn), poll).needRestart).toEqual(['bfd.pollIntervalMs']);
    expect(planReload(base, parseAgentConfig(bfdOn)).needRestart).toEqual(['bfd.enabled']);
  });

  test('anything else needs a restart, each field named, also beside a live one (bgp.peers, bfd.peers, logLevel)', () => {
    const next = parseAgentConfig({
      ...raw,
      bgp: { ...raw.bgp, asn: 65002, peers: [{ address: '198.18.2.3', asn: 65000 }] },
      etcd: { endpoints: ['http://198.19.0.2:2379', 'http://198.19.0.2:12379'] },
      logLevel: 'debug',
      metrics: { listen: '127.0.0.1:9999' },
    });
    expect(planReload(base, next)).toEqual({
      changed: ['bgp.asn', 'bgp.peers', 'etcd.endpoints', 'metrics.listen', 'bfd.peers', 'logLevel'],
      needRestart: ['bgp.asn', 'etcd.endpoints', 'metrics.listen'],
    });
  });

  test('health.caFile, health.sourceAddress and health.maxConcurrentProbes are applied live', () => {
    const next = parseAgentConfig({
      ...raw,
      health: { caFile: '/etc/l4fleet/health-ca.pem', sourceAddress: '198.18.2.11', maxConcurrentProbes: 64 },
    });
    expect(planReload(base, next)).toEqual({
      changed: ['health.maxConcurrentProbes', 'health.sourceAddress', 'health.caFile'],
      needRestart: [],
    });
  });

  test('a field given where the running config took the default counts as changed only if its value differs', () => {
    expect(planReload(base, withBgp({ gracefulShutdownMs: base.bgp.gracefulShutdownMs })).changed).toEqual([]);
    expect(planReload(base, withBgp({ gracefulShutdownMs: base.bgp.gracefulShutdownMs + 1 })).needRestart).toEqual([
      'bgp.gracefulShutdownMs',
    ]);
  });

  test('a field the parser derives (dataplane.warnings) is never named: only the field written in the file', () => {
    const nft = (dataplane: Record<string, unknown>) =>
      parseAgentConfig({ ...raw, dataplane: { driver: 'nftables', ...dataplane } });
    const running = nft({});
    const next = nft({ flowTimeoutTcpS: 600 });
    expect(next.dataplane.warnings).toHaveLength(1); // derived from flowTimeoutTcpS
    expect(planReload(running, next)).toEqual({
      changed: ['dataplane.flowTimeoutTcpS'],
      needRestart: ['dataplane.flowTimeoutTcpS'],
    });
  });
});
