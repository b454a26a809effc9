/**
 * A VIP's sourceRanges in the bpf driver against the kernel, in network namespaces (root; topology.ts): the program
 * drops a TCP or UDP packet from a source outside the ranges (drops.source, not the VIP's counter), before flow
 * affinity, on the tc path and on the XDP fast path; a change of ranges alone is a delta of trie entries; a restart
 * writes nothing for the same ranges; pins of the previous version (without l4f_src_ranges) are upgraded in place.
 * Design: docs/design/0007-bpf-dataplane.md; map layout: native/bpf/node-maps.h struct l4f_src_key.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  type BpfDataPlane,
  type BpfDataPlaneOptions,
  bpfAvailable,
  type Forwarding,
  type VipTable,
} from '@l4fleet/dataplane';
import { buildTable, type Flow, type Protocol } from '@l4fleet/maglev';
import { buildXdpPass, xdpPass } from '@l4fleet/test-support/xdp-pass';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { dsrBpfDriver, loaderLog } from './bpf-driver.js';
import {
  backend4,
  backend6,
  clearRecorders,
  clientSource4,
  clientSource6,
  createDsrTopology,
  type DsrTopology,
  decapsulatingBackends,
  expectedBackend,
  flowKey,
  installFlowRecorders,
  landings,
  lineClient,
  NODE4,
  NODE6,
  nameServers,
  sendFlows,
  VIP4,
  VIP6,
  warmNeighbours,
} from './topology.js';

const SEED = 0x5eed_0517;
const BACKENDS = 3;
const BPFFS = `/run/l4fleet-bpf-src-test-${process.pid}`;
/** The last commit before l4f_src_ranges: its loader and object make the pins an upgrade starts from. */
const PREVIOUS = '84d6e13e879a487b75d5ce14dcb7ff5231dcc685';
const REPO = new URL('../../', import.meta.url).pathname;
const built = bpfAvailable() === undefined;
const hasPrevious = spawnSync('git', ['-C', REPO, 'cat-file', '-e', `${PREVIOUS}^{commit}`]).status === 0;
const work = mkdtempSync(`${tmpdir()}/l4src-`);

/** Per family: the client source the ranges admit, the one they do not, and the ranges (the admitted one among others). */
const CLIENTS = {
  4: { admitted: clientSource4(0), refused: clientSource4(1), ranges: ['198.19.254.0/24', `${clientSource4(0)}/32`] },
  6: {
    admitted: clientSource6(0),
    refused: clientSource6(1),
    ranges: ['2001:db8:aa::/48', `${clientSource6(0)}/128`, '2001:db8:77:100::100/120'],
  },
} as const;
const vipOf = (family: 4 | 6): string => (family === 4 ? VIP4 : VIP6);

let topo: DsrTopology;
let undoDecap: (() => Promise<void>) | undefined;
let pins = 0;
const open: BpfDataPlane[] = [];
/** The driver's `programLoaded` events (how the loader started: from pins or the object, attached or not). */
const { logger, loads } = loaderLog();

/** Sends the flows: the i-th admitted one lands on tables[i]'s backend for it, no refused one lands anywhere. */
async function expectLandings(tables: readonly VipTable[], admitted: readonly Flow[], refused: readonly Flow[]) {
  await sendFlows(topo, [...admitted, ...refused]);
  const got = await landings(topo);
  admitted.forEach((f, i) => {
    expect(got.get(flowKey(f)), flowKey(f)).toEqual([expectedBackend(tables[i] as VipTable, f)]);
  });
  for (const f of refused) expect(got.get(flowKey(f)), flowKey(f)).toBeUndefined();
}

function bpf(extra: Partial<BpfDataPlaneOptions> = {}): BpfDataPlane {
  const dp = dsrBpfDriver(topo, { bpffsPath: BPFFS, pinName: `s${pins}`, logger }, extra);
  open.push(dp);
  return dp;
}

function vipTable(
  family: 4 | 6,
  port: number,
  protocol: Protocol,
  opts: { forwarding?: Forwarding; ranges?: readonly string[] } = {},
): VipTable {
  const backends = Array.from({ length: BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: family === 4 ? backend4(i) : backend6(i),
    port,
  }));
  return {
    vip: { address: vipOf(family), port, protocol },
    hash: '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, 251),
    ...(opts.forwarding ? { forwarding: opts.forwarding } : {}),
    ...(opts.ranges ? { sourceRanges: opts.ranges } : {}),
  };
}

const flow = (t: VipTable, src: string, sport: number): Flow => ({
  src,
  sport,
  dst: t.vip.address,
  dport: t.vip.port,
  protocol: t.vip.protocol,
});
const pinPath = (name: string): string => `${BPFFS}/s${pins}/${name}`;
/** bpftool's JSON dump of a pinned map (the same text = the same entries). */
const dumpPinned = (name: string): string =>
  spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', pinPath(name)], { encoding: 'utf8' }).stdout;
/**
 * The next answer of a lineClient, asking again after each timeout, at most `tries` times: an answer then is the reply
 * to the last line (the client reads its replies in order), so no earlier line is left outstanding.
 */
async function answer(c: ReturnType<typeof lineClient>, tries: number): Promise<string> {
  let a = await c.ask();
  for (let i = 1; i < tries && a === 'timeout'; i++) a = await c.ask();
  return a;
}
const vipPackets = async (dp: BpfDataPlane): Promise<number> =>
  (await dp.counters()).vips.reduce((n, v) => n + v.packets, 0);

beforeAll(async () => {
  if (!built) return;
  topo = await createDsrTopology({ backends: BACKENDS, extraSources: 4 });
  await installFlowRecorders(topo.backends);
  // gue reaches the recorders (netfilter prerouting) decapsulated by `l4fleet backend setup`'s tc program.
  undoDecap = await decapsulatingBackends(topo, `${BPFFS}-decap`, [NODE4, NODE6]);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  loads.length = 0;
  pins += 1;
  if (topo) await clearRecorders(topo.backends);
});

afterAll(async () => {
  await undoDecap?.();
  await topo?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf source ranges', () => {
  test.each(['l2', 'gue'] as const)(
    'filter - %s, IPv4 and IPv6, TCP and UDP: the admitted client lands on its backend, the other is dropped (drops.source, not the VIP counter); ranges removed admit both',
    async (forwarding) => {
      const dp = bpf();
      const tables = ([4, 6] as const).flatMap((family) =>
        (['tcp', 'udp'] as const).map((protocol, i) =>
          vipTable(family, 2000 + i, protocol, { forwarding, ranges: CLIENTS[family].ranges }),
        ),
      );
      const r = await dp.apply(tables);
      expect(r.vips.map((v) => v.action)).toEqual(['added', 'added', 'added', 'added']);
      const fam = (t: VipTable): 4 | 6 => (t.vip.address === VIP4 ? 4 : 6);
      const admitted = tables.map((t) => flow(t, CLIENTS[fam(t)].admitted, 30_000));
      const refused = tables.map((t) => flow(t, CLIENTS[fam(t)].refused, 30_000));
      await expectLandings(tables, admitted, refused);
      const c = await dp.counters();
      expect(c.drops.source.packets).toBe(refused.length);
      expect(c.drops.source.bytes).toBeGreaterThan(0);
      expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(admitted.length);
      expect(c.flowTable.entries).toBe(admitted.length);

      // Without sourceRanges: the flag cleared, then the entries deleted; both clients land (new source ports).
      const opened = await dp.apply(tables.map(({ sourceRanges: _r, ...t }) => t));
      expect([opened.transactions, opened.slotsChanged]).toEqual([2, 0]);
      expect(dumpPinned('l4f_src_ranges')).toBe('[]\n');
      await clearRecorders(topo.backends);
      const both = tables.flatMap((t) => [
        flow(t, CLIENTS[fam(t)].admitted, 30_001),
        flow(t, CLIENTS[fam(t)].refused, 30_001),
      ]);
      await sendFlows(topo, both);
      const after = await landings(topo);
      for (const f of both) {
        const t = tables.find((x) => x.vip.address === f.dst && x.vip.port === f.dport) as VipTable;
        expect(after.get(flowKey(f)), flowKey(f)).toEqual([expectedBackend(t, f)]);
      }
      expect((await dp.counters()).drops.source.packets).toBe(refused.length);
    },
    90_000,
  );

  test.each([4, 6] as const)(
    'open flow - IPv%i: removing its prefix stops a live TCP connection (flow affinity comes after the check); put back, it goes on to the same backend',
    async (family) => {
      const stop = await nameServers(topo.backends, 2100);
      const { admitted, ranges } = CLIENTS[family];
      const t = vipTable(family, 2100, 'tcp', { ranges });
      const dp = bpf();
      // 1 s per answer: the client (topology.ts LINE_CLIENT_PY) gives up a line after 5 s, so the prefix must be back
      // well before then; the line sent while refused then gets through with TCP's next retransmission.
      const c = lineClient(topo.client, admitted, 31_000, vipOf(family), 2100, 1_000);
      try {
        await dp.apply([t]);
        const owner = `b${expectedBackend(t, flow(t, admitted, 31_000))}`;
        expect(await answer(c, 5)).toBe(owner); // the first also waits for the connection
        const others = ranges.filter((x) => !x.startsWith(admitted));
        const removed = await dp.apply([{ ...t, sourceRanges: others }]);
        expect([removed.transactions, removed.slotsChanged, removed.vips[0]?.action]).toEqual([1, 0, 'updated']);
        expect(await c.ask()).toBe('timeout');
        const dropped = await dp.counters();
        expect(dropped.drops.source.packets).toBeGreaterThan(0);
        expect(dropped.flowTable.entries).toBe(1); // the flow's entry stays: only the check refuses it
        const before = await vipPackets(dp);
        await dp.apply([t]);
        // The same connection answers again, from the same backend (a few lines: the retransmission's timing).
        expect(await answer(c, 4)).toBe(owner);
        expect(await vipPackets(dp)).toBeGreaterThan(before);
      } finally {
        c.close();
        stop();
      }
    },
    60_000,
  );

  test('restart - a new driver over the pins with the same ranges writes nothing; a changed prefix is one add and one delete', async () => {
    // 1,000 prefixes per family: the read-back and the compare at the scale of a real allowlist.
    const many = (family: 4 | 6): string[] => [
      ...CLIENTS[family].ranges,
      ...Array.from({ length: 1_000 - CLIENTS[family].ranges.length }, (_x, i) =>
        family === 4 ? `10.${i >> 8}.${i & 255}.0/24` : `2001:db8:${(0x100 + i).toString(16)}::/48`,
      ),
    ];
    const tables = [
      vipTable(4, 2200, 'udp', { ranges: many(4) }),
      vipTable(6, 2200, 'udp', { ranges: many(6), forwarding: 'gue' }),
      vipTable(4, 2201, 'tcp'),
    ];
    const first = bpf();
    await first.apply(tables);
    await first.close();
    const before = [dumpPinned('l4f_src_ranges'), dumpPinned('l4f_vips')];
    expect(JSON.parse(before[0] as string)).toHaveLength(2_000);

    const second = bpf();
    const again = await second.apply(tables);
    expect(again.transactions).toBe(0);
    expect(again.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect([dumpPinned('l4f_src_ranges'), dumpPinned('l4f_vips')]).toEqual(before);
    const t0 = tables[0] as VipTable;
    const changed = [...(t0.sourceRanges as string[]).slice(1), '198.19.253.0/24'];
    const delta = await second.apply([{ ...t0, sourceRanges: changed }, ...tables.slice(1)]);
    expect([delta.transactions, delta.slotsChanged]).toEqual([2, 0]);
    expect(delta.vips.map((v) => v.action)).toEqual(['updated', 'unchanged', 'unchanged']);
    // Still filtering after the restart: the refused client is dropped, the admitted one forwarded.
    await sendFlows(topo, [flow(t0, CLIENTS[4].refused, 32_000), flow(t0, CLIENTS[4].admitted, 32_000)]);
    const c = await second.counters();
    expect([c.drops.source.packets, await vipPackets(second)]).toEqual([1, 1]);
  }, 60_000);

  test.skipIf(!hasPrevious)(
    'upgrade - pins of the previous version (no l4f_src_ranges) get the map, the new program, nothing rewritten, a live connection kept; a lost pin is recreated and the program follows it',
    async () => {
      const prev = buildPrevious();
      const stop = await nameServers(topo.backends, 2300);
      const { admitted, refused, ranges } = CLIENTS[4];
      const t = vipTable(4, 2300, 'tcp');
      const c = lineClient(topo.client, admitted, 33_000, VIP4, 2300);
      try {
        const old = bpf(prev);
        await old.apply([t]);
        const owner = `b${expectedBackend(t, flow(t, admitted, 33_000))}`;
        expect(await c.ask()).toBe(owner);
        expect(existsSync(pinPath('l4f_src_ranges'))).toBe(false);
        await old.close();

        const upgraded = bpf();
        expect((await upgraded.apply([t])).transactions).toBe(0);
        expect(loads.map((l) => [l.attach, l.from])).toEqual([
          ['attached', 'object'],
          ['attached', 'object'],
        ]);
        expect(existsSync(pinPath('l4f_src_ranges'))).toBe(true);
        expect(await c.ask()).toBe(owner);
        await upgraded.apply([{ ...t, sourceRanges: ranges }]);
        await sendFlows(topo, [flow(t, refused, 33_001)]);
        expect((await upgraded.counters()).drops.source.packets).toBe(1);
        expect(await c.ask()).toBe(owner);
        await upgraded.close();

        // A pin lost while the program stays attached (and no meta: the full path): the new, empty map is the one
        // the program must use, or writes would go where no packet looks.
        rmSync(pinPath('l4f_src_ranges'));
        rmSync(pinPath('l4f_meta'));
        const again = bpf();
        const refill = await again.apply([{ ...t, sourceRanges: ranges }]);
        expect(refill.transactions).toBe(1);
        expect(loads.at(-1)).toMatchObject({ attach: 'attached', from: 'object' });
        await again.apply([{ ...t, sourceRanges: [...ranges, `${refused}/32`] }]);
        await clearRecorders(topo.backends);
        const f = flow(t, refused, 33_002);
        await sendFlows(topo, [f]);
        expect((await landings(topo)).get(flowKey(f))).toEqual([expectedBackend(t, f)]);
      } finally {
        c.close();
        stop();
      }
    },
    90_000,
  );

  test('xdp - the fast path drops a refused source itself (drops.source) and forwards the admitted one (XDP_TX)', async () => {
    // As bpf-xdp.int.test.ts: the router's end runs an XDP program (veth delivers XDP_TX frames only then), forwarding
    // on the node's eth0 (bpf_fib_lookup), and the client computes its checksums (XDP cannot keep CHECKSUM_PARTIAL).
    await xdpPass(topo.router, 'n0', buildXdpPass(work));
    await topo.node.sh('sysctl -qw net.ipv4.conf.eth0.forwarding=1 net.ipv6.conf.eth0.forwarding=1');
    await topo.client.sh('ethtool -K eth0 tx off');
    try {
      const dp = bpf({ xdp: 'native' });
      const tables = ([4, 6] as const).map((family) =>
        vipTable(family, 2400, 'udp', { ranges: CLIENTS[family].ranges }),
      );
      await dp.apply(tables);
      await warmNeighbours(topo.node, BACKENDS);
      const admitted = tables.map((t, i) => flow(t, CLIENTS[i === 0 ? 4 : 6].admitted, 34_000));
      const refused = tables.map((t, i) => flow(t, CLIENTS[i === 0 ? 4 : 6].refused, 34_000));
      await expectLandings(tables, admitted, refused);
      const c = await dp.counters();
      expect(c.xdp?.forwarded.packets).toBe(admitted.length);
      expect(c.drops.source.packets).toBe(refused.length);
      expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(admitted.length);
    } finally {
      await topo.node.sh('sysctl -qw net.ipv4.conf.eth0.forwarding=0 net.ipv6.conf.eth0.forwarding=0');
      await xdpPass(topo.router, 'n0', undefined);
      await topo.client.sh('ethtool -K eth0 tx on');
    }
  }, 60_000);
});

/** The previous version's loader and node object, built from git (PREVIOUS) into this test's work directory. */
function buildPrevious(): Pick<BpfDataPlaneOptions, 'loaderPath' | 'objectPath'> {
  const src = `${work}/previous`;
  const native = `${src}/packages/dataplane/native`;
  const sh = (script: string): void => {
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  };
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout.trim() || 'x86_64-linux-gnu';
  sh(
    `mkdir -p ${src} && git -C ${REPO} archive ${PREVIOUS} packages/dataplane/native/bpf packages/dataplane/native/bpf-loader | tar -x -C ${src}`,
  );
  sh(
    `clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/${multiarch} -I ${native}/bpf -c ${native}/bpf/node.bpf.c -o ${work}/node.bpf.o`,
  );
  sh(`cc -O2 -I ${native}/bpf -o ${work}/l4fleet-bpf ${native}/bpf-loader/*.c -lbpf -lelf -lz -lpthread`);
  return { loaderPath: `${work}/l4fleet-bpf`, objectPath: `${work}/node.bpf.o` };
}
