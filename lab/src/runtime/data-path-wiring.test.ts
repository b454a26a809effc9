import { describe, expect, test } from 'vitest';
import { NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology } from '../topology/model.js';
import { agentConfig } from './agent.js';
import { backendSetupArgv, nodeAddresses, peerAddresses } from './backend-setup.js';
import { bpffsMountsUnder } from './bpffs.js';
import { backendListen } from './docker.js';
import { hostScript } from './netns-plan.js';

const routed = buildTopology({ id: 't', dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gre' });
const nftables = buildTopology({ id: 't', ...NFTABLES_DATA_PATH });

describe('lab data path - wiring', () => {
  test('agent.yaml: the driver, and for bpf the node-own bpf file system and pin name', () => {
    expect(agentConfig(routed, 'node2', '/run/l4fleet-lab/t/node2').dataplane).toEqual({
      driver: 'bpf',
      bpffsPath: '/run/l4fleet-lab/t/node2/bpffs',
      pinName: 'node2',
    });
    expect(agentConfig(nftables, 'node1', '/x').dataplane).toEqual({ driver: 'nftables' });
    // The lab's default (issue 14) is bpf.
    expect(agentConfig(buildTopology({ id: 't' }), 'node1', '/x').dataplane).toMatchObject({ driver: 'bpf' });
    expect(agentConfig(buildTopology({ dataplane: 'proxy' }), 'node1').dataplane).toEqual({ driver: 'proxy' });
  });

  test('routed backend: default route via the router on 198.18.3.0/24; VIPs on lo left to backend setup', () => {
    const script = hostScript(routed, 'backend1');
    expect(script).toContain('ip -n l4f-t-backend1 route replace default via 198.18.3.1');
    expect(script).toContain('addr replace 198.18.3.101/24 dev eth0');
    expect(script).not.toContain('dev lo');
    expect(hostScript(nftables, 'backend1')).toContain('198.51.100.10/32 dev lo');
  });

  test('encapsulated backends: default routes advertise an MSS whose encapsulated segment fits the 1,500-byte links', () => {
    // docs/backend-host.md "MTU and MSS", 0007 "MTU": a node drops a non-GSO packet that no longer fits (too-big, no
    // ICMP), so the backend's SYN-ACK must keep the client's segments small: gue with second chance's 12 / 24 bytes.
    const expected = { gue: [1420, 1368], ipip: [1440, 1400], gre: [1436, 1396] } as const;
    for (const [forwarding, [v4, v6]] of Object.entries(expected)) {
      const t = buildTopology({ id: 't', dataplane: 'bpf', backendNetwork: 'routed', forwarding: forwarding as 'gue' });
      const script = hostScript(t, 'backend2');
      expect(script, forwarding).toContain(`ip -n l4f-t-backend2 route replace default via 198.18.3.1 advmss ${v4}`);
      expect(script, forwarding).toContain(
        `ip -n l4f-t-backend2 -6 route replace default via 2001:db8:3::1 advmss ${v6}`,
      );
      // Only the backends: the client's and nodes' routes keep the kernel's MSS (their replies are not encapsulated).
      expect(hostScript(t, 'node1'), forwarding).not.toContain('advmss');
      expect(hostScript(t, 'client'), forwarding).not.toContain('advmss');
    }
    // The lab's default (bpf, routed, gue).
    expect(hostScript(buildTopology({ id: 't' }), 'backend1')).toContain('via 198.18.3.1 advmss 1420');
    // Nothing added on the way to the backend: the kernel's MSS.
    expect(hostScript(nftables, 'backend1')).not.toContain('advmss');
    expect(
      hostScript(buildTopology({ id: 't', forwarding: 'nat', backendNetwork: 'routed' }), 'backend1'),
    ).not.toContain('advmss');
  });

  test('nat: nodes forward IP (both families); backends hold no VIP and listen on the members port only', () => {
    const nat = buildTopology({ id: 't', forwarding: 'nat' });
    expect(hostScript(nat, 'node1')).toMatch(
      /sysctl -q .*-w net\.ipv4\.ip_forward=1 -w net\.ipv6\.conf\.all\.forwarding=1/,
    );
    expect(hostScript(nftables, 'node1')).not.toContain('ip_forward');
    expect(hostScript(nat, 'backend1')).not.toContain('dev lo');
    expect(backendListen(nat, 'backend1')).toEqual(['tcp:[::]:8080', 'udp:198.18.2.101:15000']);
    expect(backendListen(nftables, 'backend1')).toEqual([
      'tcp:[::]:80',
      'udp:198.51.100.11:7000',
      'udp:198.18.2.101:7000',
    ]);
  });

  test('backend setup: every VIP, the mode, every node address (both families), its interface and own dirs', () => {
    const argv = backendSetupArgv(routed, 'backend2', '/run/l4fleet-lab/t/backend2');
    const after = (flag: string) => argv[argv.indexOf(flag) + 1];
    expect(argv.slice(argv.indexOf('--vip') + 1, argv.indexOf('--forwarding'))).toEqual([
      '198.51.100.10',
      '198.51.100.11',
      '2001:db8:100::10',
    ]);
    expect(after('--forwarding')).toBe('gre');
    expect(argv.slice(argv.indexOf('--nodes') + 1, argv.indexOf('--interface'))).toEqual(nodeAddresses(routed));
    expect(nodeAddresses(routed)).toEqual([
      '198.18.2.11',
      '2001:db8:2::11',
      '198.18.2.12',
      '2001:db8:2::12',
      '198.18.2.13',
      '2001:db8:2::13',
    ]);
    expect(after('--interface')).toBe('eth0');
    expect(after('--bpffs')).toBe('/run/l4fleet-lab/t/backend2/bpffs');
    expect(after('--state-dir')).toBe('/run/l4fleet-lab/t/backend2/backend-state');
  });

  test('backend setup: the other backends as peers (second chance), both families, never itself', () => {
    const argv = backendSetupArgv(routed, 'backend2', '/run/l4fleet-lab/t/backend2');
    const peers = argv.slice(argv.indexOf('--peers') + 1);
    expect(peers).toEqual(peerAddresses(routed, 'backend2'));
    expect(peers).toContain('198.18.3.101');
    expect(peers).not.toContain('198.18.3.102');
    expect(peers.filter((p) => p.includes(':'))).toHaveLength(peers.length / 2);
    expect(peers).toHaveLength(2 * (routed.hosts.filter((h) => h.kind === 'backend').length - 1));
  });

  test('bpf mounts under the lab dir found in mountinfo, deepest first; other file systems and dirs ignored', () => {
    const mountinfo = [
      '30 1 0:26 / /sys/fs/bpf rw - bpf bpf rw',
      '31 1 0:27 / /run/l4fleet-lab/t/node1/bpffs rw - bpf bpf rw',
      '32 1 0:28 / /run/l4fleet-lab/t/backend1/bpffs rw,relatime shared:5 - bpf bpf rw',
      '33 1 0:29 / /run/l4fleet-lab/t/x rw - tmpfs tmpfs rw',
      '34 1 0:30 / /run/l4fleet-lab/tt/node1/bpffs rw - bpf bpf rw',
    ].join('\n');
    expect(bpffsMountsUnder('/run/l4fleet-lab/t', mountinfo)).toEqual([
      '/run/l4fleet-lab/t/backend1/bpffs',
      '/run/l4fleet-lab/t/node1/bpffs',
    ]);
  });
});
