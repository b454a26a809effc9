import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { parseAgentConfig } from './parse.js';

const minimal = {
  node: { name: 'node1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  etcd: { endpoints: ['http://127.0.0.1:2379'] },
};

const withDataPlane = (dataplane: unknown, node: object = {}) => ({
  ...minimal,
  node: { ...minimal.node, ...node },
  dataplane,
});

function problemsOf(raw: unknown): string[] {
  try {
    parseAgentConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return (err as AgentError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected the config to be refused');
}

describe('agent config - dataplane bpf', () => {
  test('driver bpf comes back defaulted: encapsulation sources from the next hops, pins under /sys/fs/bpf/l4fleet', () => {
    const c = parseAgentConfig(withDataPlane({ driver: 'bpf' }, { address6: '2001:db8::11' }));
    expect(c.dataplane).toEqual({
      driver: 'bpf',
      table: 'l4fleet',
      encapSourceAddress: '198.18.0.11',
      encapSourceAddress6: '2001:db8::11',
      bpffsPath: '/sys/fs/bpf',
      pinName: 'l4fleet',
      xdp: 'off',
      verifyIntervalS: 60,
    });
  });

  test('without node.address6 there is no IPv6 encapsulation source', () => {
    const c = parseAgentConfig(withDataPlane({ driver: 'bpf' }));
    expect(c.dataplane.encapSourceAddress6).toBeUndefined();
    expect(c.dataplane.encapSourceAddress).toBe('198.18.0.11');
  });

  test('explicit bpf options are kept', () => {
    const c = parseAgentConfig(
      withDataPlane({
        driver: 'bpf',
        encapSourceAddress: '198.18.0.99',
        encapSourceAddress6: '2001:db8::99',
        bpffsPath: '/run/bpf',
        pinName: 'lb_a',
        flowTableSize: 1024,
        xdp: 'native',
      }),
    );
    expect(c.dataplane).toMatchObject({
      encapSourceAddress: '198.18.0.99',
      encapSourceAddress6: '2001:db8::99',
      bpffsPath: '/run/bpf',
      pinName: 'lb_a',
      flowTableSize: 1024,
      xdp: 'native',
    });
  });

  test.each([
    [{ encapSourceAddress: '2001:db8::1' }, 'dataplane.encapSourceAddress: "2001:db8::1"'],
    [{ encapSourceAddress: 'lb1' }, 'dataplane.encapSourceAddress: "lb1"'],
    [{ encapSourceAddress6: '198.18.0.1' }, 'dataplane.encapSourceAddress6: "198.18.0.1"'],
    [{ bpffsPath: 'sys/fs/bpf' }, 'dataplane.bpffsPath: "sys/fs/bpf" is not an absolute path'],
    [{ pinName: 'a/b' }, 'dataplane.pinName: "a/b" is not a pin directory name'],
    [{ pinName: '' }, 'dataplane.pinName: "" is not a pin directory name'],
    [{ flowTableSize: 0 }, 'dataplane.flowTableSize: 0'],
    [{ xdp: 'generic' }, 'dataplane.xdp: "generic"'],
    [{ flowTimeoutTcpS: 300 }, 'dataplane.flowTimeoutTcpS: 300 is only read by driver nftables (driver is "bpf")'],
    [{ deltaWriter: 'nft' }, 'dataplane.deltaWriter: "nft" is only read by driver nftables (driver is "bpf")'],
  ])('bad bpf option %j names the field and the value', (extra, message) => {
    const problems = problemsOf(withDataPlane({ driver: 'bpf', ...extra }));
    expect(problems.join('\n')).toContain(message);
  });

  test.each([
    ['nftables', { pinName: 'x' }, 'dataplane.pinName: "x" is only read by driver bpf (driver is "nftables")'],
    [
      'proxy',
      { encapSourceAddress: '198.18.0.11' },
      'dataplane.encapSourceAddress: "198.18.0.11" is only read by driver bpf',
    ],
    ['dry-run', { bpffsPath: '/sys/fs/bpf' }, 'dataplane.bpffsPath: "/sys/fs/bpf" is only read by driver bpf'],
    [
      'nftables',
      { proxyBindAddress: '127.0.0.1' },
      'dataplane.proxyBindAddress: "127.0.0.1" is only read by driver proxy (driver is "nftables")',
    ],
    ['bpf', { proxyBindAddress: '::1' }, 'dataplane.proxyBindAddress: "::1" is only read by driver proxy'],
  ])("another driver's option under driver %s is refused", (driver, extra, message) => {
    expect(problemsOf(withDataPlane({ driver, ...extra })).join('\n')).toContain(message);
  });

  test('an unknown driver is one problem, not also one per option', () => {
    expect(problemsOf(withDataPlane({ driver: 'xdp', pinName: 'x' }))).toEqual([
      'dataplane.driver: "xdp" is not one of nftables | bpf | proxy | dry-run',
    ]);
  });

  test('other drivers carry no bpf options', () => {
    expect(parseAgentConfig(withDataPlane({ driver: 'nftables' })).dataplane).toEqual({
      driver: 'nftables',
      table: 'l4fleet',
      verifyIntervalS: 60,
    });
  });
});

describe('agent config - dataplane flow timeouts', () => {
  test('flowTimeoutTcpS / flowTimeoutUdpS are accepted (an older agent.yaml still starts) with a warning naming the profile field', () => {
    const c = parseAgentConfig(withDataPlane({ driver: 'nftables', flowTimeoutTcpS: 600, flowTimeoutUdpS: 60 }));
    expect(c.dataplane.warnings).toEqual([
      "dataplane.flowTimeoutTcpS: 600 has no effect since VIP profiles (design note 0012): a VIP's flows idle out at its vips[].profile.idleTimeoutS (default 300 s TCP, 30 s UDP); set that in the fleet and remove this",
      "dataplane.flowTimeoutUdpS: 60 has no effect since VIP profiles (design note 0012): a VIP's flows idle out at its vips[].profile.idleTimeoutS (default 300 s TCP, 30 s UDP); set that in the fleet and remove this",
    ]);
    expect(parseAgentConfig(withDataPlane({ driver: 'nftables' })).dataplane.warnings).toBeUndefined();
  });
});

// The reconciler's verify (DataPlane.verify: state changed by hand repaired) runs every minute; a node where something
// else rewrites the tables on purpose, or a very large one, may set it, and 0 turns it off.
describe('agent config - dataplane.verifyIntervalS', () => {
  test('default 60 s for every driver; 0 is off; kept when given', () => {
    for (const driver of ['nftables', 'bpf', 'proxy', 'dry-run']) {
      expect(parseAgentConfig(withDataPlane({ driver })).dataplane.verifyIntervalS).toBe(60);
    }
    expect(parseAgentConfig(withDataPlane({ verifyIntervalS: 0 })).dataplane.verifyIntervalS).toBe(0);
    expect(parseAgentConfig(withDataPlane({ verifyIntervalS: 600 })).dataplane.verifyIntervalS).toBe(600);
  });

  test.each([
    [-1, '-1'],
    [1.5, '1.5'],
    ['60', '"60"'],
    [86_401, '86401'],
  ])('%j is refused naming the field and the value', (v, shown) => {
    expect(problemsOf(withDataPlane({ verifyIntervalS: v }))).toEqual([
      `dataplane.verifyIntervalS: ${shown} is not seconds, 0 for off (0-86400)`,
    ]);
  });
});
