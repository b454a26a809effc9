/**
 * Where a lab's packets go, for the direct-server-return checks of the routed-backend tests (test/lab-bpf-routed,
 * test/lab-docker): every host's traffic as the router's port toward it counts it, and each encapsulating backend's
 * decapsulator counters (`l4fleet backend status`). Both runtimes wire the router the same way, so one reading
 * serves both.
 */
import type { BackendCounters } from '@l4fleet/dataplane';
import { BACKEND_SEGMENT, backendSetupArgv, cliBin, hostsOfKind, hubPortName, type Lab, run } from '@l4fleet/lab';
import { type LinkCounters, minus, sleep } from './lab-scenario.js';

/** The lab's live hosts of `kind` (the killed ones left out). */
export function liveHosts(lab: Lab, kind: 'node' | 'backend'): string[] {
  return hostsOfKind(lab.topology, kind)
    .map((h) => h.name)
    .filter((n) => !lab.killed.includes(n));
}

/** The router's port toward each lab host: `a-client` (its access link), `f-<node>`, `b-<backend>`. */
function routerPort(lab: Lab, host: string): string {
  if (host === 'client') return 'a-client';
  const name = host.startsWith('node')
    ? 'fabric'
    : lab.topology.dataPath.backendNetwork === 'routed'
      ? BACKEND_SEGMENT
      : 'fabric';
  const segment = lab.topology.segments.find((s) => s.name === name);
  if (!segment) throw new Error(`lab ${lab.id} has no segment ${name}`);
  return hubPortName(segment, host);
}

/**
 * Every router port's counters, read at one instant (one `ip -s -j link` in the router): the port's tx is what the
 * host received, its rx what it sent. Reading each host's eth0 instead took 8 processes started at once, and on the
 * loaded VM they finished hundreds of ms apart: the client's and the backends' windows then differed by more than
 * the 5% the reply check allows.
 */
async function routerCounters(lab: Lab): Promise<Map<string, LinkCounters>> {
  const r = await run(['ip', '-s', '-j', 'link', 'show'], { namespace: lab.ns('router'), timeoutMs: 10_000 });
  const links = JSON.parse(r.stdout) as {
    ifname: string;
    stats64?: { rx: Record<string, number>; tx: Record<string, number> };
  }[];
  return new Map(
    links.map((l) => [
      l.ifname,
      {
        rxPackets: l.stats64?.tx.packets ?? 0,
        txPackets: l.stats64?.rx.packets ?? 0,
        rxBytes: l.stats64?.tx.bytes ?? 0,
        txBytes: l.stats64?.rx.bytes ?? 0,
      },
    ]),
  );
}

export interface TrafficWindow {
  readonly client: LinkCounters;
  readonly nodes: Map<string, LinkCounters>;
  /** The live backends, summed. */
  readonly backends: LinkCounters;
}

/** Traffic of the client, every live node and the live backends (summed) over `ms`. */
export async function trafficWindow(lab: Lab, ms: number): Promise<TrafficWindow> {
  const nodes = liveHosts(lab, 'node');
  const backends = liveHosts(lab, 'backend');
  const before = await routerCounters(lab);
  await sleep(ms);
  const after = await routerCounters(lab);
  const of = (host: string): LinkCounters => {
    const port = routerPort(lab, host);
    const [a, b] = [after.get(port), before.get(port)];
    if (!a || !b) throw new Error(`router port ${port} (toward ${host}) has no counters`);
    return minus(a, b);
  };
  return {
    client: of('client'),
    backends: backends.map(of).reduce((a, c) => ({
      rxPackets: a.rxPackets + c.rxPackets,
      txPackets: a.txPackets + c.txPackets,
      rxBytes: a.rxBytes + c.rxBytes,
      txBytes: a.txBytes + c.txBytes,
    })),
    nodes: new Map(nodes.map((n) => [n, of(n)])),
  };
}

/** Packets every node of a window received. */
export function nodeRx(w: TrafficWindow): number {
  return [...w.nodes.values()].reduce((a, c) => a + c.rxPackets, 0);
}

/** `l4fleet backend status -o json` with the lab's record of `backend` (backend-setup.ts). */
function backendStatusArgv(lab: Lab, backend: string): string[] {
  const setup = backendSetupArgv(lab.topology, backend, lab.hostDir(backend));
  const stateDir = setup[setup.indexOf('--state-dir') + 1] as string;
  return [cliBin(), 'backend', 'status', '-o', 'json', '--state-dir', stateDir];
}

/** `l4fleet backend status` in each of `backends` (run in its network namespace): its decapsulator's counters. */
export async function backendCounters(
  lab: Lab,
  backends: readonly string[],
): Promise<(readonly [string, BackendCounters])[]> {
  return Promise.all(
    backends.map(async (b) => {
      const argv = [process.execPath, ...backendStatusArgv(lab, b)];
      const r = await run(argv, { namespace: lab.ns(b), timeoutMs: 90_000 });
      return [b, (JSON.parse(r.stdout) as { counters: BackendCounters }).counters] as const;
    }),
  );
}
