/**
 * `forwarding: nat` in the nftables driver against the kernel, in network namespaces (root; run under
 * /tmp/l4fleet-lab.lock): port translation to the Maglev-chosen member for TCP and UDP over IPv4 and IPv6, replies
 * through the node (SNAT), profile timeouts as conntrack timeouts (idle expiry with drop and reset, half-open
 * connections cleaned up at the handshake timeout), and the refusals. Design note 0012.
 */
import type { VipProfile } from '@l4fleet/config';
import { createNftablesDataPlane, type DataPlane, DataPlaneError, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow, type Protocol, slotOf } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { natProbes, serveMembers } from './nat-hand-edits.js';
import {
  BLACKHOLE4,
  createNatTopology,
  holdConnection,
  MEMBER_PORT,
  member4,
  member6,
  NAT_CLIENT_PY,
  NAT_CLIENT4,
  NAT_CLIENT6,
  NAT_NODE4,
  NAT_NODE6,
  NAT_VIP4,
  NAT_VIP6,
  type NatTopology,
} from './nat-topology.js';

const logger = pino({ level: 'silent' });
const SEED = 0x5eed_0018;
const MEMBERS = 3;
const VIP_PORT = 443;

let topo: NatTopology;
const open: DataPlane[] = [];

function dataPlane(log = logger): DataPlane {
  const dp = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, logger: log });
  open.push(dp);
  return dp;
}

function natTable(opts: {
  address: string;
  protocol: Protocol;
  port?: number;
  profile?: VipProfile;
  members?: readonly string[];
  size?: number;
}): VipTable {
  const v6 = opts.address.includes(':');
  const addresses = opts.members ?? Array.from({ length: MEMBERS }, (_x, i) => (v6 ? member6(i) : member4(i)));
  const backends = addresses.map((address, i) => ({ name: `m${i}`, address, port: MEMBER_PORT }));
  return {
    vip: { address: opts.address, port: opts.port ?? VIP_PORT, protocol: opts.protocol },
    hash: '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, opts.size ?? 251),
    forwarding: 'nat',
    ...(opts.profile ? { profile: opts.profile } : {}),
  };
}

type Answer = { reply?: string; from?: [string, number]; error?: string };

async function request(flows: readonly (Omit<Flow, 'src'> & { src?: string })[]): Promise<Answer[]> {
  const r = await topo.client.run(['python3', '-c', NAT_CLIENT_PY], {
    input: JSON.stringify(flows),
    timeoutMs: 60_000,
  });
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Answer);
}

/** Conntrack entries of the node to `dst` (the listing drops expired entries, unlike nf_conntrack_count). */
async function conntrackTo(dst: string, state?: string): Promise<number> {
  const r = await topo.node.run(['cat', '/proc/net/nf_conntrack']);
  return r.stdout
    .split('\n')
    .filter((l) => l.includes(` dst=${dst} `) && (state === undefined || l.includes(` ${state} `))).length;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  topo = await createNatTopology({ members: MEMBERS });
  await serveMembers(topo);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  await topo.node.run(['conntrack', '-F']); // Debian conntrack: the next test counts only its own entries
});

afterAll(async () => {
  await topo?.cleanup();
});

describe('nftables nat', () => {
  test('port translation - tcp and udp, IPv4 and IPv6: VIP:443 reaches the Maglev-chosen member on :8443, from the node address; replies come back from the VIP', async () => {
    const dp = dataPlane();
    const tables = [
      natTable({ address: NAT_VIP4, protocol: 'tcp' }),
      natTable({ address: NAT_VIP4, protocol: 'udp' }),
      natTable({ address: NAT_VIP6, protocol: 'tcp' }),
      natTable({ address: NAT_VIP6, protocol: 'udp' }),
    ];
    const result = await dp.apply(tables);
    expect(result.vips.map((v) => v.action)).toEqual(['added', 'added', 'added', 'added']);
    const flows = tables.flatMap((t) =>
      Array.from({ length: 12 }, (_x, i) => ({
        src: t.vip.address.includes(':') ? NAT_CLIENT6 : NAT_CLIENT4,
        sport: 20_000 + i + (t.vip.protocol === 'udp' ? 100 : 0),
        dst: t.vip.address,
        dport: VIP_PORT,
        protocol: t.vip.protocol,
      })),
    );
    const answers = await request(flows);
    expect(answers).toHaveLength(flows.length);
    const seen = new Set<string>();
    flows.forEach((f, k) => {
      const t = tables.find((x) => x.vip.address === f.dst && x.vip.protocol === f.protocol) as VipTable;
      const want = t.backends[t.slots[slotOf(f, t.slots.length, t.seed, t.hash)] as number]?.name;
      const node = f.dst.includes(':') ? NAT_NODE6 : NAT_NODE4;
      // The member answered (port 8443), saw the node as the peer (SNAT), and the reply came back from VIP:443.
      expect(answers[k], JSON.stringify(f)).toEqual({ reply: `${want} ${node}`, from: [f.dst, VIP_PORT] });
      seen.add(want as string);
    });
    expect(seen.size).toBe(MEMBERS);
    const counters = await dp.counters();
    expect(counters.vips.find((v) => v.vip === `${NAT_VIP4}:443/tcp`)?.packets).toBe(12);
  });

  test('port filtering - another port of a NAT address is dropped and counted, not routed back', async () => {
    const dp = dataPlane();
    await dp.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
    const [a] = await request([{ src: NAT_CLIENT4, sport: 21_000, dst: NAT_VIP4, dport: 444, protocol: 'tcp' }]);
    expect(a?.error).toMatch(/timeout|timed out/);
    expect((await dp.counters()).drops.port.packets).toBeGreaterThan(0);
  });

  test('verify - nothing to repair writes nothing; the NAT table deleted by hand is written again and serves', async () => {
    const t = natTable({ address: NAT_VIP4, protocol: 'tcp' });
    // The netdev table holds the NAT VIP's echo chain: its light read must find it as written (no `driftFound`).
    const warned: { event?: string }[] = [];
    const dp = dataPlane(pino({ level: 'warn' }, { write: (line: string) => warned.push(JSON.parse(line)) }));
    await dp.apply([t]);
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      expect((await dp.verify()).transactions).toBe(0);
      runs.push(Math.round(performance.now() - started));
    }
    console.log(`nat verify, nothing to repair, 1 NAT VIP of 251 slots: ${runs.join(', ')} ms`);
    expect(warned.filter((w) => w.event === 'driftFound')).toEqual([]);
    await topo.node.run(['nft', 'delete', 'table', 'inet', 'l4fleet_nat']);
    expect((await dp.apply([t])).transactions).toBe(0);
    const repaired = await dp.verify();
    expect(repaired.transactions).toBe(1);
    const [a] = await request([{ src: NAT_CLIENT4, sport: 21_100, dst: NAT_VIP4, dport: VIP_PORT, protocol: 'tcp' }]);
    expect(a?.reply).toMatch(/^m\d /);
    expect((await dp.verify()).transactions).toBe(0);
  });

  test('a VIP removed while its address stays served: its open connection ends (every packet drops), the other VIP serves', async () => {
    const dp = dataPlane();
    const other = natTable({ address: NAT_VIP4, protocol: 'tcp', port: 80 });
    await dp.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' }), other]);
    const c = holdConnection(topo.client, NAT_VIP4, 2);
    try {
      expect(await c.ready()).toBe('connected');
      expect(await c.send()).toMatch(/^m\d /);
      const dropsBefore = (await dp.counters()).drops.port.packets;
      await dp.apply([other]);
      // conntrack still holds the connection's entry: only the served filter (every packet) stops it.
      expect(await c.send()).toBe('TimeoutError');
      expect((await dp.counters()).drops.port.packets).toBeGreaterThan(dropsBefore);
      const [a] = await request([{ src: NAT_CLIENT4, sport: 21_001, dst: NAT_VIP4, dport: 80, protocol: 'tcp' }]);
      expect(a?.reply).toMatch(/^m\d /);
    } finally {
      c.close();
    }
  });

  test.each([
    ['drop', 'TimeoutError'],
    ['reset', 'ConnectionResetError'],
  ] as const)(
    'idle timeout - a connection idle past idleTimeoutS (2 s) loses its state; onTimeout %s: the next segment gets %s',
    async (onTimeout, outcome) => {
      const dp = dataPlane();
      const profile = { idleTimeoutS: 2, tcpHandshakeTimeoutS: 5, tcpCloseTimeoutS: 5, onTimeout };
      await dp.apply([natTable({ address: NAT_VIP4, protocol: 'tcp', profile })]);
      const c = holdConnection(topo.client, NAT_VIP4, 2);
      try {
        expect(await c.ready()).toBe('connected');
        expect(await c.send()).toMatch(/^m\d 198\.18\.82\.2$/);
        await sleep(1_000);
        expect(await c.send()).toMatch(/^m\d /); // within the idle time: still served
        expect(await conntrackTo(NAT_VIP4, 'ESTABLISHED')).toBe(1);
        await sleep(3_000);
        expect(await conntrackTo(NAT_VIP4)).toBe(0);
        expect(await c.send()).toBe(outcome);
      } finally {
        c.close();
      }
    },
  );

  test('idle timeout - the same pause under the default profile (300 s) keeps the connection', async () => {
    const dp = dataPlane();
    await dp.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
    const c = holdConnection(topo.client, NAT_VIP4, 2);
    try {
      expect(await c.ready()).toBe('connected');
      expect(await c.send()).toMatch(/^m\d /);
      await sleep(4_000);
      expect(await c.send()).toMatch(/^m\d /);
    } finally {
      c.close();
    }
  });

  test('udp idle timeout - a UDP flow idle past idleTimeoutS loses its state', async () => {
    const dp = dataPlane();
    await dp.apply([natTable({ address: NAT_VIP4, protocol: 'udp', profile: { idleTimeoutS: 2, onTimeout: 'drop' } })]);
    await request([{ src: NAT_CLIENT4, sport: 22_000, dst: NAT_VIP4, dport: VIP_PORT, protocol: 'udp' }]);
    expect(await conntrackTo(NAT_VIP4)).toBe(1);
    await sleep(1_000);
    expect(await conntrackTo(NAT_VIP4)).toBe(1);
    await sleep(2_000);
    expect(await conntrackTo(NAT_VIP4)).toBe(0);
  });

  test('handshake timeout - half-open connections (SYN only) of a flood are cleaned up at tcpHandshakeTimeoutS, so the state stays bounded', async () => {
    const dp = dataPlane();
    // Members that never answer: every SYN leaves a SYN_SENT entry on the node.
    const dead = [BLACKHOLE4];
    await dp.apply([
      natTable({ address: NAT_VIP4, protocol: 'tcp', members: dead, profile: hs(2) }),
      natTable({ address: NAT_VIP4, protocol: 'tcp', port: 444, members: dead, profile: hs(30) }),
    ]);
    // Source ports below the kernel's ephemeral range (32768 up): a port an earlier connection of the client took from
    // that range may still be held (TIME_WAIT without SO_REUSEADDR), and bind() then fails (a CI run met it).
    const wave = async (base: number): Promise<void> => {
      const flows = [443, 444].flatMap((dport) =>
        Array.from({ length: 150 }, (_x, i) => ({ src: NAT_CLIENT4, sport: base + i, dst: NAT_VIP4, dport })),
      );
      await topo.client.run(['python3', '-c', SYN_FLOOD_PY], { input: JSON.stringify(flows), timeoutMs: 30_000 });
    };
    const halfOpen = async (): Promise<[number, number]> => {
      const r = await topo.node.run(['cat', '/proc/net/nf_conntrack']);
      const lines = r.stdout.split('\n').filter((l) => l.includes(' SYN_SENT ') && l.includes(`dst=${NAT_VIP4} `));
      return [
        lines.filter((l) => l.includes(' dport=443 ')).length,
        lines.filter((l) => l.includes(' dport=444 ')).length,
      ];
    };
    await wave(23_000);
    expect(await halfOpen()).toEqual([150, 150]);
    await sleep(2_600);
    // The first wave's entries of the 2 s VIP are gone; the 30 s VIP keeps them.
    expect(await halfOpen()).toEqual([0, 150]);
    await wave(24_000);
    // A flood that goes on holds at most one handshake timeout's worth of SYNs under the 2 s profile.
    expect(await halfOpen()).toEqual([150, 300]);
  });

  test('a node without forwarding refuses a NAT VIP with NAT_FORWARDING_DISABLED and keeps its state', async () => {
    const dp = dataPlane();
    await dp.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
    await topo.node.run(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    try {
      const err = await dp.apply([natTable({ address: NAT_VIP4, protocol: 'udp' })]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect((err as DataPlaneError).code).toBe('NAT_FORWARDING_DISABLED');
      expect((err as DataPlaneError).message).toContain('net.ipv4.ip_forward=1');
      const listing = await topo.node.run(['nft', 'list', 'table', 'inet', 'l4fleet_nat']);
      expect(listing.stdout).toContain('tcp . 443');
      expect(listing.stdout).not.toContain('udp . 443');
    } finally {
      await topo.node.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    }
  });

  test('a restarted driver adopts the NAT table: an established connection stays, new ones follow the table', async () => {
    const first = dataPlane();
    await first.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
    const c = holdConnection(topo.client, NAT_VIP4, 2);
    try {
      expect(await c.ready()).toBe('connected');
      const before = await c.send();
      await first.close();
      const second = dataPlane();
      const r = await second.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
      expect(r.vips.map((v) => v.action)).toEqual(['updated']);
      expect(await c.send()).toBe(before);
      const again = await second.apply([natTable({ address: NAT_VIP4, protocol: 'tcp' })]);
      expect(again.transactions).toBe(0);
    } finally {
      c.close();
    }
  });
});

// Hand edits of the NAT table (`nft` run on the node): each one left the VIP unserved, or the table refusing every apply,
// until the table was deleted. The VIP :80 is repaired; the connection held to :443 meanwhile keeps its member
// (conntrack: the table is never deleted for a repair).
describe('nftables nat - hand edits', () => {
  const KEY = 'v_c6336458_tcp_80';
  const E = `${NAT_VIP4} . tcp . 80`;
  const v80 = (members?: readonly string[]): VipTable => ({
    ...natTable({ address: NAT_VIP4, protocol: 'tcp', port: 80, ...(members ? { members } : {}) }),
    sourceRanges: [`${NAT_CLIENT4}/32`],
  });
  const v443 = (): VipTable => natTable({ address: NAT_VIP4, protocol: 'tcp' });
  const { nft, listed, reply80, holding443 } = natProbes(4, () => topo, { sport: 22_000 });

  test.each([
    ['natvips4', `${E} : jump ${KEY}`],
    ['natserved4', E],
    ['nataddrs4', NAT_VIP4],
    ['natsrc4', `${E} : jump ${KEY}_src`],
  ])(
    'an element of %s deleted by hand is written again by verify, which then finds nothing to repair',
    async (set, element) => {
      const dp = dataPlane();
      await dp.apply([v80(), v443()]);
      await holding443(async () => {
        await nft(`delete element inet l4fleet_nat ${set} { ${element.split(' : ')[0]} }`);
        expect((await dp.verify()).transactions).toBe(1);
        expect(await listed()).toContain(element);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );

  // The write after the edit was planned from the model (a pool change): its listing lacked the element, and as
  // verify's reference it made the edit the norm.
  test('the natvips element deleted by hand, then a pool change applied: verify writes the element again', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v443()]);
    await nft(`delete element inet l4fleet_nat natvips4 { ${E} }`);
    expect((await dp.apply([v80([member4(0), member4(1)]), v443()])).transactions).toBe(1);
    await dp.verify();
    await dp.verify();
    expect(await listed()).toContain(`${E} : jump ${KEY}`);
    expect(await reply80()).toMatch(/^m[01] /);
    expect((await dp.verify()).transactions).toBe(0);
  });

  // The kernel refuses to delete a chain a jump names: the jump goes first. The slot map, counter and source chain were
  // left: a restarted driver's `add map` kept the old elements, and a slot of another member was refused ('File exists')
  // at every apply; the VIP removed, they stayed (the counter reported as the VIP's).
  test('the chain and its jump deleted by hand: a restarted driver writes the VIP with a new pool, then removes it whole', async () => {
    const first = dataPlane();
    await first.apply([v80(), v443()]);
    await holding443(async () => {
      await nft(
        `flush chain inet l4fleet_nat ${KEY}`,
        `delete element inet l4fleet_nat natvips4 { ${E} }`,
        `delete chain inet l4fleet_nat ${KEY}`,
      );
      await first.close();
      const dp = dataPlane();
      expect((await dp.apply([v80([member4(2)]), v443()])).transactions).toBe(1);
      expect(await reply80()).toMatch(/^m2 /);
      expect((await dp.verify()).transactions).toBe(0);
      await dp.apply([v443()]);
      const skeleton = (await topo.node.run(['nft', '-t', 'list', 'table', 'inet', 'l4fleet_nat'])).stdout;
      expect(skeleton).not.toContain(KEY);
      expect(await listed()).not.toContain(E);
      expect((await dp.counters()).vips.map((v) => v.vip)).toEqual([`${NAT_VIP4}:443/tcp`]);
    });
  });

  // With no rule naming it, the map can be deleted: the rewrite's `add rule ... map @..._slots` was refused every time.
  test('the chain flushed by hand and its slot map deleted: verify writes both again', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v443()]);
    await holding443(async () => {
      await nft(`flush chain inet l4fleet_nat ${KEY}`, `delete map inet l4fleet_nat ${KEY}_slots`);
      expect((await dp.verify()).transactions).toBe(1);
      expect(await reply80()).toMatch(/^m\d /);
      expect((await dp.verify()).transactions).toBe(0);
    });
  });
});

const hs = (s: number): VipProfile => ({
  idleTimeoutS: 60,
  tcpHandshakeTimeoutS: s,
  tcpCloseTimeoutS: 5,
  onTimeout: 'drop',
});

/** One SYN per flow and nothing else: a socket closed in SYN_SENT sends no RST and no retransmission. */
const SYN_FLOOD_PY = `
import json, socket, sys, time
socks = []
for f in json.load(sys.stdin):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f['src'], f['sport'])); s.setblocking(False)
    s.connect_ex((f['dst'], f['dport']))
    socks.append(s)
time.sleep(0.3)
for s in socks:
    s.close()
`;
