/**
 * The lab on the Docker runtime (root, a running Docker engine and the images of deploy/docker/build-images.sh;
 * skipped otherwise): the same topology as containers, wired by the same plan as the netns runtime, with the data
 * path `lab up` runs by default: bpf nodes with GUE to routed backends when the bpf data plane is built (in the
 * agent image too), else nftables with backends on the fabric. test/lab-docker-faults runs nftables on Docker.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bpfAvailable, DEFAULT_BACKEND_OBJECT } from '@l4fleet/dataplane';
import { DEFAULT_DATA_PATH, downLab, FlowRun, Lab, NFTABLES_DATA_PATH, run, VIP_TCP } from '@l4fleet/lab';
import { killAndMeasure } from '@l4fleet/test-support/lab-kill';
import { downDockerLabAndExpectGone } from '@l4fleet/test-support/lab-steps';
import { backendCounters, liveHosts, nodeRx, trafficWindow } from '@l4fleet/test-support/lab-traffic';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

async function engineWithImages(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const r = await run(
    [
      'docker',
      'image',
      'inspect',
      'l4fleet/agent:latest',
      'l4fleet/router:latest',
      'l4fleet/backend:latest',
      'l4fleet/control:latest',
    ],
    {
      allowFailure: true,
      timeoutMs: 10_000,
    },
  ).catch(() => undefined);
  return r?.code === 0;
}

const ready = await engineWithImages();
/** The images are built from this checkout, so they carry the bpf data plane exactly when it is built here. */
const bpf = bpfAvailable() === undefined && bpfAvailable({ objectPath: DEFAULT_BACKEND_OBJECT }) === undefined;
const expectedPath = bpf ? DEFAULT_DATA_PATH : NFTABLES_DATA_PATH;
const id = `d${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
let lab: Lab;
let flows: FlowRun | undefined;

/** The ids of the maps pinned in `node`'s bpf file system (on this machine: lab/src/runtime/bpffs.ts). */
async function pinnedMapIds(node: string): Promise<number[]> {
  const root = join(lab.hostDir(node), 'bpffs', node);
  const ids: number[] = [];
  for (const name of readdirSync(root).sort()) {
    const r = await run(['bpftool', '-j', 'map', 'show', 'pinned', join(root, name)], { allowFailure: true });
    if (r.code === 0) ids.push((JSON.parse(r.stdout) as { id: number }).id);
  }
  return ids;
}

describe.skipIf(!ready).sequential(`lab docker - lab ${id}`, () => {
  beforeAll(async () => {
    lab = await Lab.up({ id, controlSlot, nodes: 3, backends: 4, runtime: 'docker', readyTimeoutMs: 90_000 });
  }, 150_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('containers peer with the router: 3 next hops, the VIP answers with a backend name', async () => {
    const s = await lab.status();
    expect(s.runtime).toBe('docker');
    expect(s.dataPath).toEqual(expectedPath);
    expect(s.nodes.map((n) => n.dataplane)).toEqual(Array(3).fill(expectedPath.dataplane));
    expect(s.nodes.map((n) => n.bgp)).toEqual(['Established', 'Established', 'Established']);
    expect(s.router.nextHops[`${VIP_TCP.address}/32`]).toHaveLength(3);
    const r = await run(lab.execArgv('client', ['ncat', '-w', '3', VIP_TCP.address, String(VIP_TCP.port)]), {
      input: 'x\n',
    });
    expect(r.stdout).toMatch(/^backend=backend[1-4]\nx\n$/);
  });

  test.skipIf(!bpf)(
    'bpf: GUE to the routed backends, replies straight from them, not through the nodes',
    async () => {
      flows = await FlowRun.start(lab, { tcpFlows: 60, udpFlows: 10 });
      const w = await trafficWindow(lab, 3_000);
      const rx = nodeRx(w);
      console.log(
        `docker bpf/gue 3000 ms: client tx ${w.client.txPackets} rx ${w.client.rxPackets} pkts; nodes rx ${rx}; backends rx ${w.backends.rxPackets} tx ${w.backends.txPackets}`,
      );
      expect(w.client.rxPackets).toBeGreaterThan(200);
      // Through the nodes every reply would add to their rx (test/lab-bpf-routed.int.test.ts says why this bound).
      expect(rx - w.client.txPackets).toBeLessThan(0.5 * w.client.rxPackets);
      expect(w.backends.txPackets).toBeGreaterThanOrEqual(0.95 * w.client.rxPackets);
      for (const [b, c] of await backendCounters(lab, liveHosts(lab, 'backend'))) {
        const decap = Object.values(c.decapsulated.gue).reduce((a, p) => a + p.packets, 0);
        expect(decap, `${b} decapsulated gue`).toBeGreaterThan(0);
        expect(c.droppedStranger.packets, `${b} dropped stranger`).toBe(0);
      }
    },
    120_000,
  );

  test('kill a node container: 0 flows broken, the router drops it within the hold time + 1 s, longest pause <= 2 x drop + 0.5 s', async () => {
    flows ??= await FlowRun.start(lab, { tcpFlows: 60, udpFlows: 10 });
    const k = await killAndMeasure(lab, flows, 'node2', 2, {
      name: `docker ${expectedPath.dataplane}: kill node2`,
      timeoutMs: 15_000,
      settleMs: 1_500,
    });
    expect(k.broken).toEqual([]);
    expect(k.s.broken).toBe(0);
    // No BFD here: the hold timer (3 s) + 1 s.
    expect(k.dropBoundMs).toBe(4_000);
    expect(k.dropMs).toBeLessThanOrEqual(k.dropBoundMs);
    expect(k.s.longestPauseMs).toBeLessThanOrEqual(k.pauseBoundMs);
  }, 60_000);

  test('restart the killed node: a new container, back in ECMP, 0 flows broken; bpf: it kept its pinned maps', async () => {
    const before = bpf ? await pinnedMapIds('node2') : [];
    if (bpf) expect(before.length).toBeGreaterThan(0);
    await flows?.mark();
    await lab.restart('node2', 60_000);
    await lab.waitNextHops(3, 15_000);
    await new Promise((r) => setTimeout(r, 1_500));
    const s = await flows?.summary();
    console.log(
      `docker ${expectedPath.dataplane}: restart node2: ${s?.broken} broken, longest pause ${s?.longestPauseMs} ms`,
    );
    expect(s?.broken).toBe(0);
    // The pins live in the node's bpf file system on this machine, mounted into each of its containers: the new
    // agent reads its maps back (flows, tables) instead of starting empty.
    if (bpf) expect(await pinnedMapIds('node2')).toEqual(before);
  }, 90_000);

  test('fail and restore a backend container: its service stops answering, then answers again, also through the VIP', async () => {
    const address = (await lab.status()).backends.find((b) => b.name === 'backend2')?.address ?? '';
    const ask = () => lab.probe('client', { address, port: VIP_TCP.port, protocol: 'tcp' });
    expect(await ask()).toBe('backend=backend2');
    await lab.failBackend('backend2');
    expect(await ask()).toBe('');
    expect((await lab.status()).backends.find((b) => b.name === 'backend2')?.failed).toBe(true);
    await lab.restoreBackend('backend2');
    // The new container's identity server starts once it is wired and released.
    const deadline = Date.now() + 15_000;
    let answer = await ask();
    while (answer !== 'backend=backend2' && Date.now() < deadline) answer = await ask();
    expect(answer).toBe('backend=backend2');
    expect((await lab.status()).backends.find((b) => b.name === 'backend2')?.failed).toBe(false);
    // Health checks bring it back into the pool; new connections to the VIP reach it (bpf: the new container was
    // set up again, so it decapsulates).
    const vip = () => lab.probe('client', { address: VIP_TCP.address, port: VIP_TCP.port, protocol: 'tcp' });
    const until = Date.now() + 30_000;
    let viaVip = await vip();
    while (viaVip !== 'backend=backend2' && Date.now() < until) viaVip = await vip();
    expect(viaVip).toBe('backend=backend2');
  }, 90_000);

  test('down removes every container and namespace', async () => {
    await flows?.stop();
    flows = undefined;
    await downDockerLabAndExpectGone(id);
  }, 60_000);
});
