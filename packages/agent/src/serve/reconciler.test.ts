import { BgpError, createFakeSpeaker } from '@l4fleet/bgp';
import { type DecidedStatus, type Fleet, parseFleet } from '@l4fleet/config';
import { createRecordingDataPlane, type DataPlane, DataPlaneError } from '@l4fleet/dataplane';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock, sleep } from '../clock.js';
import { createEventPublisher } from '../events/publisher.js';
import type { AgentEvent } from '../events/subjects.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createReconciler, type ServeInputs } from './reconciler.js';
import { DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS } from './verify.js';

const pool = { name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] };
const api = { name: 'api', members: [{ name: 'x', address: '198.18.0.31', port: 443 }] };
const WEB = { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 } as const;
const API = { address: '198.51.100.20', port: 443, protocol: 'tcp', pool: 'api', tableSize: 251 } as const;
const fleetOf = (vips: readonly object[]): Fleet => parseFleet({ hashSeed: 7, pools: [pool, api], vips });

interface LogLine {
  readonly level: number;
  readonly event?: string;
  readonly [k: string]: unknown;
}

function setup(opts: { verifyIntervalMs?: number } = {}) {
  const clock = createManualClock(1_000);
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const dataPlane = createRecordingDataPlane();
  /**
   * The data plane's calls in order; an apply held at `gate` shows as apply-start until it returns, a verify that
   * takes `gate.verifyMs` of the clock's time as verify until it returns (then verify-end).
   */
  const ops: string[] = [];
  /** `applyRepaired`: the next apply reports these VIPs' drift as found and repaired (a proxy's lost listener). */
  const gate: { beforeApply?: () => Promise<void>; verifyMs?: number; applyRepaired?: readonly string[] } = {};
  const dp: DataPlane = {
    apply: async (d) => {
      ops.push('apply-start');
      try {
        await gate.beforeApply?.();
        const res = await dataPlane.apply(d);
        const repaired = gate.applyRepaired;
        delete gate.applyRepaired;
        return repaired === undefined ? res : { ...res, repaired };
      } finally {
        ops.push('apply-end');
      }
    },
    verify: async () => {
      ops.push('verify');
      try {
        if (gate.verifyMs) await sleep(clock, gate.verifyMs);
        return await dataPlane.verify();
      } finally {
        ops.push('verify-end');
      }
    },
    counters: () => dataPlane.counters(),
    close: () => dataPlane.close(),
  };
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
    dataPlane: dp,
    speaker,
    routeContext: { nextHop4: '198.18.0.11', communities: [] },
    events,
    metrics,
    logger,
    clock,
    onDataPlaneApply: (ok) => applies.push(ok),
    onDrainAnnounced: () => drainAnnounced.push(clock.now()),
    ...(opts.verifyIntervalMs === undefined ? {} : { verifyIntervalMs: opts.verifyIntervalMs }),
  });
  const set = (p: Partial<ServeInputs>) => {
    inputs = { ...inputs, ...p, revision: inputs.revision + 1 };
  };
  return { clock, dataPlane, speaker, seen, applies, drainAnnounced, reconciler, set, metrics, logs, ops, gate };
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

  // A drain begun before any route was set (the first apply refused): the routes known announced are none, and the
  // drain must keep that, not mark and announce every usable VIP with GRACEFUL_SHUTDOWN once the tables go in.
  test('a drain begun before any route was set announces no VIP, GRACEFUL_SHUTDOWN or not', async () => {
    const t = setup();
    try {
      t.dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
      await t.reconciler.request();
      expect(t.applies).toEqual([false]);
      t.set({ routeMode: 'draining' });
      await t.reconciler.request();
      await t.clock.advance(5_000); // any retry
      expect(t.applies).toContain(true);
      expect(t.speaker.advertised).toEqual([]);
    } finally {
      t.reconciler.close();
    }
  });

  // No fleet to plan from (desired state refused, no state file) while draining: gobgpd is told to hold no route, and
  // once it took that the window starts, or the lifecycle waits out its fallback for an announcement already made.
  test('draining with no fleet: the withdraw gobgpd took starts the window', async () => {
    const t = setup();
    try {
      t.set({ fleet: undefined, routeMode: 'draining' });
      await t.reconciler.request();
      expect(t.speaker.advertised).toEqual([]);
      expect(t.drainAnnounced).toHaveLength(1);
    } finally {
      t.reconciler.close();
    }
  });
});

// Only a changed table signature ran an apply, and nothing read the kernel back: an nft table or element deleted by hand,
// or a bpf program's clsact removed, black-holed the node's ECMP share while /readyz said 200 and BGP announced.
describe('reconciler - data plane verify', () => {
  /** The default interval (the tests below rely on it). */
  const MINUTE_MS = 60_000;
  const verifies = (t: ReturnType<typeof setup>) => t.ops.filter((o) => o === 'verify').length;
  const counted = async (t: ReturnType<typeof setup>) =>
    (await t.metrics.tableDriftRepairsTotal.get()).values[0]?.value;

  test('drift: verify runs each interval, repairs, and says so in a warning and l4fleet_table_drift_repairs_total', async () => {
    expect(DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS).toBe(MINUTE_MS);
    const t = setup();
    try {
      await t.reconciler.request();
      expect(await counted(t)).toBe(0);
      t.dataPlane.driftNext();
      await t.clock.advance(MINUTE_MS - 1);
      expect(verifies(t)).toBe(0);
      await t.clock.advance(1);
      expect(verifies(t)).toBe(1);
      expect(await counted(t)).toBe(1);
      const warned = t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({
        level: 40,
        vips: ['198.51.100.10:80/tcp', '198.51.100.20:443/tcp'],
        transactions: 1,
      });
      // Nothing differed since: no warning, no count; the check goes on every interval, with no apply.
      for (let i = 0; i < 5; i++) await t.clock.advance(MINUTE_MS);
      expect(verifies(t)).toBe(6);
      expect(await counted(t)).toBe(1);
      expect(t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired')).toHaveLength(1);
      expect(t.dataPlane.applied).toHaveLength(1);
    } finally {
      t.reconciler.close();
    }
  });

  test('drift an apply found and repaired (a proxy listener it reopened) counts in l4fleet_table_drift_repairs_total and warns, as a verify does', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      expect(await counted(t)).toBe(0);
      // A routine table change before the next verify: the apply reopens WEB's lost listener.
      t.gate.applyRepaired = ['198.51.100.10:80/tcp'];
      t.set({ decided: new Map([['api/x', 'down']]) });
      await t.reconciler.request();
      expect(verifies(t)).toBe(0);
      expect(await counted(t)).toBe(1);
      const warned = t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired');
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 40, vips: ['198.51.100.10:80/tcp'], during: 'apply' });
      // An apply that repaired nothing (repaired empty or left out) counts nothing.
      t.gate.applyRepaired = [];
      t.set({ decided: new Map() });
      await t.reconciler.request();
      t.set({ decided: new Map([['web/a', 'down']]) });
      await t.reconciler.request();
      expect(t.dataPlane.applied).toHaveLength(4);
      expect(await counted(t)).toBe(1);
      expect(t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired')).toHaveLength(1);
    } finally {
      t.reconciler.close();
    }
  });

  // The proxy reopened A's lost listener, then B's could not listen again: the apply failed, and A's repair (its
  // listener open again, so no later call finds it lost) was never counted nor warned.
  test('an apply or a verify that fails after repairing drift (DataPlaneError.repaired) counts it and warns before the failure', async () => {
    const t = setup();
    const lost = (repaired: readonly string[]) =>
      new DataPlaneError('LISTEN_FAILED', 'vip 198.51.100.20:443/tcp: its listener was lost and cannot listen again', {
        repaired,
      });
    try {
      await t.reconciler.request();
      t.dataPlane.failNext(lost(['198.51.100.10:80/tcp']));
      t.set({ decided: new Map([['api/x', 'down']]) });
      await t.reconciler.request();
      expect(t.applies).toEqual([true, false]);
      expect(await counted(t)).toBe(1);
      const events = () =>
        t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired' || l.event === 'tablesApplyFailed');
      expect(events()).toEqual([
        expect.objectContaining({
          event: 'dataPlaneDriftRepaired',
          level: 40,
          during: 'apply',
          vips: ['198.51.100.10:80/tcp'],
        }),
        expect.objectContaining({ event: 'tablesApplyFailed', during: 'apply', code: 'LISTEN_FAILED' }),
      ]);
      await t.clock.advance(1_000); // the retry goes through
      expect(t.applies).toEqual([true, false, true]);
      // A verify failing the same way counts its repair too; one that repaired nothing (empty) counts nothing.
      t.dataPlane.failNextVerify(lost(['198.51.100.10:80/tcp']));
      await t.clock.advance(MINUTE_MS);
      expect(verifies(t)).toBe(1);
      expect(await counted(t)).toBe(2);
      expect(events().slice(2)).toEqual([
        expect.objectContaining({
          event: 'dataPlaneDriftRepaired',
          level: 40,
          during: 'verify',
          vips: ['198.51.100.10:80/tcp'],
        }),
        expect.objectContaining({ event: 'tablesApplyFailed', during: 'verify', code: 'LISTEN_FAILED' }),
      ]);
      t.dataPlane.failNext(lost([]));
      t.set({ decided: new Map() });
      await t.reconciler.request();
      expect(await counted(t)).toBe(2);
    } finally {
      t.reconciler.close();
    }
  });

  test('no verify while an apply fails and retries, nor during an apply: after it, in turn', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      // Failing: the retries apply on the backoff; the verify waits for an apply that went through.
      t.gate.beforeApply = async () => {
        throw new DataPlaneError('NFT_FAILED', 'nft: refused');
      };
      t.set({ decided: new Map([['web/a', 'down']]) });
      await t.reconciler.request();
      await t.clock.advance(3 * MINUTE_MS);
      expect(t.applies.filter((ok) => !ok).length).toBeGreaterThan(5);
      expect(verifies(t)).toBe(0);
      // In flight when the interval comes round: the verify runs after the apply, never beside it.
      let release = (): void => undefined;
      t.gate.beforeApply = () => new Promise<void>((resolve) => (release = resolve));
      await t.clock.advance(10_000); // the retry starts, and waits at the gate
      expect(t.ops.at(-1)).toBe('apply-start');
      await t.clock.advance(2 * MINUTE_MS);
      expect(verifies(t)).toBe(0);
      release();
      await t.clock.advance(0);
      expect(t.applies.at(-1)).toBe(true);
      const end = t.ops.lastIndexOf('apply-end');
      expect(t.ops.indexOf('verify')).toBeGreaterThan(end);
      expect(t.ops.slice(end + 1)).toEqual(['verify', 'verify-end']);
    } finally {
      t.reconciler.close();
    }
  });

  test('the next verify is due max(interval, 10 x the last one) after the last one ended: verify takes at most a small share of the time', async () => {
    const t = setup();
    try {
      await t.reconciler.request(); // applied at 0 (the clock's own origin)
      // A verify of 1 s: 10 s < the interval, so the next is due the interval after the end (61 s + 60 s).
      t.gate.verifyMs = 1_000;
      await t.clock.advance(MINUTE_MS);
      expect(verifies(t)).toBe(1);
      await t.clock.advance(1_000); // it ends at 61 s
      expect(t.ops.at(-1)).toBe('verify-end');
      // A verify of 9 s (a large nftables VIP): the next one is due 90 s after it ended, not each minute.
      t.gate.verifyMs = 9_000;
      await t.clock.advance(MINUTE_MS - 1); // 120.999 s
      expect(verifies(t)).toBe(1);
      await t.clock.advance(1); // 121 s: the second starts, and ends at 130 s
      expect(verifies(t)).toBe(2);
      await t.clock.advance(9_000 + 90_000 - 1); // 219.999 s
      expect(verifies(t)).toBe(2);
      await t.clock.advance(1); // 220 s = 130 s + 10 x 9 s
      expect(verifies(t)).toBe(3);
      // A verify that repaired nothing says how long it took at debug.
      expect(t.logs.filter((l) => l.event === 'dataPlaneVerified').map((l) => [l.level, l.ms])).toEqual([
        [20, 1_000],
        [20, 9_000],
      ]);
    } finally {
      t.reconciler.close();
    }
  });

  test('a verify that repaired says how long it took; a pass requested during a verify runs after it', async () => {
    const t = setup();
    try {
      await t.reconciler.request();
      t.gate.verifyMs = 2_000;
      t.dataPlane.driftNext();
      await t.clock.advance(MINUTE_MS + 1_000); // the verify is half way through
      let passed = false;
      const requested = t.reconciler.request().then(() => {
        passed = true;
      });
      t.set({ decided: new Map([['web/a', 'down']]) });
      await t.clock.advance(999);
      expect(passed).toBe(false);
      expect(t.ops.at(-1)).toBe('verify');
      await t.clock.advance(1);
      await requested;
      expect(t.ops.slice(-3)).toEqual(['verify-end', 'apply-start', 'apply-end']);
      expect(t.logs.filter((l) => l.event === 'dataPlaneDriftRepaired')).toEqual([
        expect.objectContaining({ level: 40, ms: 2_000, transactions: 1 }),
      ]);
    } finally {
      t.reconciler.close();
    }
  });

  // close() resolved the waiters present then; a request after it set `again` on the running loop, which ended on
  // `closed` without resolving it: agent.reconcile()/drain() after close() hung.
  test('a request after close() while a verify still runs resolves (no pass), and so does one after it ended', async () => {
    const t = setup();
    await t.reconciler.request();
    t.gate.verifyMs = 5_000;
    await t.clock.advance(MINUTE_MS); // the verify runs
    expect(t.ops.at(-1)).toBe('verify');
    t.reconciler.close();
    let resolved = false;
    const late = t.reconciler.request().then(() => {
      resolved = true;
    });
    await t.clock.advance(0);
    expect(resolved).toBe(true);
    await t.clock.advance(5_000); // the verify ends
    await late;
    await t.reconciler.request();
    expect(t.dataPlane.applied).toHaveLength(1);
  });

  test('verifyIntervalMs 0: never verified', async () => {
    const t = setup({ verifyIntervalMs: 0 });
    try {
      await t.reconciler.request();
      await t.clock.advance(10 * MINUTE_MS);
      expect(verifies(t)).toBe(0);
    } finally {
      t.reconciler.close();
    }
  });

  // A verify failure was counted as l4fleet_table_applies_total{result="error"}: L4fleetTableApplyErrors ("the kernel
  // refused a table or VIP change") fired for a failed read-back, and no verify was ever counted ok.
  test('verify throwing is handled as a failed apply (tablesApplyFailed during verify, BFD told, retried), counted as a failed verify', async () => {
    const t = setup();
    const counts = async (c: typeof t.metrics.tableAppliesTotal) =>
      Object.fromEntries((await c.get()).values.map((v) => [v.labels.result, v.value]));
    try {
      await t.reconciler.request();
      await t.clock.advance(MINUTE_MS);
      t.dataPlane.driftNext();
      await t.clock.advance(MINUTE_MS);
      expect(await counts(t.metrics.tableVerifiesTotal)).toEqual({ ok: 1, repaired: 1, error: 0 });
      t.dataPlane.failNextVerify(new DataPlaneError('NFT_FAILED', 'nft: table l4fleet: No such file or directory'));
      await t.clock.advance(MINUTE_MS);
      expect(verifies(t)).toBe(3);
      expect(t.applies).toEqual([true, false]);
      expect(await counts(t.metrics.tableVerifiesTotal)).toEqual({ ok: 1, repaired: 1, error: 1 });
      expect(await counts(t.metrics.tableAppliesTotal)).toEqual({ ok: 1, error: 0 });
      expect(t.logs.filter((l) => l.event === 'tablesApplyFailed')).toEqual([
        expect.objectContaining({
          level: 50,
          during: 'verify',
          code: 'NFT_FAILED',
          err: expect.stringContaining('No such file'),
        }),
      ]);
      await t.clock.advance(1_000); // the retry: the same tables applied in full
      expect(t.applies).toEqual([true, false, true]);
      expect(t.dataPlane.applied).toHaveLength(2);
    } finally {
      t.reconciler.close();
    }
  });
});
