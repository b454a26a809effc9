/**
 * Hand edits of the NAT table (`nft` run on the node) that verify and a restarted driver did not repair, in network
 * namespaces (root; run under /tmp/l4fleet-lab.lock): a routing element whose verdict was changed (every write after
 * it refused, "File exists"), and the base chains deleted or flushed (every NAT VIP unserved, verify reporting the
 * table clean). The connection held to VIP:443 meanwhile keeps its member: a repair never deletes the table.
 */
import { describe, expect, test } from 'vitest';
import { strayElements, tableShape, useNatHandEdits } from './nat-hand-edits.js';
import { NAT_VIP4 } from './nat-topology.js';

const KEY = 'v_c6336458_tcp_80';
const E = `${NAT_VIP4} . tcp . 80`;
const { dataPlane, v80, v443, nft, listed, reply80, holding443, nodeAddress, pings } = useNatHandEdits(4, {
  members: 2,
  sport: 23_000,
});

describe('nftables nat - verdicts changed by hand', () => {
  test.each([
    ['natvips4', `jump ${KEY}`, 'drop'],
    ['natsrc4', `jump ${KEY}_src`, 'accept'],
  ])(
    'the %s element of VIP :80 set to another verdict: verify replaces it, then finds nothing',
    async (set, jump, by) => {
      const dp = dataPlane();
      await dp.apply([v80(), v443()]);
      await holding443(async () => {
        await nft(
          `delete element inet l4fleet_nat ${set} { ${E} }`,
          `add element inet l4fleet_nat ${set} { ${E} : ${by} }`,
        );
        expect(await listed()).toContain(`${E} : ${by}`);
        expect((await dp.verify()).transactions).toBe(1);
        expect(await listed()).toContain(`${E} : ${jump}`);
        expect(await reply80()).toMatch(/^m\d /);
        expect((await dp.verify()).transactions).toBe(0);
      });
    },
  );

  test('the natvips element set to drop, then a restarted driver removes the VIP: deleted by key', async () => {
    const first = dataPlane();
    await first.apply([v80(), v443()]);
    await nft(
      `delete element inet l4fleet_nat natvips4 { ${E} }`,
      `add element inet l4fleet_nat natvips4 { ${E} : drop }`,
    );
    await first.close();
    const dp = dataPlane();
    expect((await dp.apply([v443()])).transactions).toBe(1);
    expect(await listed()).not.toContain(E);
    expect((await dp.verify()).transactions).toBe(0);
  });
});

describe('nftables nat - base chains edited by hand', () => {
  test('postrouting deleted and prerouting flushed: verify writes both again, VIP :80 is served, then nothing', async () => {
    const dp = dataPlane();
    await dp.apply([v80(), v443()]);
    await holding443(async () => {
      await nft('delete chain inet l4fleet_nat postrouting', 'flush chain inet l4fleet_nat prerouting');
      expect(await reply80()).toBeUndefined();
      expect((await dp.verify()).transactions).toBe(1);
      const text = await listed();
      expect(text).toContain('ct status dnat ct original ip daddr @nataddrs4 masquerade');
      expect(text).toContain('ip daddr . meta l4proto . th dport vmap @natvips4');
      expect(await reply80()).toMatch(/^m\d /);
      expect((await dp.verify()).transactions).toBe(0);
    });
  });

  test('postrouting deleted while the driver was down: the restarted driver writes it again', async () => {
    const first = dataPlane();
    await first.apply([v80(), v443()]);
    await first.close();
    await nft('delete chain inet l4fleet_nat postrouting');
    const dp = dataPlane();
    expect((await dp.apply([v80(), v443()])).transactions).toBe(1);
    expect(await listed()).toContain('ct status dnat ct original ip daddr @nataddrs4 masquerade');
    expect(await reply80()).toMatch(/^m\d /);
    expect((await dp.verify()).transactions).toBe(0);
  });
});

// `nft add element inet l4fleet_nat nataddrs4 { 198.51.100.89 }`: the node dropped every packet to that address, and
// neither verify nor a restart deleted it (nor a natvips, natserved or natsrc key no VIP has): the plan wrote the VIPs'
// own elements only, and verify took the listing with the element as its reference.
describe('nftables nat - elements added by hand for what no VIP has', () => {
  const STRAYS = strayElements(4, KEY);

  test.each(STRAYS)(
    'a %s element `%s`: verify deletes it, the VIPs are served, then verify finds nothing',
    async (set, element, drops) => {
      const dp = dataPlane();
      await dp.apply([v80(), v443()]);
      const written = tableShape(await listed());
      expect(await pings(nodeAddress)).toBe(true);
      await holding443(async () => {
        await nft(`add element inet l4fleet_nat ${set} { ${element} }`);
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
        await nft(`add element inet l4fleet_nat ${set} { ${element} }`);
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
