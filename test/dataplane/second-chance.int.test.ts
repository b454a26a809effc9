/**
 * Second chance against the kernel, in network namespaces (docs/design/0011-second-chance.md): a TCP flow
 * started on backend A keeps working after the table moved its slot to B and the flow reaches a node with an
 * empty flow table: the node encapsulates (gue) to B naming A as the previous owner, B has no socket for it and
 * forwards it to A, A answers the client directly. Without previous owners in the table the same flow is reset.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import {
  type BackendHostDeps,
  type BpfDataPlane,
  backendStatus,
  bpfAvailable,
  createBpfDataPlane,
  createExec,
  setupBackend,
  teardownBackend,
  type VipTable,
} from '@l4fleet/dataplane';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  backend4,
  backend6,
  CLIENT4,
  CLIENT6,
  createDsrTopology,
  type DsrTopology,
  lineClient as lineClientIn,
  NODE4,
  NODE6,
  nameServers,
  VIP4,
  VIP6,
} from './topology.js';

const logger = pino({ level: 'silent' });
const BPFFS = `/run/l4fleet-sc-test-${process.pid}`;
const STATE = `/run/l4fleet-sc-test-${process.pid}-state`;
const PORT = 1500;
const SIZE = 251;
const built = bpfAvailable() === undefined;
/** One exchange; generous: a run at load average ~19 saw first replies take over 5 s. */
const ASK_TIMEOUT_MS = 15_000;

let topo: DsrTopology;
let hosts: BackendHostDeps[] = [];
let stopServers: (() => void) | undefined;
const open: BpfDataPlane[] = [];
let pins = 0;

/** A table of two backends, b0 and b1, where `owner` owns every slot and `previous` (if any) owned it before. */
function table(vip: string, owner: 0 | 1, previous?: 0 | 1): VipTable {
  const v6 = vip.includes(':');
  const backends = [0, 1].map((i) => ({ name: `b${i}`, address: v6 ? backend6(i) : backend4(i), port: PORT }));
  return {
    vip: { address: vip, port: PORT, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: new Int32Array(SIZE).fill(owner),
    ...(previous === undefined ? {} : { previousSlots: new Int32Array(SIZE).fill(previous) }),
    forwarding: 'gue',
  };
}

function node(): BpfDataPlane {
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: topo.node.ns,
    nodeAddresses: [NODE4, NODE6],
    bpffsPath: BPFFS,
    pinName: `sc${pins++}`,
    logger,
  });
  open.push(dp);
  return dp;
}

const lineClient = (src: string, sport: number, dst: string) =>
  lineClientIn(topo.client, src, sport, dst, PORT, ASK_TIMEOUT_MS);

const sc = async (i: number) => (await backendStatus(hosts[i] as BackendHostDeps)).counters.secondChance;

beforeAll(async () => {
  topo = await createDsrTopology({ backends: 2 });
  mkdirSync(BPFFS, { recursive: true });
  spawnSync('mount', ['-t', 'bpf', 'bpf', BPFFS]);
  // Each backend is its own host: its own bpffs and state directory.
  hosts = topo.backends.map((b, i) => ({
    exec: createExec(b.ns),
    bpffs: `${BPFFS}-b${i}`,
    stateDir: `${STATE}-b${i}`,
  }));
  for (const h of hosts) {
    mkdirSync(h.bpffs as string, { recursive: true });
    spawnSync('mount', ['-t', 'bpf', 'bpf', h.bpffs as string]);
  }
  stopServers = await nameServers(topo.backends, PORT);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  for (const h of hosts) await teardownBackend(h).catch(() => undefined);
});

afterAll(async () => {
  stopServers?.();
  for (const h of hosts) {
    rmSync(h.stateDir as string, { recursive: true, force: true });
    spawnSync('umount', [h.bpffs as string]);
    rmSync(h.bpffs as string, { recursive: true, force: true });
  }
  await topo?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

async function setupBackends(secondChance: boolean): Promise<void> {
  for (const [i, h] of hosts.entries()) {
    const other = 1 - i;
    await setupBackend(
      {
        vips: [VIP4, VIP6],
        forwarding: ['gue'],
        nodes: [NODE4, NODE6],
        peers: [backend4(other), backend6(other)],
        interface: 'eth0',
        ...(secondChance ? {} : { secondChance: false }),
      },
      h,
    );
  }
}

describe.skipIf(!built)('second chance', () => {
  test.each([
    ['IPv4', VIP4, CLIENT4, 41_000],
    ['IPv6', VIP6, CLIENT6, 42_000],
  ])(
    '%s - a flow on A whose slot moved to B reaches A through B from a node with an empty flow table; a new flow goes to B',
    async (_f, vip, client, sport) => {
      await setupBackends(true);
      const dp = node();
      await dp.apply([table(vip, 0)]);
      const c = lineClient(client, sport, vip);
      try {
        expect(await c.ask()).toBe('b0');
        // The slot moves to b1; b0 was its owner before. The node still remembers the flow on b0.
        await dp.apply([table(vip, 1, 0)]);
        expect(await c.ask()).toBe('b0');
        // A node that never saw the flow (here: the same node with its flow table emptied) follows the table to b1.
        await dp.clearFlows();
        for (let i = 0; i < 5; i++) expect(await c.ask()).toBe('b0');
        const [a, b] = [await sc(0), await sc(1)];
        expect(b.forwarded.packets).toBeGreaterThanOrEqual(5);
        expect(a.received.packets).toBeGreaterThanOrEqual(5);
        expect(a.missed.packets + b.missed.packets).toBe(0);
        expect(b.failed.packets).toBe(0);
        const counters = await dp.counters();
        expect(counters.secondChance?.tagged.packets ?? 0).toBeGreaterThanOrEqual(5);
        // A new connection to the same slot is b1's: its SYN is decapsulated there.
        const fresh = lineClient(client, sport + 1, vip);
        try {
          expect(await fresh.ask()).toBe('b1');
          expect(await fresh.ask()).toBe('b1');
        } finally {
          fresh.close();
        }
        expect((await sc(1)).local.packets).toBeGreaterThan(0);
      } finally {
        c.close();
      }
    },
    90_000,
  );

  test.each([
    ['no previous owners in the table', false, true, 43_000],
    ['second chance off at the backends', true, false, 44_000],
  ])(
    'without second chance (%s) the same flow is reset',
    async (_what, tableHasPrevious, backendsOn, sport) => {
      await setupBackends(backendsOn);
      const dp = node();
      await dp.apply([table(VIP4, 0)]);
      const c = lineClient(CLIENT4, sport, VIP4);
      try {
        expect(await c.ask()).toBe('b0');
        await dp.apply([tableHasPrevious ? table(VIP4, 1, 0) : table(VIP4, 1)]);
        await dp.clearFlows();
        // b1 has no socket: its stack answers the client with a reset.
        expect(await c.ask()).toBe('closed');
        expect((await sc(1)).forwarded.packets).toBe(0);
      } finally {
        c.close();
      }
    },
    60_000,
  );

  test('restart - a new driver reads the previous owners back and changes nothing; dropping them is one write', async () => {
    const dp = node();
    const pinName = `sc${pins - 1}`;
    await dp.apply([table(VIP4, 1, 0), table(VIP6, 0, 1)]);
    await dp.close();
    open.pop();
    const again = createBpfDataPlane({
      interface: 'eth0',
      netns: topo.node.ns,
      nodeAddresses: [NODE4, NODE6],
      bpffsPath: BPFFS,
      pinName,
      logger,
    });
    open.push(again);
    const same = await again.apply([table(VIP4, 1, 0), table(VIP6, 0, 1)]);
    expect(same.transactions).toBe(0);
    const dropped = await again.apply([table(VIP4, 1), table(VIP6, 0, 1)]);
    expect(dropped.transactions).toBe(1);
    expect(dropped.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
  }, 60_000);

  test('the other way round (b1 to b0), and a packet neither backend has a socket for is forwarded once, then decapsulated and counted as missed (no loop)', async () => {
    await setupBackends(true);
    const dp = node();
    await dp.apply([table(VIP4, 1)]);
    const c = lineClient(CLIENT4, 45_000, VIP4);
    try {
      expect(await c.ask()).toBe('b1');
      // b0 now owns the slot, b1 owned it before; a node without the flow sends it to b0, which passes it on.
      await dp.apply([table(VIP4, 0, 1)]);
      await dp.clearFlows();
      expect(await c.ask()).toBe('b1');
      expect((await sc(0)).forwarded.packets).toBeGreaterThan(0);
    } finally {
      c.close();
    }
    // An ACK of a connection neither backend has: b0 forwards it to b1 (its one chance), b1 decapsulates it.
    const forwardedBefore = (await sc(0)).forwarded.packets;
    const before = (await sc(1)).missed.packets + (await sc(0)).missed.packets;
    const probe = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        topo.client.ns,
        'python3',
        '-c',
        // A bare ACK for a connection nobody has (raw socket), from the client to the VIP.
        `import socket,struct
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_TCP)
tcp=struct.pack('!HHIIBBHHH',46000,${PORT},1,1,5<<4,0x10,1024,0,0)
s.sendto(tcp,('${VIP4}',0))`,
      ],
      { encoding: 'utf8' },
    );
    expect(probe.status, probe.stderr).toBe(0);
    const deadline = Date.now() + 3000;
    let after = before;
    while (after === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await sc(1)).missed.packets + (await sc(0)).missed.packets;
    }
    expect(after).toBe(before + 1);
    expect((await sc(0)).forwarded.packets).toBe(forwardedBefore + 1);
    expect((await sc(1)).forwarded.packets).toBe(0);
  }, 60_000);
});
