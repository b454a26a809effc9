/**
 * One agent in its own process, for the RSS and health-check CPU figures (a process of its own so the numbers are
 * the agent's alone). Usage: tsx agent-process.ts <rss|health> <etcd endpoint> <seconds>; prints one JSON line.
 */
import { createFakeSpeaker } from '@l4fleet/bgp';
import { EtcdFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { createAgent, createDryRunDataPlane, parseAgentConfig } from '../src/index.js';

const [mode, endpoint, secondsText] = process.argv.slice(2);
const seconds = Number(secondsText ?? '20');
const logger = pino({ level: 'silent' });
const store = new EtcdFleetStore({ endpoints: [endpoint as string], logger });
const config = parseAgentConfig({
  node: { name: `bench-${mode}`, interface: 'lo', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  etcd: { endpoints: [endpoint] },
  dataplane: { driver: 'dry-run' },
  health: { maxConcurrentProbes: 256 },
});
const agent = createAgent({
  config,
  store,
  speaker: createFakeSpeaker(),
  dataPlane: createDryRunDataPlane(),
  logger,
});
const t0 = performance.now();
await agent.start();
await agent.whenReady(600_000);
const readyMs = performance.now() - t0;
let out: Record<string, number>;
if (mode === 'rss') {
  await new Promise((r) => setTimeout(r, 2_000));
  globalThis.gc?.();
  const m = process.memoryUsage();
  out = {
    readyMs,
    rssMiB: m.rss / 2 ** 20,
    heapUsedMiB: m.heapUsed / 2 ** 20,
    arrayBuffersMiB: m.arrayBuffers / 2 ** 20,
  };
} else {
  // Let every member get its first probes in, then measure a steady window.
  await new Promise((r) => setTimeout(r, 4_000));
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  const probes0 = Number((await agent.metrics.probesTotal.get()).values.reduce((s, v) => s + v.value, 0));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - w0;
  const probes1 = Number((await agent.metrics.probesTotal.get()).values.reduce((s, v) => s + v.value, 0));
  const up = Object.values(agent.status().observed).filter((s) => s === 'up').length;
  out = {
    readyMs,
    cpuPercentOfOneCore: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
    probesPerSecond: ((probes1 - probes0) / wallMs) * 1000,
    membersUp: up,
  };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
await agent.close();
await store.close();
process.exit(0);
