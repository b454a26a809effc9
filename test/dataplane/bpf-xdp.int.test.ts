/**
 * The bpf driver's XDP fast path (`xdp: native`) against the kernel, on veth in network namespaces (root).
 *
 * veth runs XDP in native mode; an XDP_TX'd frame reaches the peer only when the peer runs an XDP program too
 * (test/support/xdp-pass.bpf.c on the router's side; platform-facts "XDP on veth"). bpf_fib_lookup needs forwarding on the
 * node's interface, and the client computes its checksums itself (see beforeAll). With both, the XDP program forwards known-neighbour flows itself; everything else goes on
 * to the tc program, which must give the same answer.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  type BpfDataPlane,
  type BpfDataPlaneOptions,
  bpfAvailable,
  createBpfDataPlane,
  DataPlaneError,
  type Forwarding,
  type VipTable,
} from '@l4fleet/dataplane';
import { buildTable, type Flow, type Protocol } from '@l4fleet/maglev';
import type { NetnsHost } from '@l4fleet/test-support/netns';
import { buildXdpPass, xdpPass } from '@l4fleet/test-support/xdp-pass';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  type CapturedPacket,
  captureEncapsulated,
  countersWhen,
  expectEncapsulated,
  type RawDatagram,
  sendRawDatagrams,
} from './bpf-wire.js';
import {
  backend4,
  backend6,
  CLIENT4,
  CLIENT6,
  clearRecorders,
  clientSource4,
  clientSource6,
  createDsrTopology,
  type DsrTopology,
  decapsulatingBackends,
  expectedBackend,
  flowKey,
  installFlowRecorders,
  landings as landingsOf,
  lineClient,
  NODE4,
  NODE6,
  nameServers,
  sendFlows as sendFlowsVia,
  VIP4,
  VIP6,
  warmNeighbours,
} from './topology.js';

const logger = pino({ level: 'silent' });
const SEED = 0x5eed_4321;
const BACKENDS = 3;
const BPFFS = `/run/l4fleet-xdp-test-${process.pid}`;
const built = bpfAvailable() === undefined;
const work = mkdtempSync(`${tmpdir()}/l4xdp-`);

let topo: DsrTopology;
const sendFlows = (flows: readonly Flow[]): Promise<void> => sendFlowsVia(topo, flows);
const landings = (): Promise<Map<string, number[]>> => landingsOf(topo);
const expected = expectedBackend;
const open: BpfDataPlane[] = [];
let pins = 0;

function bpf(extra: Partial<BpfDataPlaneOptions> = {}): BpfDataPlane {
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: topo.node.ns,
    nodeAddresses: [NODE4, NODE6],
    bpffsPath: BPFFS,
    pinName: `x${pins}`,
    xdp: 'native',
    logger,
    ...extra,
  });
  open.push(dp);
  return dp;
}

const GUE_PORT = 6080; // the default, which `l4fleet backend setup` decapsulates

function vipTable(address: string, port: number, protocol: Protocol, forwarding: Forwarding = 'l2'): VipTable {
  const v6 = address.includes(':');
  const backends = Array.from({ length: BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: v6 ? backend6(i) : backend4(i),
    port,
  }));
  return {
    vip: { address, port, protocol },
    hash: '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, 65_537),
    forwarding,
    guePort: GUE_PORT,
  };
}

/** `n` UDP flows (one datagram each) to both VIPs' `port`, from many client addresses. */
function udpFlows(n: number, port: number, sport: number): Flow[] {
  return [false, true].flatMap((v6) =>
    Array.from({ length: n }, (_x, i) => ({
      src: v6 ? clientSource6(i) : clientSource4(i),
      sport: sport + i,
      dst: v6 ? VIP6 : VIP4,
      dport: port,
      protocol: 'udp' as const,
    })),
  );
}

/** The XDP program attached to the node's eth0 in native mode (ip -j link), or undefined. */
async function xdpProgram(): Promise<{ id: number; name: string } | undefined> {
  const r = await topo.node.run(['ip', '-j', '-d', 'link', 'show', 'dev', 'eth0']);
  const [link] = JSON.parse(r.stdout) as { xdp?: { mode: number; prog?: { id: number; name: string } } }[];
  return link?.xdp?.prog ? { id: link.xdp.prog.id, name: link.xdp.prog.name } : undefined;
}

async function tcProgram(): Promise<string> {
  return (await topo.node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;
}

beforeAll(async () => {
  topo = await createDsrTopology({ backends: BACKENDS, extraSources: 100 });
  await installFlowRecorders(topo.backends);
  // An XDP program on the router's end of the node's link, so the node's XDP_TX frames are received there.
  await xdpPass(topo.router, 'n0', buildXdpPass(work));
  await topo.node.sh('sysctl -qw net.ipv4.conf.eth0.forwarding=1 net.ipv6.conf.eth0.forwarding=1');
  // A veth passes a packet's checksum-offload state (CHECKSUM_PARTIAL: the TCP / UDP checksum not yet computed)
  // along to the next veth, the router and the bridge; XDP works on bytes and loses it, so the backend would see
  // a wrong checksum. A packet from a wire always carries its full checksum: the client computes it, as a NIC does.
  await topo.client.sh('ethtool -K eth0 tx off');
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  pins += 1;
  await clearRecorders(topo.backends);
});

afterAll(async () => {
  await topo?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf data plane with the XDP fast path', () => {
  test('l2 - 200 flows land where the table predicts, each sent once by XDP_TX and counted once', async () => {
    const dp = bpf();
    const t4 = vipTable(VIP4, 2100, 'udp');
    const t6 = vipTable(VIP6, 2100, 'udp');
    await dp.apply([t4, t6]);
    await warmNeighbours(topo.node, BACKENDS);
    const flows = udpFlows(100, 2100, 21_000);
    await sendFlows(flows);
    const got = await landings();
    for (const f of flows) {
      expect(got.get(flowKey(f)), flowKey(f)).toEqual([expected(f.dst === VIP4 ? t4 : t6, f)]);
    }
    const c = await dp.counters();
    // Every datagram went by XDP (the neighbours are known), and the VIP counters saw each once, not twice.
    expect(c.xdp?.forwarded.packets).toBe(flows.length);
    expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(flows.length);
    expect(c.flowTable.entries).toBe(flows.length);
  }, 60_000);

  test('unknown neighbour - the first packet goes to tc (which asks ARP / ND), the next ones by XDP, to the same backend', async () => {
    const dp = bpf();
    const t4 = vipTable(VIP4, 2200, 'udp');
    const t6 = vipTable(VIP6, 2200, 'udp');
    await dp.apply([t4, t6]);
    const flows = udpFlows(1, 2200, 22_000);
    await sendFlowsVia(topo, flows, { flushNodeNeighbours: true });
    const got = await landings();
    for (const f of flows) expect(got.get(flowKey(f))).toEqual([expected(f.dst === VIP4 ? t4 : t6, f)]);
    const first = await dp.counters();
    expect(first.xdp?.forwarded.packets).toBe(0);
    expect(first.vips.reduce((n, v) => n + v.packets, 0)).toBe(2);
    // tc resolved the neighbours: the same flows again (new datagrams) now go by XDP, to the same backends.
    await clearRecorders(topo.backends);
    await sendFlows(flows);
    const again = await landings();
    for (const f of flows) expect(again.get(flowKey(f))).toEqual([expected(f.dst === VIP4 ? t4 : t6, f)]);
    expect((await dp.counters()).xdp?.forwarded.packets).toBe(2);
  }, 60_000);

  test('another host - a frame flooded to the node for another MAC is not forwarded (tc: PACKET_HOST)', async () => {
    const dp = bpf();
    await dp.apply([vipTable(VIP4, 2300, 'udp')]);
    // From the router's bridge: an Ethernet frame to a MAC nobody has, so br0 floods it to every port.
    const frame = `
import socket, struct
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); return ~(s + (s >> 16)) & 0xffff
src, dst = socket.inet_aton('${CLIENT4}'), socket.inet_aton('${VIP4}')
udp = struct.pack('!HHHH', 23000, 2300, 9, 0) + b'x'
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('br0', 0))
mac = open('/sys/class/net/br0/address').read().strip().replace(':', '')
for _ in range(5):
    s.send(bytes.fromhex('02000000ee99') + bytes.fromhex(mac) + b'\\x08\\x00' + ip + udp)
`;
    await topo.router.run(['python3', '-c', frame]);
    await new Promise((r) => setTimeout(r, 300));
    expect([...(await landings()).keys()].filter((k) => k.endsWith('|23000'))).toEqual([]);
    const c = await dp.counters();
    expect(c.xdp?.forwarded.packets).toBe(0);
    expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(0);
  }, 60_000);

  test('short packets - an IP length field that leaves no room for the ports, or runs past the frame, is passed to tc, which drops it as port', async () => {
    const dp = bpf();
    await dp.apply([vipTable(VIP4, 2310, 'udp'), vipTable(VIP6, 2310, 'udp')]);
    await warmNeighbours(topo.node, BACKENDS);
    const mac = (await topo.node.sh('cat /sys/class/net/eth0/address')).trim();
    const v4 = { src: CLIENT4, dst: VIP4, sport: 23_100, dport: 2310 };
    const v6 = { src: CLIENT6, dst: VIP6, sport: 23_100, dport: 2310 };
    const bad: RawDatagram[] = [
      { ...v4, ipLength: 20 },
      { ...v4, ipLength: 20 + 9 + 100 },
      { ...v6, ipLength: 0 },
      { ...v6, ipLength: 9 + 100 },
    ];
    // From the router's bridge to the node's MAC, the good ones last: once they are counted, the rest were seen.
    await sendRawDatagrams(topo.router, 'br0', mac, [...bad, ...bad, v4, v6]);
    const c = await countersWhen(dp, (x) => x.vips.reduce((n, v) => n + v.packets, 0) >= 2);
    expect(c.vips.map((v) => v.packets)).toEqual([1, 1]);
    expect(c.drops.port.packets).toBe(2 * bad.length);
    expect(c.xdp?.forwarded.packets ?? 0).toBeLessThanOrEqual(2);
  }, 60_000);

  test.each(['ipip', 'gre', 'gue'] as const)(
    'encapsulation on the wire - %s by XDP_TX: the same outer header as tc writes, over bytes XDP did not zero (IPv4 and IPv6)',
    async (mode) => {
      const dp = bpf();
      const t4 = vipTable(VIP4, 2450, 'udp', mode);
      const t6 = vipTable(VIP6, 2451, 'tcp', mode);
      await dp.apply([t4, t6]);
      await warmNeighbours(topo.node, BACKENDS);
      const f4: Flow = { src: CLIENT4, sport: 24_500, dst: VIP4, dport: 2450, protocol: 'udp' };
      const f6: Flow = { src: CLIENT6, sport: 24_501, dst: VIP6, dport: 2451, protocol: 'tcp' };
      for (const [t, f] of [
        [t4, f4],
        [t6, f6],
      ] as const) {
        const owner = expected(t, f);
        const v6 = f.dst === VIP6;
        const got = await captureEncapsulated(topo.backends[owner] as NetnsHost, () => sendFlows([f]), {
          count: 1,
          seconds: 3,
          guePort: GUE_PORT,
        });
        expect(got.length, `${mode} IPv${v6 ? 6 : 4}: captured at b${owner}`).toBe(1);
        expectEncapsulated(got[0] as CapturedPacket, {
          mode,
          flow: f,
          node: v6 ? NODE6 : NODE4,
          backend: v6 ? backend6(owner) : backend4(owner),
          seed: SEED,
          guePort: GUE_PORT,
        });
      }
      expect((await dp.counters()).xdp?.forwarded.packets).toBe(2);
    },
    60_000,
  );

  test('second chance by XDP_TX - a TCP flow whose slot changed owner names the previous owner in the GUE header, every byte of it written', async () => {
    const dp = bpf();
    // Every slot owned by b1 and owned by b0 before: each new TCP flow goes to b1 naming b0.
    const withPrevious = (t: VipTable): VipTable => ({
      ...t,
      slots: new Int32Array(t.slots.length).fill(1),
      previousSlots: new Int32Array(t.slots.length).fill(0),
    });
    await dp.apply([
      withPrevious(vipTable(VIP4, 2460, 'tcp', 'gue')),
      withPrevious(vipTable(VIP6, 2460, 'tcp', 'gue')),
    ]);
    await warmNeighbours(topo.node, BACKENDS);
    for (const [src, dst, v6] of [
      [CLIENT4, VIP4, false],
      [CLIENT6, VIP6, true],
    ] as const) {
      const f: Flow = { src, sport: 24_600, dst, dport: 2460, protocol: 'tcp' };
      const got = await captureEncapsulated(topo.backends[1] as NetnsHost, () => sendFlows([f]), {
        count: 1,
        seconds: 3,
        guePort: GUE_PORT,
      });
      expect(got.length, `IPv${v6 ? 6 : 4}: captured at b1`).toBe(1);
      const p = got[0] as CapturedPacket;
      expect(p.gueHeader).toEqual({
        hlen: v6 ? 5 : 2,
        proto: v6 ? 41 : 4,
        flags: 0,
        privateType: 0x4c46,
        hopIndex: 0,
        hopCount: 1,
        hop: v6 ? backend6(0) : backend4(0),
      });
      expect([p.innerSrc, p.innerDst, p.innerSport, p.innerDport]).toEqual([f.src, f.dst, f.sport, f.dport]);
      expect(p.lengthOk).toBe(true);
      expect(p.ipv4ChecksumOk).toBe(true);
    }
    const c = await dp.counters();
    expect(c.secondChance?.tagged.packets).toBe(2);
    expect(c.xdp?.forwarded.packets).toBe(2);
  }, 60_000);

  test('encapsulation - GUE, IPIP and GRE by XDP_TX through the backend decapsulator: replies come from the predicted backend', async () => {
    const stop = await nameServers(topo.backends, 2400);
    await warmNeighbours(topo.node, BACKENDS);
    const undo = await decapsulatingBackends(topo, `${BPFFS}-decap`, [NODE4, NODE6]);
    try {
      const dp = bpf();
      let sport = 24_000;
      let asked = 0;
      for (const mode of ['gue', 'ipip', 'gre'] as const) {
        const t4 = vipTable(VIP4, 2400, 'tcp', mode);
        const t6 = vipTable(VIP6, 2400, 'tcp', mode);
        await dp.apply([t4, t6]);
        for (const [t, src] of [
          [t4, CLIENT4],
          [t6, CLIENT6],
        ] as const) {
          for (let i = 0; i < 3; i++, sport++) {
            const f: Flow = { src, sport, dst: t.vip.address, dport: 2400, protocol: 'tcp' };
            const c = lineClient(topo.client, src, sport, t.vip.address, 2400);
            try {
              expect(await c.ask(), `${mode} ${flowKey(f)}`).toBe(`b${expected(t, f)}`);
              expect(await c.ask(), `${mode} ${flowKey(f)}`).toBe(`b${expected(t, f)}`);
              asked += 1;
            } finally {
              c.close();
            }
          }
        }
      }
      const c = await dp.counters();
      // SYN, ACK, two requests with their ACKs at least per connection, all by XDP.
      expect(c.xdp?.forwarded.packets ?? 0).toBeGreaterThanOrEqual(asked * 4);
      expect(c.drops['too-big']?.packets ?? 0).toBe(0);
    } finally {
      stop();
      await undo();
    }
  }, 120_000);

  test('too big - a full-MTU packet with GUE is passed to tc, which drops and counts it', async () => {
    const dp = bpf();
    await dp.apply([vipTable(VIP4, 2500, 'udp', 'gue')]);
    await topo.client.run([
      'python3',
      '-c',
      `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IP, 10, 2); s.sendto(b'x' * 1472, ('${VIP4}', 2500))`,
    ]);
    await new Promise((r) => setTimeout(r, 300));
    const c = await dp.counters();
    expect(c.drops['too-big']?.packets).toBe(1);
    expect(c.xdp?.forwarded.packets).toBe(0);
  }, 60_000);

  test('restart and mode change - a restart keeps the XDP program (fast path); xdp off detaches it and tc forwards alone; removeState detaches both', async () => {
    const t4 = vipTable(VIP4, 2600, 'udp');
    const first = bpf();
    await first.apply([t4]);
    const prog = await xdpProgram();
    expect(prog?.name).toBe('l4f_node_xdp');
    expect((await first.programStats()).xdp?.progId).toBe(prog?.id);
    await first.close();
    expect((await xdpProgram())?.id).toBe(prog?.id);

    const second = bpf();
    expect((await second.apply([t4])).transactions).toBe(0);
    expect((await xdpProgram())?.id).toBe(prog?.id);
    await second.close();

    const off = bpf({ xdp: 'off' });
    expect((await off.apply([t4])).transactions).toBe(0);
    expect(await xdpProgram()).toBeUndefined();
    const flows = udpFlows(20, 2600, 26_000).filter((f) => f.dst === VIP4);
    await sendFlows(flows);
    const got = await landings();
    for (const f of flows) expect(got.get(flowKey(f))).toEqual([expected(t4, f)]);
    expect((await off.counters()).xdp).toBeUndefined();
    expect((await off.programStats()).xdp).toBeUndefined();
    await off.close();

    const again = bpf();
    await again.apply([t4]);
    expect((await xdpProgram())?.name).toBe('l4f_node_xdp');
    await again.close({ removeState: true });
    expect(await xdpProgram()).toBeUndefined();
    expect(await tcProgram()).not.toContain('l4f_node');
  }, 60_000);

  test('no native XDP - a device without it gets an error that says so', async () => {
    // A bridge has no native XDP (no ndo_bpf): the kernel offers only generic mode there.
    await topo.node.sh('ip link add xd0 type bridge && ip link set xd0 up');
    try {
      const dp = bpf({ interface: 'xd0', pinName: `x${pins}-dummy` });
      await expect(dp.apply([vipTable(VIP4, 2700, 'udp')])).rejects.toThrow(/native mode on ifindex \d+: .*native XDP/);
    } finally {
      await topo.node.sh('ip link del xd0');
    }
  }, 60_000);

  test("the veth's pass program leaves every other bpf file system alone (iproute2 is given one of its own)", async () => {
    const foreign = `${work}/foreign-bpffs`;
    mkdirSync(foreign);
    spawnSync('mount', ['-t', 'bpf', 'bpf', foreign]);
    try {
      await xdpPass(topo.router, 'n0', undefined);
      await xdpPass(topo.router, 'n0', buildXdpPass(work));
      for (const fs of [foreign, BPFFS]) expect(existsSync(`${fs}/tc/globals`), fs).toBe(false);
    } finally {
      spawnSync('umount', [foreign]);
    }
  }, 60_000);

  test('bad input - xdp must be off or native', () => {
    expect(() => bpf({ xdp: 'generic' as 'native' })).toThrow(DataPlaneError);
    expect(() => bpf({ xdp: 'generic' as 'native' })).toThrow(/xdp: "generic" is not one of off, native/);
  });
});
