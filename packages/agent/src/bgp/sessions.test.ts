import type { PeerEvent, Speaker } from '@l4fleet/bgp';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { systemClock } from '../clock.js';
import type { BgpSection } from '../config/types.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createBgpSessions } from './sessions.js';

const PEER = '198.18.2.1';

function event(state: PeerEvent['state'], previousState: PeerEvent['state'], reason?: 'gobgpdUnreachable'): PeerEvent {
  return { address: PEER, asn: 65000, state, previousState, atMs: 0, ...(reason ? { reason } : {}) };
}

/** A speaker whose session events are the given list: gobgpd answers, hangs, answers again. */
function speakerWith(events: readonly PeerEvent[]): Speaker {
  return {
    peerStates: async () => [{ address: PEER, asn: 65000, state: 'established' }],
    async *peerEvents() {
      for (const e of events) yield e;
    },
    ensureGlobal: async () => {},
    setPeers: async () => {},
  } as unknown as Speaker;
}

async function gauge(metrics: ReturnType<typeof createAgentMetrics>): Promise<number | undefined> {
  return (await metrics.gobgpdReachable.get()).values[0]?.value;
}

describe('bgp sessions - a hung or dead gobgpd', () => {
  test('is reported as a bgp.session event with its reason and l4fleet_gobgpd_reachable 0, then 1 when back', async () => {
    const emitted: { kind: string; data: unknown }[] = [];
    const metrics = createAgentMetrics({ node: 'node1', fleet: 'f', defaultMetrics: false });
    const seen: number[] = [];
    let changes = 0;
    const sessions = createBgpSessions({
      speaker: speakerWith([event('unknown', 'established', 'gobgpdUnreachable'), event('established', 'unknown')]),
      config: { asn: 65001, routerId: '198.18.2.11', listenPort: 179, peers: [] } as unknown as BgpSection,
      clock: systemClock,
      metrics,
      events: { emit: (kind, data) => emitted.push({ kind, data }) },
      logger: pino({ level: 'silent' }),
      onChange: () => {
        changes++;
        void gauge(metrics).then((v) => seen.push(v ?? -1));
      },
    });
    sessions.start();
    for (let i = 0; i < 100 && emitted.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    sessions.close();
    expect(emitted).toEqual([
      {
        kind: 'bgp.session',
        data: { peer: PEER, state: 'unknown', previous: 'established', reason: 'gobgpdUnreachable' },
      },
      { kind: 'bgp.session', data: { peer: PEER, state: 'established', previous: 'unknown' } },
    ]);
    expect(changes).toBe(2);
    expect(seen).toEqual([0, 1]);
    expect(await gauge(metrics)).toBe(1);
    expect(sessions.states()).toEqual({ [PEER]: 'established' });
  });
});

describe('bgp sessions - setup before gobgpd answers', () => {
  test('hands the peers to the speaker even when ensureGlobal fails retryably, so the reconnect applies them', async () => {
    const peers = [{ address: PEER, asn: 65000 }];
    const handed: unknown[] = [];
    const speaker = {
      peerStates: async () => {
        throw Object.assign(new Error('gobgpd unreachable'), { retryable: true });
      },
      async *peerEvents() {},
      ensureGlobal: async () => {
        throw Object.assign(new Error('UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:50051'), { retryable: true });
      },
      setPeers: async (p: unknown) => {
        handed.push(p);
        throw Object.assign(new Error('UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:50051'), { retryable: true });
      },
    } as unknown as Speaker;
    const sessions = createBgpSessions({
      speaker,
      config: { asn: 65001, routerId: '198.18.2.11', listenPort: 179, peers } as unknown as BgpSection,
      clock: systemClock,
      metrics: createAgentMetrics({ node: 'node1', fleet: 'f', defaultMetrics: false }),
      events: { emit: () => {} },
      logger: pino({ level: 'silent' }),
      onChange: () => {},
    });
    sessions.start();
    for (let i = 0; i < 100 && handed.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    sessions.close();
    expect(handed).toEqual([peers]);
  });
});
