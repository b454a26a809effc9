/**
 * The lab on the Docker runtime (root, a running Docker engine and the images of deploy/docker/build-images.sh;
 * skipped otherwise): the same topology as containers, wired by the same plan as the netns runtime.
 */
import { downLab, FlowRun, Lab, listLabResources, run, VIP_TCP } from '@l4fleet/lab';
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
const id = `d${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
let lab: Lab;
let flows: FlowRun | undefined;

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
    expect(s.nodes.map((n) => n.bgp)).toEqual(['Established', 'Established', 'Established']);
    expect(s.router.nextHops[`${VIP_TCP.address}/32`]).toHaveLength(3);
    const r = await run(lab.execArgv('client', ['ncat', '-w', '3', VIP_TCP.address, String(VIP_TCP.port)]), {
      input: 'x\n',
    });
    expect(r.stdout).toMatch(/^backend=backend[1-4]\nx\n$/);
  });

  test('kill a node container: 0 flows broken, longest pause <= 4 s', async () => {
    flows = await FlowRun.start(lab, { tcpFlows: 60, udpFlows: 10 });
    await flows.mark();
    await lab.kill('node2');
    await lab.waitNextHops(2, 15_000);
    await new Promise((r) => setTimeout(r, 1_500));
    const s = await flows.summary();
    expect(s.broken).toBe(0);
    expect(s.longestPauseMs).toBeLessThanOrEqual(4_000);
  }, 60_000);

  test('fail and restore a backend container: its service stops answering, then answers again', async () => {
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
  }, 60_000);

  test('down removes every container and namespace', async () => {
    await flows?.stop();
    flows = undefined;
    await downLab(id);
    expect(await listLabResources(id)).toEqual({ namespaces: [], hostInterfaces: [] });
    const ps = await run(['docker', 'ps', '-aq', '--filter', `label=l4fleet.lab=${id}`]);
    expect(ps.stdout.trim()).toBe('');
  }, 60_000);
});
