/**
 * The bed of the NAT table's hand-edit tests (nat-repair.int.test.ts for IPv4, nat-repair6.int.test.ts for IPv6), in
 * the NAT topology (nat-topology.ts): per family VIP:80, its sourceRanges the client alone, and VIP:443, both NAT to
 * the members; `nft` run on the node; a request to :80; a connection held to :443 across an edit and its repair.
 * useNatHandEdits registers the file's hooks: the namespaces made before the tests and removed after them, even when
 * one fails; each test's data planes closed with their state, and conntrack flushed, after it. natProbes and
 * serveMembers also serve nat.int.test.ts, on the topology it makes itself.
 */

/**
 * The table as a comparable value: its top-level blocks (chains, maps, sets, objects) sorted, and each set's or map's
 * elements sorted. The kernel lists a chain written again after the others, and an element added again in its own
 * place: neither is a difference.
 */
export function tableShape(listing: string): string[] {
  const text = listing.replace(
    /elements = \{([^}]*)\}/g,
    (_m, body: string) =>
      `elements = { ${body
        .split(',')
        .map((e) => e.replace(/\s+/g, ' ').trim())
        .sort()
        .join(', ')} }`,
  );
  const blocks: string[][] = [];
  for (const line of text.split('\n')) {
    if (/^\t\S/.test(line) && line !== '\t}') blocks.push([line]);
    else if (line.startsWith('\t\t') || line === '\t}') blocks.at(-1)?.push(line);
  }
  return blocks.map((b) => b.join('\n')).sort();
}

import { createNftablesDataPlane, type DataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type IpFamily } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import {
  createNatTopology,
  holdConnection,
  MEMBER_PORT,
  MEMBER_SERVER_PY,
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
/** NatHandEdits.nodeAddress per family: no VIP's. */
const NODE_ADDRESS = { 4: '198.51.100.89', 6: '2001:db8:88:9::2' } as const;
const SEED = 0x5eed_0019;
const SLOTS = 251;

/**
 * Starts each member's server (MEMBER_SERVER_PY, named m<i>, on MEMBER_PORT) and waits for its first line (listening).
 * Apart from createNatTopology, so that a caller holds the topology (and removes it) even when a server never starts.
 */
export async function serveMembers(topo: NatTopology): Promise<void> {
  const servers = topo.members.map((m, i) => m.spawn(['python3', '-c', MEMBER_SERVER_PY, `m${i}`, `${MEMBER_PORT}`]));
  await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
}

/** What a hand-edit test does on the node and sees from the client, for the family's VIP (NAT_VIP4 or NAT_VIP6). */
export interface NatProbes {
  /** Each command as one `nft '<command>'` on the node, in order; rejects at the first refused. */
  nft(...commands: string[]): Promise<string>;
  /** `nft -s list table inet l4fleet_nat` on the node (elements, no counter values). */
  listed(): Promise<string>;
  /** One TCP request from the client to VIP:80: the member's reply (`m1 <peer>`), undefined when none came. */
  reply80(): Promise<string | undefined>;
  /** Runs `body` with a connection held to VIP:443, then checks it was served throughout by the same member. */
  holding443(body: () => Promise<void>): Promise<void>;
}

/**
 * The probes on a NAT topology made elsewhere (`topo` read at each call, so it may be made in a beforeAll), no hooks:
 * nat.int.test.ts runs them on its own topology; useNatHandEdits on the one it makes. `sport`: reply80's first source
 * port, one more each request (below the ephemeral range, see nat.int.test.ts).
 */
export function natProbes(family: IpFamily, topo: () => NatTopology, opts: { sport: number }): NatProbes {
  const vip = family === 4 ? NAT_VIP4 : NAT_VIP6;
  const client = family === 4 ? NAT_CLIENT4 : NAT_CLIENT6;
  let sport = opts.sport;
  return {
    nft: (...commands) => topo().node.sh(commands.map((c) => `nft '${c}'`).join(' && ')),
    listed: async () => (await topo().node.run(['nft', '-s', 'list', 'table', 'inet', 'l4fleet_nat'])).stdout,
    async reply80() {
      const r = await topo().client.run(['python3', '-c', NAT_CLIENT_PY], {
        input: JSON.stringify([{ src: client, sport: sport++, dst: vip, dport: 80, protocol: 'tcp' }]),
        timeoutMs: 60_000,
      });
      return (JSON.parse(r.stdout.trim().split('\n')[0] as string) as { reply?: string }).reply;
    },
    async holding443(body) {
      const c = holdConnection(topo().client, vip, 2);
      try {
        expect(await c.ready()).toBe('connected');
        const before = await c.send();
        expect(before).toMatch(/^m\d /);
        await body();
        expect(await c.send()).toBe(before);
      } finally {
        c.close();
      }
    },
  };
}

export interface NatHandEdits extends NatProbes {
  readonly vip: string;
  readonly client: string;
  member(i: number): string;
  /** Valid from the first test on (made in beforeAll). */
  topo(): NatTopology;
  /** An nftables data plane on the node, closed with its state after the test. */
  dataPlane(): DataPlane;
  /** VIP:80/tcp, sourceRanges the client alone; its backends every member's, or those of `members`. */
  v80(members?: readonly string[]): VipTable;
  /** VIP:443/tcp, every member. */
  v443(): VipTable;
  /**
   * An address no VIP has (198.51.100.89, 2001:db8:88:9::2), the node's own (on its loopback) and routed to it by the
   * router: the node answers the client's ping to it, unless its NAT table drops what is sent to it.
   */
  readonly nodeAddress: string;
  /** Whether the node answers one ping from the client to `address` (1 s). */
  pings(address: string): Promise<boolean>;
}

/** `sport`: the first source port of reply80 (below the ephemeral range, see nat.int.test.ts). */
export function useNatHandEdits(family: IpFamily, opts: { members: number; sport: number }): NatHandEdits {
  const vip = family === 4 ? NAT_VIP4 : NAT_VIP6;
  const client = family === 4 ? NAT_CLIENT4 : NAT_CLIENT6;
  const member = family === 4 ? member4 : member6;
  const nodeAddress = NODE_ADDRESS[family];
  let topo: NatTopology | undefined;
  const open: DataPlane[] = [];

  const node = (): NatTopology => {
    if (topo === undefined) throw new Error('the NAT topology is made in beforeAll: used before it');
    return topo;
  };

  function natTable(port: number, addresses: readonly string[], sourceRanges?: string[]): VipTable {
    const backends = addresses.map((address, i) => ({ name: `m${i}`, address, port: MEMBER_PORT }));
    return {
      vip: { address: vip, port, protocol: 'tcp' },
      hash: '5-tuple',
      seed: SEED,
      backends,
      slots: buildTable(backends, SLOTS),
      forwarding: 'nat',
      ...(sourceRanges ? { sourceRanges } : {}),
    };
  }
  const every = (): string[] => Array.from({ length: opts.members }, (_x, i) => member(i));

  beforeAll(async () => {
    topo = await createNatTopology({ members: opts.members });
    await serveMembers(topo);
    const [ip, len, via] = family === 4 ? ['ip', 32, NAT_NODE4] : ['ip -6', 128, NAT_NODE6];
    await topo.node.sh(`${ip} addr add ${nodeAddress}/${len} dev lo`);
    await topo.router.sh(`${ip} route add ${nodeAddress}/${len} via ${via}`);
  }, 120_000);

  afterEach(async () => {
    for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
    await topo?.node.run(['conntrack', '-F']);
  });

  afterAll(async () => {
    await topo?.cleanup();
  });

  return {
    vip,
    client,
    member,
    topo: node,
    dataPlane() {
      const dp = createNftablesDataPlane({ interface: 'eth0', netns: node().node.ns, logger });
      open.push(dp);
      return dp;
    },
    v80: (members) => natTable(80, members ?? every(), [`${client}/${family === 4 ? 32 : 128}`]),
    v443: () => natTable(443, every()),
    ...natProbes(family, node, opts),
    nodeAddress,
    async pings(address) {
      const ping = ['ping', ...(family === 6 ? ['-6'] : []), '-c1', '-W1', address];
      return (await node().client.run(ping, { allowFailure: true })).code === 0;
    },
  };
}

/**
 * Elements added by hand for what no VIP of the bed has, each alone (`nft add element inet l4fleet_nat <set> { … }`):
 * [set, the element, whether the node then drops what the client sends to nodeAddress]. A natvips one jumping to
 * VIP:80's chain, so its deletion must leave that chain and its element; a natserved one for another port of the VIP's
 * address; a nataddrs one for the node's own nodeAddress (every packet to it dropped).
 */
export function strayElements(family: IpFamily, vipKey: string): [string, string, boolean][] {
  const [vip, other] = [family === 4 ? NAT_VIP4 : NAT_VIP6, NODE_ADDRESS[family]];
  return [
    [`nataddrs${family}`, other, true],
    [`natvips${family}`, `${other} . tcp . 80 : jump ${vipKey}`, false],
    [`natserved${family}`, `${vip} . tcp . 8080`, false],
    [`natsrc${family}`, `${other} . tcp . 80 : drop`, false],
  ];
}
