/**
 * How fast a node's BGP session comes up in the lab (agent mode, netns runtime, as root):
 * - `lab up` (2 nodes, 1 backend) until every VIP answers;
 * - `add-node` from the call until the node is in the router's ECMP group;
 * - `restart` from the call until the router reports the session Established, and until the node is in ECMP
 *   (restart stops the node's processes and starts gobgpd and the agent again, so this is "agent start to
 *   Established" plus the ~0.2 s the restart itself takes).
 * - from the agent's own log: `agentStarting` to its first `bgpSession` `established` (agent start to Established);
 * - `kill` then, 5 s later, `restart` until the node is in ECMP (the router kept dialling the dead node meanwhile).
 * - then the default lab of `lab up` (3 nodes, 4 backends; bpf, routed backends, gue; BFD 100 ms x 3, which the
 *   rounds above run without): `add-node` until in ECMP, which first sets every encapsulating backend up again (the
 *   new node's address); the 2-node lab above has one backend, so it barely sees that. In process: the CLI's
 *   `lab add-node` adds its own start.
 * Prints a table and one JSON line. `BENCH_ROUNDS` (default 3) sets the add-node and restart rounds;
 * `BENCH_DEFAULT_ROUNDS` (default 1; 0 skips that lab) the add-node rounds in the default lab.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_BFD_DETECT_MULTIPLIER, DEFAULT_BFD_INTERVAL_MS } from '@l4fleet/daemons';
import { downLab, Lab, run } from '../src/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DEFAULT_ROUNDS = Number(process.env.BENCH_DEFAULT_ROUNDS ?? 1);
const id = `b${Math.random().toString(36).slice(2, 7)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
const defaultId = `${id}d`;

async function routerState(lab: Lab, address: string): Promise<string> {
  const ns = `l4f-${lab.id}-router`;
  const vty = `/run/l4fleet-lab/${lab.id}/router/vty`;
  const r = await run(['vtysh', '--vty_socket', vty, '-c', `show bgp neighbors ${address} json`], {
    namespace: ns,
    allowFailure: true,
    timeoutMs: 5_000,
  });
  try {
    const doc = JSON.parse(r.stdout || '{}') as Record<string, { bgpState?: string }>;
    return doc[address]?.bgpState ?? 'none';
  } catch {
    return 'none';
  }
}

/**
 * Resolves with the ms from `t0` until the router's session to `address` is Established again, after it was seen
 * down (the old session closes when restart kills gobgpd); bounded by 60 s.
 */
async function establishedAfter(lab: Lab, address: string, t0: number): Promise<number> {
  const deadline = t0 + 60_000;
  let sawDown = false;
  while (Date.now() < deadline) {
    const up = (await routerState(lab, address)) === 'Established';
    if (up && sawDown) return Date.now() - t0;
    sawDown ||= !up;
    await new Promise((r) => setTimeout(r, 50));
  }
  return Number.NaN;
}

/** ms from the last `agentStarting` in the node's agent.log to the first `established` session after it. */
function agentStartToEstablished(lab: Lab, node: string): number {
  const lines = readFileSync(`/run/l4fleet-lab/${lab.id}/${node}/agent.log`, 'utf8').split('\n');
  const events = lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as { time: number; event?: string; state?: string }];
    } catch {
      return [];
    }
  });
  const start = events.findLast((e) => e.event === 'agentStarting');
  const up = events.find((e) => start && e.time >= start.time && e.event === 'bgpSession' && e.state === 'established');
  return start && up ? up.time - start.time : Number.NaN;
}

const addressOf = (n: string) => `198.18.2.${10 + Number(n.slice(4))}`;
const rows: { what: string; ms: number[] }[] = [];
const record = (what: string, ms: number) => {
  let row = rows.find((r) => r.what === what);
  if (!row) rows.push((row = { what, ms: [] }));
  row.ms.push(Math.round(ms));
};

try {
  let t0 = Date.now();
  const lab = await Lab.up({ id, controlSlot, nodes: 2, backends: 1, mode: 'agent', readyTimeoutMs: 90_000 });
  record('lab up (2 nodes) until VIPs answer', Date.now() - t0);
  const nodes = ['node1', 'node2'];
  for (let i = 0; i < ROUNDS; i++) {
    t0 = Date.now();
    const node = await lab.addNode(60_000);
    record('add-node until in ECMP', Date.now() - t0);
    record('agent start to Established (agent.log)', agentStartToEstablished(lab, node));
    nodes.push(node);
  }
  for (let i = 0; i < ROUNDS; i++) {
    const node = nodes[i % nodes.length] as string;
    t0 = Date.now();
    const established = establishedAfter(lab, addressOf(node), t0);
    // The old session must go first: restart kills the node's processes before it starts them again.
    await lab.restart(node, 60_000);
    record('restart until in ECMP', Date.now() - t0);
    record('restart until router Established', await established);
    record('agent start to Established (agent.log)', agentStartToEstablished(lab, node));
  }
  await lab.kill('node1');
  await new Promise((r) => setTimeout(r, 5_000));
  t0 = Date.now();
  await lab.restart('node1', 60_000);
  record('kill, 5 s, restart until in ECMP', Date.now() - t0);
} finally {
  await downLab(id);
}

if (DEFAULT_ROUNDS > 0) {
  try {
    let t0 = Date.now();
    // The 2-node lab is down: its control slot is free again.
    const bfd = { intervalMs: DEFAULT_BFD_INTERVAL_MS, multiplier: DEFAULT_BFD_DETECT_MULTIPLIER };
    const lab = await Lab.up({ id: defaultId, controlSlot, mode: 'agent', bfd, readyTimeoutMs: 120_000 });
    record('lab up (default: 3 nodes, 4 backends) until VIPs answer', Date.now() - t0);
    for (let i = 0; i < DEFAULT_ROUNDS; i++) {
      t0 = Date.now();
      await lab.addNode(60_000);
      record('add-node, default lab (4 backends set up again), until in ECMP', Date.now() - t0);
    }
  } finally {
    await downLab(defaultId);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
console.log('| what | runs (ms) | median ms |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.what} | ${r.ms.join(', ')} | ${median(r.ms)} |`);
console.log(
  JSON.stringify({
    bench: 'lab-bgp-session',
    rounds: ROUNDS,
    ...Object.fromEntries(rows.map((r) => [r.what, { runsMs: r.ms, medianMs: median(r.ms) }])),
  }),
);
