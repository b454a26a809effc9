/**
 * Hand edits of the nftables driver's netdev table (`nft` run on the node) against the kernel, in network namespaces
 * (root; run under /tmp/l4fleet-lab.lock): what verify's light read says it found (the verdict a VIP jump element was
 * rewritten to, not "missing"), elements added by hand for keys and addresses no VIP has (deleted by verify and by a
 * restart, the VIPs' own kept), a rule of a VIP chain replaced by hand (count and signature kept), one of the ingress
 * chain or of an echo chain (count kept), and a refused transaction naming the VIP of the objects in the kernel's text.
 */
import {
  createNftablesDataPlane,
  type DataPlane,
  DataPlaneError,
  type NftablesDataPlaneOptions,
  type VipTable,
} from '@l4fleet/dataplane';
import { buildTable, type Flow } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  backend4,
  backend6,
  CLIENT4,
  clearRecorders,
  createDsrTopology,
  type DsrTopology,
  expectedBackend,
  flowKey,
  installFlowRecorders,
  landings,
  pingReplies,
  sendFlows,
  VIP4,
  VIP6,
} from './topology.js';

const BACKENDS = 2;
const TABLE = 'l4fleet';
const KEY = 'v_c633644d_udp_80';
const KEY81 = 'v_c633644d_udp_81';

let topo: DsrTopology;
const open: DataPlane[] = [];
/** The driftFound warnings of every driver of the test: what verify's light read said it found. */
let found: string[] = [];

function dataPlane(extra: Partial<NftablesDataPlaneOptions> = {}): DataPlane {
  const logger = pino({ level: 'warn' }, { write: (line: string) => void record(JSON.parse(line)) });
  const dp = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, logger, ...extra });
  open.push(dp);
  return dp;
}
const record = (w: { event?: string; drift?: string }): void => {
  if (w.event === 'driftFound') found.push(w.drift as string);
};

function vip(address: string, port: number): VipTable {
  const backends = Array.from({ length: BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: address.includes(':') ? backend6(i) : backend4(i),
    port,
  }));
  return {
    vip: { address, port, protocol: 'udp' },
    hash: '5-tuple',
    seed: 0x5eed_4a4d,
    backends,
    slots: buildTable(backends, 251),
  };
}
const v80 = (): VipTable => vip(VIP4, 80);
const v81 = (): VipTable => vip(VIP4, 81);

const nft = async (...args: string[]): Promise<string> => (await topo.node.run(['nft', ...args])).stdout;
const listMap = (name: string): Promise<string> =>
  nft('list', name.startsWith('vipaddrs') ? 'set' : 'map', 'netdev', TABLE, name);

let sport = 41_000;
/** UDP flows to VIP4:80 land where the table says. */
async function served(): Promise<void> {
  const flows: Flow[] = Array.from({ length: 12 }, (_x, i) => ({
    src: CLIENT4,
    sport: sport + i,
    dst: VIP4,
    dport: 80,
    protocol: 'udp',
  }));
  sport += 12;
  await sendFlows(topo, flows);
  const got = await landings(topo);
  for (const f of flows) expect(got.get(flowKey(f)), flowKey(f)).toEqual([expectedBackend(v80(), f)]);
}

beforeAll(async () => {
  topo = await createDsrTopology({ backends: BACKENDS });
  await installFlowRecorders(topo.backends);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  found = [];
  await clearRecorders(topo.backends);
});

afterAll(async () => {
  await topo?.cleanup();
});

describe('nftables hand edits - verify names what it found', () => {
  // Rewritten, the element is there with another verdict: the light read reported it "missing".
  test.each([
    ['drop', 'drop'],
    ['a jump to another VIP chain', `jump ${KEY81}`],
  ])(
    'a VIP jump element rewritten by hand to %s is named with its verdict, and written again',
    async (_, verdict) => {
      const dp = dataPlane();
      await dp.apply([v80(), v81()]);
      await nft('delete', 'element', 'netdev', TABLE, 'vips4', `{ ${VIP4} . udp . 80 }`);
      await nft('add', 'element', 'netdev', TABLE, 'vips4', `{ ${VIP4} . udp . 80 : ${verdict} }`);
      const repaired = await dp.verify();
      expect(found).toEqual([`the vips4 element of ${KEY} is \`${verdict}\`, written \`jump ${KEY}\``]);
      expect(repaired.transactions).toBe(1);
      expect(await listMap('vips4')).toContain(`${VIP4} . udp . 80 : jump ${KEY}`);
      await served();
      expect((await dp.verify()).transactions).toBe(0);
    },
    60_000,
  );
});

describe('nftables hand edits - elements added by hand for keys and addresses no VIP has', () => {
  /** Each edit, and what the listing of its map shows while it is there. */
  const strays: { map: string; add: string; listed: string; drift: string }[] = [
    {
      map: 'vips4',
      add: `{ ${VIP4} . udp . 82 : jump ${KEY} }`,
      listed: `${VIP4} . udp . 82 : jump ${KEY}`,
      drift: `the vips4 element of v_c633644d_udp_82 (\`jump ${KEY}\`) is not written`,
    },
    {
      map: 'vips4',
      add: `{ ${VIP4} . tcp . 80 : accept }`,
      listed: `${VIP4} . tcp . 80 : accept`,
      drift: 'the vips4 element of v_c633644d_tcp_80 (`accept`) is not written',
    },
    {
      map: 'vips6',
      add: `{ ${VIP6} . udp . 80 : drop }`,
      listed: `${VIP6} . udp . 80 : drop`,
      drift: 'the vips6 element of v_20010db8007700090000000000000001_udp_80 (`drop`) is not written',
    },
    {
      // Reported before (drift.ts), and deleted by the full read's plan: here with the others.
      map: 'vipaddrs4',
      add: '{ 198.51.100.78 }',
      listed: '198.51.100.78',
      drift: 'the vipaddrs4 element of 198.51.100.78 is not written',
    },
    {
      map: 'echo4',
      add: '{ 198.51.100.78 : goto echo_c633644d }',
      listed: '198.51.100.78 : goto echo_c633644d',
      drift: 'the echo4 element of 198.51.100.78 (`goto echo_c633644d`) is not written',
    },
  ];
  const addStrays = async (): Promise<void> => {
    for (const s of strays) await nft('add', 'element', 'netdev', TABLE, s.map, s.add);
    for (const s of strays) expect(await listMap(s.map)).toContain(s.listed);
  };
  const noStrays = async (): Promise<void> => {
    for (const s of strays) expect(await listMap(s.map)).not.toContain(s.listed);
    expect(await listMap('vips4')).toContain(`${VIP4} . udp . 80 : jump ${KEY}`);
    expect(await listMap('echo4')).toContain(`${VIP4} : goto echo_c633644d`);
  };

  test('verify finds each one (the light read) and deletes it; the VIP keeps its elements and is served', async () => {
    const dp = dataPlane();
    await dp.apply([v80()]);
    for (const s of strays) {
      await nft('add', 'element', 'netdev', TABLE, s.map, s.add);
      const repaired = await dp.verify();
      expect(found.at(-1), s.add).toBe(s.drift);
      expect(repaired.transactions, s.add).toBe(1);
      expect(repaired.vips.map((v) => v.action)).toEqual(['unchanged']);
    }
    await noStrays();
    await served();
    expect((await dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('restart - the first apply deletes them all; a VIP removed with one naming its chain goes', async () => {
    const first = dataPlane();
    await first.apply([v80(), v81()]);
    await first.close();
    await addStrays();
    await nft('add', 'element', 'netdev', TABLE, 'vips4', `{ ${VIP4} . udp . 83 : jump ${KEY81} }`);
    const second = dataPlane();
    // VIP4:81 goes: the element naming its chain is deleted before the chain (or the kernel refuses the transaction).
    const r = await second.apply([v80()]);
    expect(r.vips.map((v) => v.action)).toEqual(['unchanged', 'removed']);
    await noStrays();
    expect(await listMap('vips4')).not.toContain(`${VIP4} . udp . 83`);
    expect((await second.apply([v80()])).transactions).toBe(0);
    expect((await second.verify()).transactions).toBe(0);
    await served();
  }, 60_000);
});

describe('nftables hand edits - a VIP chain rule replaced by hand', () => {
  // `nft replace rule`: the chain keeps its number of rules and its signature (the counter rule's comment), so neither
  // verify nor a restart saw it, and every new flow the overlay did not hold was dropped.
  const replaceLookup = async (): Promise<void> => {
    const chain = await nft('-a', 'list', 'chain', 'netdev', TABLE, KEY);
    const handle = /_slots.* # handle (\d+)$/m.exec(chain)?.[1];
    expect(handle).toBeDefined();
    await nft('replace', 'rule', 'netdev', TABLE, KEY, 'handle', handle as string, 'counter', 'drop');
    const after = await nft('list', 'chain', 'netdev', TABLE, KEY);
    expect(after).not.toContain(`@${KEY}_slots`);
  };

  test('verify finds it (the light read, no slot map read) and writes the chain again; a restart over it too', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v81()]);
    expect((await dp.verify()).transactions).toBe(0);
    await replaceLookup();
    const repaired = await dp.verify();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      new RegExp(
        `^chain ${KEY}: rule \\d+ is "counter packets \\d+ bytes \\d+ drop", written "meta mark 0x00000000/1 meta mark set meta mark map @${KEY}_slots"$`,
      ),
    );
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.find((v) => v.vip === `${VIP4}:80/udp`)).toMatchObject({
      action: 'updated',
      rulesReplaced: true,
    });
    await served();
    expect((await dp.verify()).transactions).toBe(0);
    await dp.close();
    // Replaced again under no driver: a restart's first apply writes the chain again, the other VIP's not.
    await replaceLookup();
    const second = dataPlane();
    const restarted = await second.apply([v80(), v81()]);
    expect(restarted.vips.map((v) => v.rulesReplaced)).toEqual([true, false]);
    await served();
    expect((await second.verify()).transactions).toBe(0);
    expect(found).toHaveLength(1);
  }, 60_000);
});

describe("nftables hand edits - a rule of the table's own chains replaced by hand", () => {
  // `nft replace rule` in `ingress` or an echo chain keeps its number of rules, all that verify and a restart compared
  // there: an `accept` in place of the vips4 lookup left every IPv4 VIP of the node unserved, a `drop` in its echo chain
  // its pings unanswered, with verify reporting nothing.
  const ECHO = 'echo_c633644d';
  /** Replaces the rule of `chain` whose listing matches `rule` by `by`; returns the rule as it was listed. */
  const replace = async (chain: string, rule: RegExp, by: string): Promise<string> => {
    const listing = await nft('-a', 'list', 'chain', 'netdev', TABLE, chain);
    const line = listing.split('\n').find((l) => rule.test(l));
    const m = /^\s*(.*) # handle (\d+)$/.exec(line ?? '');
    expect(m, `${chain}: ${rule}`).not.toBeNull();
    const [, was, handle] = m as unknown as [string, string, string];
    const count = (text: string): number => text.split('\n').filter((l) => / # handle \d+$/.test(l)).length;
    await nft('replace', 'rule', 'netdev', TABLE, chain, 'handle', handle, ...by.split(' '));
    const after = await nft('-a', 'list', 'chain', 'netdev', TABLE, chain);
    expect(after).not.toContain(was);
    expect(count(after)).toBe(count(listing));
    return was;
  };
  const pings = (): Promise<string[]> => pingReplies(topo.client, VIP4, { count: 3 });

  test('ingress: an `accept` for the vips4 lookup - verify names it and writes the chain again; a restart too', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v81()]);
    expect((await dp.verify()).transactions).toBe(0);
    const was = await replace('ingress', /vmap @vips4/, 'accept');
    const repaired = await dp.verify();
    expect(found).toEqual([`chain ingress: rule 2 is "accept", written "${was}"`]);
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged']);
    expect(await nft('list', 'chain', 'netdev', TABLE, 'ingress')).toContain(was);
    await served();
    expect((await dp.verify()).transactions).toBe(0);
    await dp.close();
    // Replaced again under no driver: a restart's first apply writes the chain again, no VIP's rules.
    await replace('ingress', /vmap @vips4/, 'accept');
    const second = dataPlane();
    const restarted = await second.apply([v80(), v81()]);
    expect(restarted.transactions).toBe(1);
    expect(restarted.vips.map((v) => v.rulesReplaced)).toEqual([false, false]);
    expect(await nft('list', 'chain', 'netdev', TABLE, 'ingress')).toContain(was);
    await served();
    expect((await second.verify()).transactions).toBe(0);
    expect(found).toHaveLength(1);
  }, 60_000);

  test("an echo chain's rule replaced by a `drop` - verify names it and writes it again, pings answered; a restart too", async () => {
    const dp = dataPlane();
    await dp.apply([v80()]);
    expect(await pings()).toHaveLength(3);
    const was = await replace(ECHO, /icmp_echo/, 'drop');
    expect(await pings()).toHaveLength(0);
    const repaired = await dp.verify();
    expect(found).toEqual([`chain ${ECHO}: rule 1 is "drop", written "${was}"`]);
    expect(repaired.transactions).toBe(1);
    expect(await pings()).toHaveLength(3);
    expect((await dp.verify()).transactions).toBe(0);
    await dp.close();
    await replace(ECHO, /icmp_echo/, 'drop');
    const second = dataPlane();
    expect((await second.apply([v80()])).transactions).toBe(1);
    expect(await pings()).toHaveLength(3);
    await served();
    expect((await second.verify()).transactions).toBe(0);
    expect(found).toHaveLength(1);
  }, 60_000);
});

describe('nftables hand edits - a refused transaction names the VIP', () => {
  // The kernel names a set (`v_<hex>_udp_80_over`): the error adds the VIP an operator configured, the kernel's text
  // kept.
  test.each(['netlink', 'nft'] as const)(
    'the %s writer: a slot delta refused for an overlay element deleted by hand names VIP4:80/udp',
    async (deltaWriter) => {
      const dp = dataPlane({ deltaWriter, foldDelayMs: 3_600_000 });
      const t = v80();
      const moved = (by: number): VipTable => {
        const slots = Int32Array.from(t.slots);
        slots[5] = ((slots[5] as number) + by) % BACKENDS;
        return { ...t, slots };
      };
      await dp.apply([t]);
      await dp.apply([moved(1)]); // slot 5 is in the overlay now
      await nft('delete', 'element', 'netdev', TABLE, `${KEY}_over`, '{ 5 }');
      const err = await dp.apply([moved(2)]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect((err as DataPlaneError).code).toBe('NFT_FAILED');
      expect((err as DataPlaneError).message).toMatch(/No such file or directory/);
      expect((err as DataPlaneError).message).toContain(`(vip ${VIP4}:80/udp: ${KEY}_over)`);
    },
    60_000,
  );
});
