/**
 * Hand edits of the NAT table (`nft` run on the node) that verify and a restarted driver did not repair, in network
 * namespaces (root; run under /tmp/l4fleet-lab.lock): a routing element whose verdict was changed (every write after
 * it refused, "File exists"), and the base chains deleted or flushed (every NAT VIP unserved, verify reporting the
 * table clean). The connection held to VIP:443 meanwhile keeps its member: a repair never deletes the table.
 */
import { createNftablesDataPlane, type DataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  createNatTopology,
  holdConnection,
  MEMBER_PORT,
  MEMBER_SERVER_PY,
  member4,
  NAT_CLIENT_PY,
  NAT_CLIENT4,
  NAT_VIP4,
  type NatTopology,
} from './nat-topology.js';

const logger = pino({ level: 'silent' });
const MEMBERS = 2;
const KEY = 'v_c6336458_tcp_80';
const E = `${NAT_VIP4} . tcp . 80`;

let topo: NatTopology;
const open: DataPlane[] = [];

function dataPlane(): DataPlane {
  const dp = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, logger });
  open.push(dp);
  return dp;
}

function natTable(port: number, sourceRanges?: string[]): VipTable {
  const backends = Array.from({ length: MEMBERS }, (_x, i) => ({
    name: `m${i}`,
    address: member4(i),
    port: MEMBER_PORT,
  }));
  return {
    vip: { address: NAT_VIP4, port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 0x5eed_0019,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
    ...(sourceRanges ? { sourceRanges } : {}),
  };
}
const v80 = (): VipTable => natTable(80, [`${NAT_CLIENT4}/32`]);
const v443 = (): VipTable => natTable(443);

const nft = (...commands: string[]): Promise<string> => topo.node.sh(commands.map((c) => `nft '${c}'`).join(' && '));
const listed = async (): Promise<string> =>
  (await topo.node.run(['nft', '-s', 'list', 'table', 'inet', 'l4fleet_nat'])).stdout;
let sport = 23_000;
async function reply80(): Promise<string | undefined> {
  const r = await topo.client.run(['python3', '-c', NAT_CLIENT_PY], {
    input: JSON.stringify([{ src: NAT_CLIENT4, sport: sport++, dst: NAT_VIP4, dport: 80, protocol: 'tcp' }]),
    timeoutMs: 60_000,
  });
  return (JSON.parse(r.stdout.trim().split('\n')[0] as string) as { reply?: string }).reply;
}

/** Runs `body` with a connection held to VIP:443, then checks it was served throughout by the same member. */
async function holding443(body: () => Promise<void>): Promise<void> {
  const c = holdConnection(topo.client, NAT_VIP4, 2);
  try {
    expect(await c.ready()).toBe('connected');
    const before = await c.send();
    expect(before).toMatch(/^m\d /);
    await body();
    expect(await c.send()).toBe(before);
  } finally {
    c.close();
  }
}

beforeAll(async () => {
  topo = await createNatTopology({ members: MEMBERS });
  const servers = topo.members.map((m, i) => m.spawn(['python3', '-c', MEMBER_SERVER_PY, `m${i}`, `${MEMBER_PORT}`]));
  await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  await topo.node.run(['conntrack', '-F']);
});

afterAll(async () => {
  await topo?.cleanup();
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
