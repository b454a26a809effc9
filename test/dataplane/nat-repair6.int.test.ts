/**
 * Hand edits of the NAT table's IPv6 side (`nft` run on the node), in network namespaces (root; run under
 * /tmp/l4fleet-lab.lock): the edits nat-repair.int.test.ts and nat.int.test.ts make on IPv4 NAT VIPs, made on
 * [2001:db8:88:9::1]:80 (the routing elements of natvips6, natserved6, nataddrs6 and natsrc6 deleted or given another
 * verdict; the VIP's chain, rule and slot map deleted or rewritten; the base chains deleted or flushed). Each one is
 * repaired by verify() and by a restarted driver: the table then reads as it was written, VIP:80 forwards to a member
 * again (real traffic), and the connection held to VIP:443 meanwhile keeps its member (a repair never deletes the
 * table, and conntrack holds the connection's translation).
 */
import { describe, expect, test } from 'vitest';
import { strayElements, tableShape, useNatHandEdits } from './nat-hand-edits.js';
import { member6, NAT_VIP6 } from './nat-topology.js';

const KEY = 'v_20010db8008800090000000000000001_tcp_80';
const E = `${NAT_VIP6} . tcp . 80`;
const T = 'inet l4fleet_nat';
const { dataPlane, v80, v443, nft, listed, reply80, holding443, topo, nodeAddress, pings } = useNatHandEdits(6, {
  members: 3,
  sport: 25_000,
});

/** The handle of the rule of `chain` whose text contains `text` (`nft -a` lists it as `# handle N`). */
async function ruleHandle(chain: string, text: string): Promise<number> {
  const r = await topo().node.run(['nft', '-a', 'list', 'chain', 'inet', 'l4fleet_nat', chain]);
  const line = r.stdout.split('\n').find((l) => l.includes(text));
  const handle = line === undefined ? undefined : /# handle (\d+)$/.exec(line)?.[1];
  if (handle === undefined) throw new Error(`chain ${chain}: no rule with "${text}" in ${r.stdout}`);
  return Number(handle);
}

/** Every slot of VIP:80's map sent to member 0's port 9, where nothing listens (each connection refused). */
const closedSlots = (): string =>
  Array.from({ length: v80().slots.length }, (_x, s) => `${s} : ${member6(0)} . 9`).join(', ');

/** [what, VIP:80 unserved after it (checked before the repair), the edit]. */
const EDITS: [string, boolean, () => Promise<unknown>][] = [
  ['the natvips6 element of :80 deleted', true, () => nft(`delete element ${T} natvips6 { ${E} }`)],
  ['the natserved6 element of :80 deleted', true, () => nft(`delete element ${T} natserved6 { ${E} }`)],
  ['the nataddrs6 element deleted', true, () => nft(`delete element ${T} nataddrs6 { ${NAT_VIP6} }`)],
  // The client is inside the ranges: served either way, the ranges no longer enforced.
  ['the natsrc6 element of :80 deleted', false, () => nft(`delete element ${T} natsrc6 { ${E} }`)],
  [
    'the natvips6 element of :80 set to drop',
    true,
    () => nft(`delete element ${T} natvips6 { ${E} }`, `add element ${T} natvips6 { ${E} : drop }`),
  ],
  [
    'the natsrc6 element of :80 set to accept',
    false,
    () => nft(`delete element ${T} natsrc6 { ${E} }`, `add element ${T} natsrc6 { ${E} : accept }`),
  ],
  [
    'the chain of :80 flushed and its slot map deleted',
    true,
    () => nft(`flush chain ${T} ${KEY}`, `delete map ${T} ${KEY}_slots`),
  ],
  // The kernel refuses to delete a chain a jump names: the jump goes first. Its slot map, counter and source chain stay.
  [
    'the chain of :80 and its natvips6 element deleted',
    true,
    () => nft(`flush chain ${T} ${KEY}`, `delete element ${T} natvips6 { ${E} }`, `delete chain ${T} ${KEY}`),
  ],
  [
    'the dnat rule of :80 replaced by a drop',
    true,
    async () => nft(`replace rule ${T} ${KEY} handle ${await ruleHandle(KEY, 'dnat ip6 to')} drop`),
  ],
  [
    'every slot of :80 rewritten to a port where nothing listens',
    true,
    () => nft(`flush map ${T} ${KEY}_slots`, `add element ${T} ${KEY}_slots { ${closedSlots()} }`),
  ],
  [
    'postrouting deleted and prerouting flushed',
    true,
    () => nft(`delete chain ${T} postrouting`, `flush chain ${T} prerouting`),
  ],
  ['prerouting deleted', true, () => nft(`delete chain ${T} prerouting`)],
  ['forward flushed', false, () => nft(`flush chain ${T} forward`)],
  ['source and served deleted', false, () => nft(`delete chain ${T} source`, `delete chain ${T} served`)],
];

describe('nftables nat IPv6 - hand edits repaired', () => {
  test.each(EDITS)(
    '%s: verify writes the table as it was, VIP :80 is served again, then verify finds nothing',
    async (_what, unserved, edit) => {
      const dp = dataPlane();
      await dp.apply([v80(), v443()]);
      const written = tableShape(await listed());
      await holding443(async () => {
        await edit();
        expect(tableShape(await listed())).not.toEqual(written);
        if (unserved) expect(await reply80()).toBeUndefined();
        expect((await dp.verify()).transactions).toBe(1);
        expect(tableShape(await listed())).toEqual(written);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );

  test.each(EDITS)(
    '%s while the driver was down: the restarted driver writes the table as it was, VIP :80 is served again',
    async (_what, unserved, edit) => {
      const first = dataPlane();
      await first.apply([v80(), v443()]);
      const written = tableShape(await listed());
      await holding443(async () => {
        await first.close();
        await edit();
        if (unserved) expect(await reply80()).toBeUndefined();
        const dp = dataPlane();
        expect((await dp.apply([v80(), v443()])).transactions).toBe(1);
        expect(tableShape(await listed())).toEqual(written);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );
});

describe('nftables nat IPv6 - hand edits, then the VIP changed', () => {
  test('the natvips6 element set to drop, then a restarted driver removes the VIP: deleted by key', async () => {
    const first = dataPlane();
    await first.apply([v80(), v443()]);
    await nft(`delete element ${T} natvips6 { ${E} }`, `add element ${T} natvips6 { ${E} : drop }`);
    await first.close();
    const dp = dataPlane();
    expect((await dp.apply([v443()])).transactions).toBe(1);
    expect(await listed()).not.toContain(E);
    expect((await dp.verify()).transactions).toBe(0);
  });

  // The write after the edit was planned from the model (a pool change): as verify's reference its listing would have
  // made the edit the norm.
  test('the natvips6 element deleted, then a pool change applied: verify writes the element again', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v443()]);
    await nft(`delete element ${T} natvips6 { ${E} }`);
    expect((await dp.apply([v80([member6(0), member6(1)]), v443()])).transactions).toBe(1);
    expect((await dp.verify()).transactions).toBe(1);
    expect(await listed()).toContain(`${E} : jump ${KEY}`);
    expect(await reply80()).toMatch(/^m[01] /);
    expect((await dp.verify()).transactions).toBe(0);
  });

  // The slot map, counter and source chain the chain leaves: a restarted driver's `add map` would keep the old
  // elements (another member's slot refused, 'File exists'), and the VIP removed would leave them.
  test('the chain and its jump deleted: a restarted driver writes the VIP with a new pool, then removes it whole', async () => {
    const first = dataPlane();
    await first.apply([v80(), v443()]);
    await holding443(async () => {
      await nft(`flush chain ${T} ${KEY}`, `delete element ${T} natvips6 { ${E} }`, `delete chain ${T} ${KEY}`);
      await first.close();
      const dp = dataPlane();
      expect((await dp.apply([v80([member6(2)]), v443()])).transactions).toBe(1);
      // The pool's one backend is named m0 in the table; the member at member6(2) answers as m2.
      expect(await reply80()).toMatch(/^m2 /);
      expect((await dp.verify()).transactions).toBe(0);
      await dp.apply([v443()]);
      const skeleton = (await topo().node.run(['nft', '-t', 'list', 'table', 'inet', 'l4fleet_nat'])).stdout;
      expect(skeleton).not.toContain(KEY);
      expect(await listed()).not.toContain(E);
      expect((await dp.counters()).vips.map((v) => v.vip)).toEqual([`[${NAT_VIP6}]:443/tcp`]);
    });
  });
});

// `nft add element inet l4fleet_nat nataddrs6 { 2001:db8:88:9::2 }`: the node dropped every packet to that address,
// and neither verify nor a restart deleted it (nor a natvips6, natserved6 or natsrc6 key no VIP has).
describe('nftables nat IPv6 - elements added by hand for what no VIP has', () => {
  const STRAYS = strayElements(6, KEY);

  test.each(STRAYS)(
    'a %s element `%s`: verify deletes it, the VIPs are served, then verify finds nothing',
    async (set, element, drops) => {
      const dp = dataPlane();
      await dp.apply([v80(), v443()]);
      const written = tableShape(await listed());
      expect(await pings(nodeAddress)).toBe(true);
      await holding443(async () => {
        await nft(`add element ${T} ${set} { ${element} }`);
        expect(await listed()).toContain(element);
        expect(await pings(nodeAddress)).toBe(!drops);
        expect((await dp.verify()).transactions).toBe(1);
        expect(await listed()).not.toContain(element);
        expect(tableShape(await listed())).toEqual(written);
        expect(await pings(nodeAddress)).toBe(true);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );

  test.each(STRAYS)(
    'a %s element `%s` added while the driver was down: the restarted driver deletes it',
    async (set, element, drops) => {
      const first = dataPlane();
      await first.apply([v80(), v443()]);
      const written = tableShape(await listed());
      await holding443(async () => {
        await first.close();
        await nft(`add element ${T} ${set} { ${element} }`);
        expect(await listed()).toContain(element);
        expect(await pings(nodeAddress)).toBe(!drops);
        const dp = dataPlane();
        expect((await dp.apply([v80(), v443()])).transactions).toBe(1);
        expect(tableShape(await listed())).toEqual(written);
        expect(await pings(nodeAddress)).toBe(true);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );
});
