/**
 * Agent bench (issue 6), all against a real etcd on this machine:
 *   1. 16 agents (in one process, dry-run data plane, fake speaker), 100 VIPs x 100 members: from `apply` (one
 *      member's weight changed) to every agent having applied that revision, p50 / p99;
 *   2. one agent process at 100 VIPs x 1,000 members: RSS;
 *   3. one agent process health-checking 1,000 members (tcp, 2 s interval): CPU.
 * Prints a table and one JSON line. Sizes: AGENTS, VIPS, MEMBERS, APPLIES, RSS_MEMBERS, HC_MEMBERS, HC_SECONDS.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { startEtcd } from '@l4fleet/daemons';
import { EtcdFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { type Agent, type AgentEvent, createAgent, createDryRunDataPlane, parseAgentConfig } from '../src/index.js';
import { benchFleet } from './fleet.js';

const run = promisify(execFile);
const env = (k: string, d: number) => Number(process.env[k] ?? d);
const AGENTS = env('AGENTS', 16);
const VIPS = env('VIPS', 100);
const MEMBERS = env('MEMBERS', 100);
const APPLIES = env('APPLIES', 30);
const RSS_MEMBERS = env('RSS_MEMBERS', 1_000);
const HC_MEMBERS = env('HC_MEMBERS', 1_000);
const HC_SECONDS = env('HC_SECONDS', 20);
const logger = pino({ level: 'silent' });
const here = fileURLToPath(new URL('.', import.meta.url));

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
};

async function propagation(endpoint: string) {
  const admin = new EtcdFleetStore({ endpoints: [endpoint], logger });
  await admin.apply(benchFleet({ vips: VIPS, members: MEMBERS }));
  const applied = new Map<number, Set<string>>();
  let waiter: { revision: number; resolve: () => void } | undefined;
  const onEvent = (e: AgentEvent) => {
    if (e.kind !== 'table.applied') return;
    const rev = (e.data as { revision: number }).revision;
    let s = applied.get(rev);
    if (!s) applied.set(rev, (s = new Set()));
    s.add(e.node);
    if (waiter && waiter.revision === rev && s.size === AGENTS) waiter.resolve();
  };
  const stores: EtcdFleetStore[] = [];
  const agents: Agent[] = [];
  const t0 = performance.now();
  for (let i = 0; i < AGENTS; i++) {
    const store = new EtcdFleetStore({ endpoints: [endpoint], logger });
    stores.push(store);
    const agent = createAgent({
      config: parseAgentConfig({
        node: { name: `a${i}`, interface: 'lo', address: '198.18.0.11' },
        bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
        etcd: { endpoints: [endpoint] },
        dataplane: { driver: 'dry-run' },
      }),
      store,
      speaker: createFakeSpeaker(),
      dataPlane: createDryRunDataPlane(),
      logger,
      onEvent,
    });
    agents.push(agent);
    await agent.start();
  }
  await Promise.all(agents.map((a) => a.whenReady(600_000)));
  const startupMs = performance.now() - t0;
  const latencies: number[] = [];
  for (let i = 0; i < APPLIES; i++) {
    const fleet = benchFleet({
      vips: VIPS,
      members: MEMBERS,
      weightBump: { pool: i % VIPS, member: i % MEMBERS, weight: 2 + (i % 5) },
    });
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      waiter = { revision: -1, resolve };
    });
    const res = await admin.apply(fleet);
    if (!waiter) throw new Error('no waiter');
    waiter.revision = res.revision;
    if ((applied.get(res.revision)?.size ?? 0) === AGENTS) waiter.resolve();
    await Promise.race([
      done,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`apply ${i} not applied everywhere in 60 s`)), 60_000)),
    ]);
    latencies.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const a of agents) await a.close();
  for (const s of stores) await s.close();
  await admin.close();
  return {
    startupMs,
    p50Ms: pct(latencies, 50),
    p99Ms: pct(latencies, 99),
    maxMs: Math.max(...latencies),
    samples: latencies.length,
  };
}

async function child(mode: 'rss' | 'health', endpoint: string, seconds: number): Promise<Record<string, number>> {
  const { stdout } = await run(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', `${here}agent-process.ts`, mode, endpoint, String(seconds)],
    { timeout: 900_000, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, number>;
}

const etcd = await startEtcd({ extraArgs: ['--quota-backend-bytes=4294967296', '--max-request-bytes=10485760'] });
try {
  const endpoint = etcd.endpoints[0] as string;
  const prop = await propagation(endpoint);

  const rssStore = new EtcdFleetStore({ endpoints: [endpoint], logger, prefix: '/l4fleet' });
  await rssStore.apply(benchFleet({ vips: VIPS, members: RSS_MEMBERS }));
  const rss = await child('rss', endpoint, 0);

  // 1,000 probed members on loopback addresses, all answering on one port (a listener on 0.0.0.0).
  const listener = createServer((c) => c.destroy());
  await new Promise<void>((r) => listener.listen(0, '0.0.0.0', r));
  const port = (listener.address() as { port: number }).port;
  await rssStore.apply(benchFleet({ vips: 1, members: HC_MEMBERS, check: 'tcp', memberPort: port }));
  const hc = await child('health', endpoint, HC_SECONDS);
  listener.close();
  await rssStore.close();

  const rows = [
    [
      `apply -> ${AGENTS} agents applied, ${VIPS} VIPs x ${MEMBERS} members`,
      `p50 ${prop.p50Ms.toFixed(0)} ms, p99 ${prop.p99Ms.toFixed(0)} ms (n=${prop.samples})`,
    ],
    [`${AGENTS} agents ready from start`, `${(prop.startupMs / 1000).toFixed(1)} s`],
    [
      `agent RSS, ${VIPS} VIPs x ${RSS_MEMBERS} members`,
      `${rss.rssMiB?.toFixed(0)} MiB (heap ${rss.heapUsedMiB?.toFixed(0)} MiB, ready in ${((rss.readyMs ?? 0) / 1000).toFixed(1)} s)`,
    ],
    [
      `health-check CPU, ${HC_MEMBERS} members tcp every 2 s`,
      `${hc.cpuPercentOfOneCore?.toFixed(1)} % of one core (${hc.probesPerSecond?.toFixed(0)} probes/s, ${hc.membersUp} up)`,
    ],
  ];
  const w = Math.max(...rows.map((r) => (r[0] as string).length));
  for (const [k, v] of rows) console.log(`${(k as string).padEnd(w)}  ${v}`);
  console.log(
    JSON.stringify({
      bench: 'agent',
      agents: AGENTS,
      vips: VIPS,
      members: MEMBERS,
      applyToAllAppliedP50Ms: Math.round(prop.p50Ms),
      applyToAllAppliedP99Ms: Math.round(prop.p99Ms),
      agentsStartupMs: Math.round(prop.startupMs),
      rssMembers: RSS_MEMBERS,
      rssMiB: Math.round(rss.rssMiB ?? 0),
      heapUsedMiB: Math.round(rss.heapUsedMiB ?? 0),
      hcMembers: HC_MEMBERS,
      hcCpuPercentOfOneCore: Number(hc.cpuPercentOfOneCore?.toFixed(2)),
      hcProbesPerSecond: Math.round(hc.probesPerSecond ?? 0),
      p99OverP50: Number((prop.p99Ms / prop.p50Ms).toFixed(2)),
    }),
  );
} finally {
  await etcd.stop();
}
// Client libraries (gRPC channels) may keep the loop alive after close(): the bench is done.
process.exit(0);
