/** The node's etcd session (connection.ts) on the in-memory store; time runs on a manual clock. */
import { MemoryFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createEtcdConnection } from './connection.js';
import { createFailStatic } from './fail-static.js';
import { createReports } from './reports.js';

function setup(store: MemoryFleetStore) {
  const clock = createManualClock(1_000_000);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const metrics = createAgentMetrics({ node: 'lb1', fleet: 'default', defaultMetrics: false });
  const failStaticChanges: [boolean, string][] = [];
  const unreachable: string[] = [];
  const failStatic = createFailStatic({
    store,
    clock,
    probeTimeoutMs: 2_000,
    metrics,
    logger,
    revision: () => 0,
    onFailStatic: (fs, why) => failStaticChanges.push([fs, why]),
    onUnreachable: (why) => unreachable.push(why),
  });
  const reports = createReports({
    clock,
    logger,
    observed: () => new Map(),
    status: () => ({ tables: {}, announced: [], bgp: {}, failStatic: failStatic.failStatic, desiredRevision: 0 }),
  });
  let attempts = 0;
  const counted = Object.create(store) as MemoryFleetStore;
  counted.registerNode = (info, options) => {
    attempts += 1;
    return store.registerNode(info, options);
  };
  const connection = createEtcdConnection({
    store: counted,
    node: { name: 'lb1', address: '198.18.0.1' },
    leaseTtlS: 10,
    clock,
    logger,
    failStatic,
    reports,
    rejected: { report: () => undefined, note: () => undefined, summary: undefined },
    onDesired: () => undefined,
    onDecided: () => undefined,
    onNodes: () => undefined,
    onHistory: () => undefined,
    onStateRejected: () => undefined,
  });
  return { clock, lines, failStatic, failStaticChanges, unreachable, reports, connection, attempts: () => attempts };
}

describe('etcd connection - a node.name another agent holds', () => {
  // Refused as any registration failure was: each second fail-static entered ('registerFailed', etcdConnected 0 while
  // etcd answered; with a state file the probe left it again, and a starting node served its file under a name
  // another node holds), a warning, and a lease granted and revoked against etcd.
  test('etcd connection - a refused name is no outage: no fail-static, few warnings that say what to do, backed off', async () => {
    const fleet = new MemoryFleetStore();
    const holder = await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client());
    t.failStatic.startProbing(0); // as with a state file: the probe answers meanwhile
    let connected = false;
    void t.connection.connect().then(() => void (connected = true));
    for (let s = 0; s < 60; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(false);
    expect(t.failStaticChanges).toEqual([]);
    expect(t.unreachable).toEqual([]);
    expect(t.failStatic.etcdOk).toBe(true);
    const warned = t.lines.filter((l) => Number(l.level) >= 40 && String(l.event).startsWith('register'));
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThanOrEqual(2);
    const first = warned[0] ?? {};
    expect(first.event).toBe('registerRefused');
    expect(first.err).toMatch(/node\.name "lb1" is already registered by 198\.18\.0\.2/);
    expect(first.hint).toMatch(/node names must be unique/);
    expect(first.hint).toMatch(/etcdctl del <etcd\.prefix>\/v1\/nodes\/lb1/);
    expect(t.attempts()).toBeLessThanOrEqual(10);
    // The holder stops: the name is taken within one backoff.
    await holder.close();
    for (let s = 0; s < 30 && !connected; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(true);
    expect((await fleet.listNodes()).map((n) => n.record?.address)).toEqual(['198.18.0.1']);
    expect(t.failStaticChanges).toEqual([]);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });
});
