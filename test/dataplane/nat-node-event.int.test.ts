/**
 * What a node event does to a NAT flow (design note 0012), measured in namespaces: two nodes with the same NAT VIP
 * and table, the router's route to the VIP moved from the first to the second mid-connection (what ECMP does when
 * a node leaves or joins). Conntrack is per node: the second node has no state for the flow, so its next segment is
 * a non-SYN new connection there: reset (onTimeout reset) or dropped (drop). A move back to the first node before the
 * state idles out lets a dropped flow carry on. Run under /tmp/l4fleet-lab.lock.
 */
import type { OnTimeout } from '@l4fleet/config';
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
  NAT_NODE2_4,
  NAT_NODE4,
  NAT_VIP4,
  type NatTopology,
} from './nat-topology.js';

const logger = pino({ level: 'silent' });
let topo: NatTopology;
const open: DataPlane[] = [];

function table(onTimeout: OnTimeout): VipTable {
  const backends = [0, 1].map((i) => ({ name: `m${i}`, address: member4(i), port: MEMBER_PORT }));
  return {
    vip: { address: NAT_VIP4, port: 443, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 18,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
    profile: { idleTimeoutS: 60, tcpHandshakeTimeoutS: 5, tcpCloseTimeoutS: 5, onTimeout },
  };
}

async function bothNodes(onTimeout: OnTimeout): Promise<void> {
  for (const n of [topo.node, topo.node2]) {
    const dp = createNftablesDataPlane({ interface: 'eth0', netns: n?.ns as string, logger });
    open.push(dp);
    await dp.apply([table(onTimeout)]);
  }
}

const routeVia = (node: string) => topo.router.sh(`ip route replace ${NAT_VIP4}/32 via ${node}`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  topo = await createNatTopology({ members: 2, nodes: 2 });
  const servers = topo.members.map((m, i) => m.spawn(['python3', '-c', MEMBER_SERVER_PY, `m${i}`, `${MEMBER_PORT}`]));
  await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
  await topo.node2?.run(['ping', '-c1', '-W1', member4(0)], { allowFailure: true });
  await topo.node2?.run(['ping', '-c1', '-W1', member4(1)], { allowFailure: true });
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  await routeVia(NAT_NODE4);
});

afterAll(async () => {
  await topo?.cleanup();
});

describe('nat - a flow moved to another node', () => {
  test('onTimeout reset: the next segment through the other node is reset', async () => {
    await bothNodes('reset');
    const c = holdConnection(topo.client, NAT_VIP4, 3);
    try {
      expect(await c.ready()).toBe('connected');
      expect(await c.send()).toMatch(/^m\d /);
      await routeVia(NAT_NODE2_4);
      const started = Date.now();
      expect(await c.send()).toBe('ConnectionResetError');
      console.log(`[nat node event] reset: the client saw the RST ${Date.now() - started} ms after its next send`);
    } finally {
      c.close();
    }
  });

  test('onTimeout drop: segments through the other node are dropped; back on the first node the flow carries on', async () => {
    await bothNodes('drop');
    const c = holdConnection(topo.client, NAT_VIP4, 10);
    try {
      expect(await c.ready()).toBe('connected');
      const before = await c.send();
      expect(before).toMatch(/^m\d /);
      await routeVia(NAT_NODE2_4);
      const started = Date.now();
      const reply = c.send();
      await sleep(1_500);
      // Dropped on the second node: the client is still waiting for its answer.
      const pending = await Promise.race([reply, sleep(10).then(() => 'pending')]);
      expect(pending).toBe('pending');
      await routeVia(NAT_NODE4);
      expect(await reply).toBe(before); // the same member, through the first node's state
      console.log(
        `[nat node event] drop: moved away 1.5 s then back; the pending request was answered after ${Date.now() - started} ms`,
      );
    } finally {
      c.close();
    }
  });

  test('onTimeout drop: a flow that stays on the other node gets no answer', async () => {
    await bothNodes('drop');
    const c = holdConnection(topo.client, NAT_VIP4, 3);
    try {
      expect(await c.ready()).toBe('connected');
      expect(await c.send()).toMatch(/^m\d /);
      await routeVia(NAT_NODE2_4);
      expect(await c.send()).toBe('TimeoutError');
    } finally {
      c.close();
    }
  });
});
