import { describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import {
  DEFAULT_DATA_PATH,
  dataPathOf,
  encapsulated,
  impliedDataPlane,
  memberPort,
  NFTABLES_DATA_PATH,
} from './data-path.js';
import { labFleet } from './fleet.js';
import { backendAttachment, buildTopology, hostsOfKind, segmentOf } from './model.js';

describe('lab data path - options', () => {
  test('default: bpf, routed backends, gue (issue 14); the other options follow the data plane given', () => {
    expect(dataPathOf()).toEqual({ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue' });
    expect(dataPathOf()).toEqual(DEFAULT_DATA_PATH);
    expect(dataPathOf({ dataplane: 'bpf' })).toEqual(DEFAULT_DATA_PATH);
    expect(dataPathOf({ dataplane: 'bpf', forwarding: 'l2' })).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'bpf' });
    expect(dataPathOf({ dataplane: 'bpf', backendNetwork: 'l2' }).forwarding).toBe('l2');
    expect(dataPathOf({ dataplane: 'nftables' })).toEqual(NFTABLES_DATA_PATH);
    expect(dataPathOf({ dataplane: 'proxy' })).toEqual({ ...NFTABLES_DATA_PATH, dataplane: 'proxy' });
  });

  test.each([
    [{ forwarding: 'nat' }, 'nftables'],
    [{ forwarding: 'nat', backendNetwork: 'routed' }, 'nftables'],
    [{ forwarding: 'gue' }, 'bpf'],
    [{ forwarding: 'ipip' }, 'bpf'],
    [{ forwarding: 'gre' }, 'bpf'],
    [{ backendNetwork: 'routed' }, 'bpf'],
    [{ forwarding: 'l2' }, undefined],
    [{ backendNetwork: 'l2' }, undefined],
    [{}, undefined],
  ] as const)('the data plane %j asks for: %s', (options, dataplane) => {
    expect(impliedDataPlane(options)).toBe(dataplane);
  });

  test.each([
    [
      { dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'l2' },
      /--forwarding "l2" cannot reach routed backends/,
    ],
    [{ dataplane: 'nftables', forwarding: 'gue' }, /--forwarding "gue" needs --dataplane bpf/],
    [{ dataplane: 'proxy', forwarding: 'ipip' }, /--forwarding "ipip" needs --dataplane bpf/],
    [{ dataplane: 'nftables', backendNetwork: 'routed' }, /--backend-network "routed" needs --dataplane bpf/],
    [{ dataplane: 'xdp' }, /--dataplane "xdp" is not one of nftables, bpf, proxy/],
    [{ forwarding: 'vxlan' }, /--forwarding "vxlan" is not one of l2, ipip, gre, gue, nat/],
    [{ dataplane: 'bpf', forwarding: 'nat' }, /--forwarding "nat" needs --dataplane nftables \(--dataplane "bpf"/],
    [{ dataplane: 'proxy', forwarding: 'nat' }, /--forwarding "nat" needs --dataplane nftables \(--dataplane "proxy"/],
  ] as const)('refused, naming the option and the value: %j', (options, message) => {
    // biome-ignore lint/suspicious/noExplicitAny: the point is to pass values the types forbid
    const call = () => dataPathOf(options as any);
    expect(call).toThrow(LabError);
    expect(call).toThrow(message);
  });
});

describe('lab data path - routed topology', () => {
  test('routed backends sit on 198.18.3.0/24 behind the router, not on the fabric; the fleet names their forwarding', () => {
    const t = buildTopology({ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'ipip' });
    const fabric = segmentOf(t, 'fabric').attachments.map((a) => a.host);
    for (const b of hostsOfKind(t, 'backend')) {
      expect(fabric).not.toContain(b.name);
      expect(backendAttachment(t, b.name).ipv4).toMatch(/^198\.18\.3\.\d+$/);
    }
    expect(segmentOf(t, 'backends').hub).toBe('router');
    const fleet = labFleet(t) as { pools: { forwarding?: string; members: { address: string }[] }[] };
    for (const pool of fleet.pools) {
      expect(pool.forwarding).toBe('ipip');
      for (const m of pool.members) expect(m.address).toMatch(/^(198\.18\.3\.|2001:db8:3::)/);
    }
  });

  test('l2 backends stay on the fabric and the fleet file carries no forwarding (as before)', () => {
    const t = buildTopology(NFTABLES_DATA_PATH);
    expect(backendAttachment(t, 'backend1').ipv4).toBe('198.18.2.101');
    const fleet = labFleet(t) as { pools: { forwarding?: string }[] };
    for (const pool of fleet.pools) expect(pool.forwarding).toBeUndefined();
  });
});

describe('lab data path - nat', () => {
  test('nat under nftables, with backends on the segment (default) or routed: replies come back through the node', () => {
    expect(dataPathOf({ forwarding: 'nat' })).toEqual({
      dataplane: 'nftables',
      backendNetwork: 'l2',
      forwarding: 'nat',
    });
    expect(dataPathOf({ forwarding: 'nat', backendNetwork: 'routed' }).backendNetwork).toBe('routed');
    expect(encapsulated(dataPathOf({ forwarding: 'nat' }))).toBe(false);
  });

  test('the fleet: every pool forwards nat, members on the VIP port + 8000 (web :80 -> :8080, echo-udp :7000 -> :15000)', () => {
    const t = buildTopology({ forwarding: 'nat' });
    expect(memberPort(t.dataPath, 80)).toBe(8_080);
    expect(memberPort(buildTopology().dataPath, 80)).toBe(80);
    const fleet = labFleet(t) as { pools: { name: string; forwarding?: string; members: { port: number }[] }[] };
    const ports = Object.fromEntries(fleet.pools.map((p) => [p.name, [...new Set(p.members.map((m) => m.port))]]));
    expect(ports).toEqual({ web: [8_080], 'echo-udp': [15_000], web6: [8_080] });
    for (const pool of fleet.pools) expect(pool.forwarding).toBe('nat');
  });
});
