import { BgpError, createFakeSpeaker } from '@l4fleet/bgp';
import { type DecidedStatus, type Fleet, parseFleet } from '@l4fleet/config';
import { createRecordingDataPlane, DataPlaneError } from '@l4fleet/dataplane';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createEventPublisher } from '../events/publisher.js';
import type { AgentEvent } from '../events/subjects.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createReconciler, type ServeInputs } from './reconciler.js';

const pool = { name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] };
const api = { name: 'api', members: [{ name: 'x', address: '198.18.0.31', port: 443 }] };
const WEB = { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 } as const;
const API = { address: '198.51.100.20', port: 443, protocol: 'tcp', pool: 'api', tableSize: 251 } as const;
const fleetOf = (vips: readonly object[]): Fleet => parseFleet({ hashSeed: 7, pools: [pool, api], vips });

function setup() {
  const clock = createManualClock(1_000);
  const logger = pino({ level: 'silent' });
  const dataPlane = createRecordingDataPlane();
  const speaker = createFakeSpeaker();
  const seen: AgentEvent[] = [];
  const events = createEventPublisher({
    prefix: 'l4fleet',
    fleet: 'f',
    node: 'node1',
    maxPending: 100,
    logger,
    onEvent: (e) => seen.push(e),
  });
  const applies: boolean[] = [];
  const drainAnnounced: number[] = [];
  let inputs: ServeInputs = {
    fleet: fleetOf([WEB, API]),
    revision: 1,
    decided: new Map(),
    ramps: new Map(),
    routeMode: 'serving',
  };
  const metrics = createAgentMetrics({ node: 'node1', fleet: 'f', defaultMetrics: false });
  const reconciler = createReconciler({
    inputs: () => inputs,
    dataPlane,
    speaker,
    routeContext: { nextHop4: '198.18.0.11', communities: [] },
    events,
    metrics,
    logger,
    clock,
    onDataPlaneApply: (ok) => applies.push(ok),
    onDrainAnnounced: () => drainAnnounced.push(clock.now()),
  });
  const set = (p: Partial<ServeInputs>) => {
    inputs = { ...inputs, ...p, revision: inputs.revision + 1 };
  };
  return { clock, dataPlane, speaker, seen, applies, drainAnnounced, reconciler, set, metrics };
}

describe('reconciler - data plane failures', () => {
  test('tables fail, then the fleet goes back to the tables the data plane took: applied again, and reported ok', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      expect(t.applies).toEqual([true]);
      const down: DecidedStatus = new Map([['web/a', 'down']]);
      t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
      t.set({ decided: down });
      await t.reconciler.request();
      expect(t.applies).toEqual([true, false]);
      // Back to the first tables before the retry: the data plane may hold half of the failed ones; apply again, and
      // say the data plane is good (BFD lifts AdminDown at the next successful apply, 0010).
      t.set({ decided: new Map() });
      await t.reconciler.request();
      expect(t.applies).toEqual([true, false, true]);
      expect(t.dataPlane.applied).toHaveLength(2);
    } finally {
      t.reconciler.close();
    }
  });

  test('an apply that keeps failing is retried after 1, 2, 4, 8 s, then every 10 s; one that went through resets it', async () => {
    const t = setup();
    const refused = () => t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
    try {
      await t.reconciler.request();
      refused();
      t.set({ decided: new Map([['web/a', 'down']]) });
      await t.reconciler.request();
      expect(t.applies).toEqual([true, false]);
      for (const delayMs of [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]) {
        refused();
        const attempts = t.applies.length;
        await t.clock.advance(delayMs - 1);
        expect(t.applies.length, `no retry before ${delayMs} ms`).toBe(attempts);
        await t.clock.advance(1);
        expect(t.applies.length, `a retry at ${delayMs} ms`).toBe(attempts + 1);
      }
      await t.clock.advance(10_000); // not refused: it goes through
      expect(t.applies.at(-1)).toBe(true);
      refused();
      t.set({ decided: new Map() });
      await t.reconciler.request();
      expect(t.applies.at(-1)).toBe(false);
      await t.clock.advance(1_000); // the count started again
      expect(t.applies.at(-1)).toBe(true);
    } finally {
      t.reconciler.close();
    }
  });

  // While gobgpd was away (routes pending) every pass armed the 1 s pending pass, also one whose apply failed: a state
  // the data plane refuses for good was planned and applied again each second instead of after 1, 2, 4, 8, 10 s.
  test('gobgpd away and the apply failing: retried on the backoff, not each second', async () => {
    const t = setup();
    const refused = () => t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
    try {
      await t.reconciler.request();
      t.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
      refused();
      t.set({ fleet: fleetOf([WEB]) }); // a withdraw (deferred) and new tables (refused)
      await t.reconciler.request();
      expect(t.reconciler.served.routesPending).toBe(true);
      expect(t.applies).toEqual([true, false]);
      for (let i = 0; i < 15; i++) {
        refused();
        await t.clock.advance(1_000);
      }
      // Retries at 1, 3, 7 and 15 s.
      expect(t.applies).toEqual([true, false, false, false, false, false]);
    } finally {
      t.reconciler.close();
    }
  });

  test('a failed apply announces nothing new and keeps the routes it announced', async () => {
    const t = setup();
    try {
      t.set({ fleet: fleetOf([WEB]) });
      await t.reconciler.request();
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32']);
      t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
      t.set({ fleet: fleetOf([WEB, API]) });
      await t.reconciler.request();
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32']);
      await t.clock.advance(1_000); // the retry
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32', '198.51.100.20/32']);
    } finally {
      t.reconciler.close();
    }
  });
});

describe('reconciler - withdraw events', () => {
  test('a VIP removed while the speaker fails once: its vip.withdrawn is published by the pass that withdraws it', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32', '198.51.100.20/32']);
      t.speaker.failWith(new BgpError('GOBGP_REJECTED', 'DeletePath 198.51.100.20/32: refused'));
      t.set({ fleet: fleetOf([WEB]) });
      await t.reconciler.request();
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32', '198.51.100.20/32']);
      t.speaker.failWith(undefined);
      await t.clock.advance(1_000); // the retry
      expect(t.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32']);
      expect(t.seen.filter((e) => e.kind === 'vip.withdrawn').map((e) => e.data)).toEqual([
        { vip: '198.51.100.20:443/tcp', prefix: '198.51.100.20/32', reason: 'removed' },
      ]);
    } finally {
      t.reconciler.close();
    }
  });
});

describe('reconciler - announce events and metrics per VIP', () => {
  // The prefix was announced already (for :80/tcp), so the new :80/udp never got l4fleet_vip_announced=1 nor vip.announced.
  test('a VIP added on an address already announced is announced too; removed, its series goes', async () => {
    const t = setup();
    const announced = async () =>
      Object.fromEntries((await t.metrics.vipAnnounced.get()).values.map((v) => [v.labels.vip, v.value]));
    try {
      await t.reconciler.request();
      expect(await announced()).toEqual({ '198.51.100.10:80/tcp': 1, '198.51.100.20:443/tcp': 1 });
      const QUIC = { ...WEB, protocol: 'udp' } as const; // the same address: its /32 is announced already
      t.set({ fleet: fleetOf([WEB, QUIC, API]) });
      await t.reconciler.request();
      expect(await announced()).toEqual({
        '198.51.100.10:80/tcp': 1,
        '198.51.100.10:80/udp': 1,
        '198.51.100.20:443/tcp': 1,
      });
      expect(t.seen.filter((e) => e.kind === 'vip.announced').map((e) => (e.data as { vip: string }).vip)).toEqual([
        '198.51.100.10:80/tcp',
        '198.51.100.20:443/tcp',
        '198.51.100.10:80/udp',
      ]);
      // Removed while :80/tcp keeps the address announced: no series left; added back, announced again.
      t.set({ fleet: fleetOf([WEB, API]) });
      await t.reconciler.request();
      expect(await announced()).toEqual({ '198.51.100.10:80/tcp': 1, '198.51.100.20:443/tcp': 1 });
      t.set({ fleet: fleetOf([WEB, QUIC, API]) });
      await t.reconciler.request();
      expect((await announced())['198.51.100.10:80/udp']).toBe(1);
      expect(t.seen.filter((e) => e.kind === 'vip.announced')).toHaveLength(4);
    } finally {
      t.reconciler.close();
    }
  });

  // l4fleet_vips_announced counted routes (one per address), so two VIPs on one address counted one.
  test('l4fleet_vips_announced counts VIPs, also two on one address', async () => {
    const t = setup();
    const count = async () => (await t.metrics.vipsAnnounced.get()).values[0]?.value;
    try {
      await t.reconciler.request();
      expect(await count()).toBe(2);
      const QUIC = { ...WEB, protocol: 'udp' } as const;
      t.set({ fleet: fleetOf([WEB, QUIC, API]) });
      await t.reconciler.request();
      expect(await count()).toBe(3);
      t.set({ fleet: fleetOf([WEB, API]) });
      await t.reconciler.request();
      expect(await count()).toBe(2);
      t.set({ routeMode: 'withdrawn' });
      await t.reconciler.request();
      expect(await count()).toBe(0);
    } finally {
      t.reconciler.close();
    }
  });

  // L4fleetVipNotAnnounced reads l4fleet_vip_announced == 0: a VIP the node never announced (no IPv6 next hop, a route
  // gobgpd refuses) had no series at all, also after a restart, so the alert could not fire for it.
  test('a VIP the node serves but never announced says 0 from the first pass', async () => {
    const t = setup();
    const announced = async () =>
      Object.fromEntries((await t.metrics.vipAnnounced.get()).values.map((v) => [v.labels.vip, v.value]));
    try {
      const web6 = { name: 'web6', members: [{ name: 'a', address: '2001:db8::21', port: 80 }] };
      const V6 = { address: '2001:db8::10', port: 80, protocol: 'tcp', pool: 'web6', tableSize: 251 };
      // routeContext has no nextHop6 (node.address6 unset): the IPv6 VIP is served but cannot be announced.
      t.set({ fleet: parseFleet({ hashSeed: 7, pools: [pool, web6], vips: [WEB, V6] }) });
      await t.reconciler.request();
      expect(await announced()).toEqual({ '198.51.100.10:80/tcp': 1, '[2001:db8::10]:80/tcp': 0 });
    } finally {
      t.reconciler.close();
    }
  });

  test('routes refused on the first pass: every VIP says 0', async () => {
    const t = setup();
    const announced = async () =>
      Object.fromEntries((await t.metrics.vipAnnounced.get()).values.map((v) => [v.labels.vip, v.value]));
    try {
      t.speaker.failWith(new BgpError('GOBGP_REJECTED', 'AddPath 198.51.100.10/32: refused'));
      await t.reconciler.request();
      expect(await announced()).toEqual({ '198.51.100.10:80/tcp': 0, '198.51.100.20:443/tcp': 0 });
      t.speaker.failWith(undefined);
      await t.clock.advance(1_000); // the retry
      expect(await announced()).toEqual({ '198.51.100.10:80/tcp': 1, '198.51.100.20:443/tcp': 1 });
    } finally {
      t.reconciler.close();
    }
  });
});

describe('reconciler - drain announcement', () => {
  // onDrainAnnounced fired after a draining set the speaker deferred (gobgpd away): the graceful window ran out and the
  // withdraw followed though the GRACEFUL_SHUTDOWN community never went out.
  test('a draining set gobgpd did not take does not start the window; sent again once it is back, it does', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      t.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
      t.set({ routeMode: 'draining' });
      await t.reconciler.request();
      expect(t.reconciler.served.routesPending).toBe(true);
      expect(t.drainAnnounced).toEqual([]);
      await t.clock.advance(1_000); // the pending pass: still away
      expect(t.drainAnnounced).toEqual([]);
      t.speaker.failWith(undefined);
      await t.clock.advance(1_000); // the pending pass sends it
      expect(t.speaker.advertised.every((a) => a.communities?.includes('65535:0'))).toBe(true);
      expect(t.drainAnnounced.length).toBeGreaterThan(0);
    } finally {
      t.reconciler.close();
    }
  });

  test('a draining set deferred while the data plane refuses the tables: the retry sends it, the window starts', async () => {
    const t = setup();
    const refused = () => t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
    try {
      await t.reconciler.request();
      t.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
      refused();
      t.set({ routeMode: 'draining', decided: new Map([['web/a', 'down']]) });
      await t.reconciler.request();
      expect(t.applies).toEqual([true, false]);
      expect(t.drainAnnounced).toEqual([]);
      t.speaker.failWith(undefined);
      refused();
      await t.clock.advance(1_000); // the retry: refused again, yet the draining set goes out before the apply
      expect(t.applies).toEqual([true, false, false]);
      expect(t.speaker.advertised.length).toBeGreaterThan(0);
      expect(t.speaker.advertised.every((a) => a.communities?.includes('65535:0'))).toBe(true);
      expect(t.drainAnnounced).toHaveLength(1);
    } finally {
      t.reconciler.close();
    }
  });
});
