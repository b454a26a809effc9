/**
 * Two speakers (gobgpd sidecars) and an FRR router in a namespace: how fast the router's kernel ECMP route follows
 * the speaker. Polls `ip route` every 10 ms, so figures carry up to ~15 ms of polling error. Needs root.
 * Run: npm run bench -w @l4fleet/bgp   (ROUNDS=5 by default)
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type GobgpdHandle, startFrr, startGobgpd } from '@l4fleet/daemons';
import pino from 'pino';
import { createGobgpSpeaker, type GobgpSpeaker, GRACEFUL_SHUTDOWN_COMMUNITY } from '../src/index.js';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const VIP = '198.51.100.10/32';
const logger = pino({ level: 'silent' });

const n = [100, randomInt(64, 128), randomInt(0, 256), randomInt(0, 32) * 8];
const addr = (h: number) => `${n[0]}.${n[1]}.${n[2]}.${(n[3] as number) + h}`;
const routerAddress = addr(2);
const nodes = [addr(1), addr(3)];

async function until(fn: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await fn()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not reached in ${timeoutMs} ms`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const router = await startFrr({
  asn: 65000,
  routerId: routerAddress,
  neighbors: nodes.map((address) => ({ address, asn: 65001 })),
});
const daemons: GobgpdHandle[] = [];
const speakers: GobgpSpeaker[] = [];
try {
  await router.linkToHost({ routerAddress: `${routerAddress}/29`, hostAddresses: nodes.map((a) => `${a}/29`) });
  const hops = async () => (await router.kernelRoute(VIP))?.nexthops.length ?? 0;
  const sessionUpMs: number[] = [];
  for (const address of nodes) {
    const gobgpd = await startGobgpd({ name: 'bench-node' });
    daemons.push(gobgpd);
    const speaker = createGobgpSpeaker({ address: gobgpd.apiAddress, logger });
    speakers.push(speaker);
    const t0 = performance.now();
    await speaker.ensureGlobal({ asn: 65001, routerId: address, listenPort: 179, listenAddresses: [address] });
    await speaker.setPeers([{ address: routerAddress, asn: 65000, localAddress: address }]);
    await until(async () => (await router.neighborStates())[address] === 'Established');
    sessionUpMs.push(performance.now() - t0);
    await speaker.setAdvertisements([{ prefix: VIP, nextHop: address }]);
  }
  await until(async () => (await hops()) === 2);

  const [a] = speakers as [GobgpSpeaker];
  const withdrawMs: number[] = [];
  const announceMs: number[] = [];
  const gshutMs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    let t0 = performance.now();
    await a.setAdvertisements([]);
    await until(async () => (await hops()) === 1);
    withdrawMs.push(performance.now() - t0);
    t0 = performance.now();
    await a.setAdvertisements([{ prefix: VIP, nextHop: nodes[0] as string }]);
    await until(async () => (await hops()) === 2);
    announceMs.push(performance.now() - t0);
    t0 = performance.now();
    await a.setAdvertisements([
      { prefix: VIP, nextHop: nodes[0] as string, communities: [GRACEFUL_SHUTDOWN_COMMUNITY] },
    ]);
    await until(async () => (await hops()) === 1);
    gshutMs.push(performance.now() - t0);
    await a.setAdvertisements([]);
    await a.setAdvertisements([{ prefix: VIP, nextHop: nodes[0] as string }]);
    await until(async () => (await hops()) === 2);
  }
  const rows: Array<[string, number[]]> = [
    ['session up (router connects, 1 s retry)', sessionUpMs],
    ['withdraw -> kernel ECMP group 2 -> 1', withdrawMs],
    ['announce -> kernel ECMP group 1 -> 2', announceMs],
    ['drain (GRACEFUL_SHUTDOWN) -> group 2 -> 1', gshutMs],
  ];
  console.log('| step | median ms | max ms | n |\n|---|---:|---:|---:|');
  for (const [name, xs] of rows) {
    console.log(`| ${name} | ${median(xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} | ${xs.length} |`);
  }
  console.log(
    JSON.stringify({
      bench: 'bgp-frr-convergence',
      rounds: ROUNDS,
      sessionUpMedianMs: Math.round(median(sessionUpMs)),
      withdrawMedianMs: Math.round(median(withdrawMs)),
      announceMedianMs: Math.round(median(announceMs)),
      gshutMedianMs: Math.round(median(gshutMs)),
      gshutToWithdrawRatio: Number((median(gshutMs) / median(withdrawMs)).toFixed(2)),
    }),
  );
} finally {
  for (const s of speakers) await s.close();
  for (const d of daemons) await d.close();
  await router.stop();
}
