import { describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { dataPathOf } from './data-path.js';
import { labFleet } from './fleet.js';
import { backendAttachment, buildTopology, hostsOfKind, segmentOf } from './model.js';

describe('lab data path - options', () => {
  test('defaults: nftables, backends on the nodes segment, l2; bpf with routed backends defaults to gue', () => {
    expect(dataPathOf()).toEqual({ dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'l2' });
    expect(dataPathOf({ dataplane: 'bpf', backendNetwork: 'routed' }).forwarding).toBe('gue');
    expect(dataPathOf({ dataplane: 'bpf' }).forwarding).toBe('l2');
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
    [{ forwarding: 'vxlan' }, /--forwarding "vxlan" is not one of l2, ipip, gre, gue/],
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
    const t = buildTopology();
    expect(backendAttachment(t, 'backend1').ipv4).toBe('198.18.2.101');
    const fleet = labFleet(t) as { pools: { forwarding?: string }[] };
    for (const pool of fleet.pools) expect(pool.forwarding).toBeUndefined();
  });
});
