/**
 * The router as the lab runs it: FRR (zebra + bgpd, maximum-paths) in a network namespace, two nodes' sidecar
 * gobgpd in the host namespace driven by two Speakers. Checks the kernel's ECMP route, withdraw, RFC 8326 drain
 * and TCP MD5.
 */
import { randomInt } from 'node:crypto';
import { type FrrRouter, type GobgpdHandle, type KernelRoute, startFrr, startGobgpd } from '@l4fleet/daemons';
import { eventually } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createGobgpSpeaker, type GobgpSpeaker, GRACEFUL_SHUTDOWN_COMMUNITY } from './gobgp-speaker.js';
import type { Peer } from './types.js';

const ROUTER_ASN = 65000;
const NODE_ASN = 65001;
const VIP = '198.51.100.10/32';
const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

interface Node {
  address: string;
  password: string;
  gobgpd: GobgpdHandle;
  speaker: GobgpSpeaker;
}

describe('gobgp speakers and an FRR router in a namespace', () => {
  let router: FrrRouter | undefined;
  const nodes: Node[] = [];
  let routerAddress = '';

  beforeEach(async () => {
    // A random /29 in 100.64.0.0/10 keeps parallel runs and other tests' addresses apart.
    const base = `100.${randomInt(64, 128)}.${randomInt(0, 256)}.${randomInt(0, 32) * 8}`.split('.').map(Number);
    const addr = (host: number) => `${base[0]}.${base[1]}.${base[2]}.${(base[3] as number) + host}`;
    routerAddress = addr(2);
    const nodeSpecs = [
      { address: addr(1), password: 'l4fleet-a' },
      { address: addr(3), password: 'l4fleet-b' },
    ];
    router = await startFrr({
      asn: ROUTER_ASN,
      routerId: routerAddress,
      maximumPaths: 8,
      // No explicit RFC 8326 policy: FRR 8.4 lowers LOCAL_PREF to 0 for GRACEFUL_SHUTDOWN routes by itself.
      neighbors: nodeSpecs.map((n) => ({ address: n.address, asn: NODE_ASN, password: n.password })),
    });
    await router.linkToHost({
      routerAddress: `${routerAddress}/29`,
      hostAddresses: nodeSpecs.map((n) => `${n.address}/29`),
    });
    for (const spec of nodeSpecs) {
      const gobgpd = await startGobgpd({ name: `node-${spec.address}` });
      const speaker = createGobgpSpeaker({ address: gobgpd.apiAddress, logger, backoff: { maxMs: 500 } });
      nodes.push({ ...spec, gobgpd, speaker });
      // Each node listens on its own address only (no wildcard :179 in the shared host namespace), so FRR's
      // 1 s connect retry brings the session up without waiting for GoBGP's 5-10 s first attempt.
      await speaker.ensureGlobal({
        asn: NODE_ASN,
        routerId: spec.address,
        listenPort: 179,
        listenAddresses: [spec.address],
      });
      await speaker.setPeers([peerOf(spec)]);
    }
  });

  afterEach(async () => {
    for (const n of nodes.splice(0)) {
      await n.speaker.close();
      await n.gobgpd.close();
    }
    await router?.stop();
    router = undefined;
  });

  function peerOf(n: { address: string; password: string }): Peer {
    return { address: routerAddress, asn: ROUTER_ASN, password: n.password, localAddress: n.address };
  }

  const hops = (r: KernelRoute | undefined) => r?.nexthops.join(',') ?? '';

  test('ECMP over two nodes, withdraw, RFC 8326 drain, and MD5 with a wrong password', async () => {
    const rtr = router as FrrRouter;
    const [a, b] = nodes as [Node, Node];
    await eventually(
      'both sessions up',
      () => rtr.neighborStates(),
      (s) => Object.values(s).every((x) => x === 'Established'),
    );

    for (const n of nodes) await n.speaker.setAdvertisements([{ prefix: VIP, nextHop: n.address }]);
    const both = [a.address, b.address].sort().join(',');
    const ecmp = await eventually(
      'two next hops',
      () => rtr.kernelRoute(VIP),
      (r) => hops(r) === both,
    );
    expect(ecmp?.nexthops).toHaveLength(2);

    await a.speaker.setAdvertisements([]);
    await eventually(
      'one next hop left',
      () => rtr.kernelRoute(VIP),
      (r) => hops(r) === b.address,
    );
    await a.speaker.setAdvertisements([{ prefix: VIP, nextHop: a.address }]);
    await eventually(
      'two again',
      () => rtr.kernelRoute(VIP),
      (r) => hops(r) === both,
    );

    // Drain: while a announces with GRACEFUL_SHUTDOWN, the router keeps a's path (a backup) but leaves it out of
    // the ECMP group; after the withdraw the path is gone too.
    await a.speaker.setAdvertisements([
      { prefix: VIP, nextHop: a.address, communities: [GRACEFUL_SHUTDOWN_COMMUNITY] },
    ]);
    await eventually(
      'a out of the ECMP group',
      () => rtr.kernelRoute(VIP),
      (r) => hops(r) === b.address,
      4_000,
    );
    type BgpRoute = { paths: Array<{ nexthops: Array<{ ip: string }>; locPrf?: number }> };
    const rib = await rtr.vtyshJson<BgpRoute>(`show bgp ipv4 unicast ${VIP} json`);
    const aPath = rib.paths.find((p) => p.nexthops[0]?.ip === a.address);
    expect(aPath?.locPrf).toBe(0);
    await a.speaker.setAdvertisements([]);
    await eventually(
      'a withdrawn',
      () => rtr.vtyshJson<BgpRoute>(`show bgp ipv4 unicast ${VIP} json`),
      (r) => r.paths.every((p) => p.nexthops[0]?.ip !== a.address),
    );
    expect(hops(await rtr.kernelRoute(VIP))).toBe(b.address);

    // MD5: b's session is re-created with the wrong password and must stay down (the kernel drops the segments).
    await b.speaker.setPeers([{ ...peerOf(b), password: 'wrong' }]);
    await eventually(
      'b session down',
      () => rtr.neighborStates(),
      (s) => s[b.address] !== 'Established',
    );
    const watchUntil = Date.now() + 8_000;
    while (Date.now() < watchUntil) {
      expect((await rtr.neighborStates())[b.address]).not.toBe('Established');
      expect((await b.speaker.peerStates())[0]?.state).not.toBe('established');
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(await rtr.kernelRoute(VIP)).toBeUndefined();
    // Positive control: the same session with the right password comes back, and so does the route.
    await b.speaker.setPeers([peerOf(b)]);
    await eventually(
      'b up with the right password',
      () => rtr.neighborStates(),
      (s) => s[b.address] === 'Established',
    );
    await eventually(
      'route back via b',
      () => rtr.kernelRoute(VIP),
      (r) => hops(r) === b.address,
    );
  });
});
