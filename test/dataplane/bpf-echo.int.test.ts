/**
 * Ping to a VIP address in the bpf driver against the kernel, in network namespaces (root; topology.ts): the node's
 * tc program answers an echo request to a VIP address itself, from the VIP (icmp.echoReplied), on the tc path and
 * with the XDP fast path in front (which hands ICMP to tc); an echo request in fragments is dropped (drops.fragment);
 * the node's own address is still answered by its kernel (not counted); an address whose VIPs are gone is not
 * answered by the program. Design: docs/design/0007-bpf-dataplane.md ("Ping").
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { type BpfDataPlane, type BpfDataPlaneOptions, bpfAvailable, type VipTable } from '@l4fleet/dataplane';
import { buildTable } from '@l4fleet/maglev';
import { buildXdpPass, xdpPass } from '@l4fleet/test-support/xdp-pass';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { dsrBpfDriver, loaderLog } from './bpf-driver.js';
import {
  backend4,
  backend6,
  createDsrTopology,
  type DsrTopology,
  NODE4,
  NODE6,
  pingReplies,
  VIP4,
  VIP6,
} from './topology.js';

const BPFFS = `/run/l4fleet-bpf-echo-test-${process.pid}`;
const built = bpfAvailable() === undefined;
const work = mkdtempSync(`${tmpdir()}/l4echo-`);
const COUNT = 3;

let topo: DsrTopology;
let pins = 0;
const open: BpfDataPlane[] = [];
const { logger } = loaderLog();

function bpf(extra: Partial<BpfDataPlaneOptions> = {}): BpfDataPlane {
  const dp = dsrBpfDriver(topo, { bpffsPath: BPFFS, pinName: `e${pins}`, logger }, extra);
  open.push(dp);
  return dp;
}

/** A TCP VIP on the topology's VIP address of the family, two backends; nothing in these tests is TCP. */
function vipTable(family: 4 | 6): VipTable {
  const backends = [0, 1].map((i) => ({ name: `b${i}`, address: family === 4 ? backend4(i) : backend6(i), port: 80 }));
  return {
    vip: { address: family === 4 ? VIP4 : VIP6, port: 80, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, 251),
  };
}

const ping = (target: string, opts: { size?: number } = {}): Promise<string[]> =>
  pingReplies(topo.client, target, { count: COUNT, ...opts });

beforeAll(async () => {
  if (!built) return;
  topo = await createDsrTopology({ backends: 2 });
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  pins += 1;
});

afterAll(async () => {
  await topo?.cleanup();
  rmSync(work, { recursive: true, force: true });
  // The driver mounts a bpffs here (bpffs.ts); each run without this left one mounted (38 on this machine).
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf ping to a VIP address', () => {
  test('tc - IPv4 and IPv6: every echo request is answered from the VIP (icmp.echoReplied), none reaches a backend or the drops; the node address is answered by its kernel', async () => {
    const dp = bpf();
    await dp.apply([vipTable(4), vipTable(6)]);
    for (const vip of [VIP4, VIP6]) {
      const lines = await ping(vip);
      expect(lines, vip).toHaveLength(COUNT);
      for (const l of lines) expect(l, vip).toContain(`bytes from ${vip}: icmp_seq=`);
    }
    // The node's own addresses: the program lets them pass, the kernel answers (not counted).
    for (const node of [NODE4, NODE6]) expect(await ping(node), node).toHaveLength(COUNT);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(2 * COUNT);
    expect(c.icmp?.echoReplied.bytes).toBeGreaterThan(0);
    expect(c.drops.port.packets).toBe(0);
    expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(0);
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBe(0);
  }, 60_000);

  test('fragments - an echo request larger than the MTU arrives in fragments: dropped (drops.fragment), not answered', async () => {
    const dp = bpf();
    await dp.apply([vipTable(4)]);
    expect(await ping(VIP4, { size: 2000 })).toHaveLength(0);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(0);
    expect(c.drops.fragment?.packets).toBeGreaterThanOrEqual(COUNT);
  }, 60_000);

  test('no VIP - once its VIPs are removed, the address is no longer answered by the program', async () => {
    const dp = bpf();
    await dp.apply([vipTable(4)]);
    expect(await ping(VIP4)).toHaveLength(COUNT);
    await dp.apply([]);
    // The node holds no VIP address now: it routes the request back to the router (its default), which sends it to
    // the node again until the TTL runs out. No reply from the VIP.
    const lines = await ping(VIP4);
    expect(lines.filter((l) => l.includes(`from ${VIP4}:`))).toHaveLength(0);
    expect((await dp.counters()).icmp?.echoReplied.packets).toBe(COUNT);
  }, 60_000);

  test('xdp - with the fast path in front, ICMP goes on to tc, which answers', async () => {
    // As bpf-xdp.int.test.ts: the router's end runs an XDP program (veth delivers XDP frames only then).
    await xdpPass(topo.router, 'n0', buildXdpPass(work));
    try {
      const dp = bpf({ xdp: 'native' });
      await dp.apply([vipTable(4), vipTable(6)]);
      for (const vip of [VIP4, VIP6]) expect(await ping(vip), vip).toHaveLength(COUNT);
      const c = await dp.counters();
      expect(c.icmp?.echoReplied.packets).toBe(2 * COUNT);
      expect(c.xdp?.forwarded.packets).toBe(0);
    } finally {
      await xdpPass(topo.router, 'n0', undefined);
    }
  }, 60_000);
});
