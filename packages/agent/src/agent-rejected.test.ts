/**
 * Records the store refuses (issue 12): each one is logged, published, counted and shown in the node's status
 * record, and the node keeps serving its last good state. The store is the in-memory one with its watches tapped,
 * so the test can report what a hostile etcd key makes the etcd store report; time runs on a manual clock.
 */
import { createFakeSpeaker } from '@l4fleet/bgp';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore, StoreError, type WatchListener } from '@l4fleet/store';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { type Agent, type AgentStatusReport, createAgent } from './agent.js';
import { createManualClock } from './clock.js';
import { parseAgentConfig } from './config/parse.js';
import { INVALID_RECORD } from './etcd/rejected-records.js';
import { STATUS_REPORT_DELAY_MS } from './etcd/reports.js';
import type { AgentEvent } from './events/subjects.js';

const WATCHES = {
  desired: 'watchDesired',
  decided: 'watchDecided',
  nodes: 'watchNodes',
  health: 'watchHealthReports',
} as const;
type TappedFamily = keyof typeof WATCHES;

/** The memory store, remembering the listener of each watch so the test can call its onError. */
class TappedStore extends MemoryFleetStore {
  readonly taps = new Map<TappedFamily, WatchListener<never>>();
  override watchDesired(l: Parameters<MemoryFleetStore['watchDesired']>[0]) {
    this.taps.set('desired', l as WatchListener<never>);
    return super.watchDesired(l);
  }
  override watchDecided(l: Parameters<MemoryFleetStore['watchDecided']>[0]) {
    this.taps.set('decided', l as WatchListener<never>);
    return super.watchDecided(l);
  }
  override watchNodes(l: Parameters<MemoryFleetStore['watchNodes']>[0]) {
    this.taps.set('nodes', l as WatchListener<never>);
    return super.watchNodes(l);
  }
  override watchHealthReports(l: Parameters<MemoryFleetStore['watchHealthReports']>[0]) {
    this.taps.set('health', l as WatchListener<never>);
    return super.watchHealthReports(l);
  }
  /** What the etcd store reports for a record it refused. */
  reject(family: TappedFamily, message: string, key?: string): void {
    const l = this.taps.get(family);
    if (!l?.onError) throw new Error(`no ${WATCHES[family]} listener with onError`);
    l.onError(new StoreError(INVALID_RECORD, message, key === undefined ? {} : { key }));
  }
}

const running: Agent[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.close();
});

async function servingNode() {
  const clock = createManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const store = new TappedStore();
  await store.apply(twoPoolFleet({ type: 'none' }));
  const speaker = createFakeSpeaker();
  const dataPlane = createRecordingDataPlane({ requireSamePort: false });
  const events: AgentEvent[] = [];
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const agent = createAgent({
    config: parseAgentConfig({
      node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      dataplane: { driver: 'dry-run' },
    }),
    store,
    speaker,
    dataPlane,
    logger,
    clock,
    onEvent: (e) => events.push(e),
  });
  running.push(agent);
  await agent.start();
  await clock.advance(STATUS_REPORT_DELAY_MS);
  expect(agent.status()).toMatchObject({ state: 'serving', ready: true, aggregator: true });
  const statusRecord = async () =>
    (await store.listNodes()).find((n) => n.name === 'n1')?.status as AgentStatusReport | undefined;
  return { clock, store, speaker, dataPlane, events, lines, agent, statusRecord };
}

describe('agent - records the store rejected', () => {
  test.each(Object.keys(WATCHES) as TappedFamily[])(
    '%s: logged, published, counted and in the status record; the last good state keeps serving',
    async (family) => {
      const n = await servingNode();
      const tables = n.agent.status().tables;
      const routes = n.speaker.advertised.map((a) => a.prefix);
      const applies = n.dataPlane.applied.length;
      const routeSets = n.speaker.history.length;
      expect(routes.length).toBe(2);
      expect(await n.statusRecord()).not.toHaveProperty('rejectedRecords');

      const message = `${family} key /l4fleet/x: claims 1000000000 chunks (at most 4096)`;
      n.store.reject(family, message);
      await n.clock.advance(STATUS_REPORT_DELAY_MS);

      expect(n.lines.find((l) => l.event === 'recordRejected')).toMatchObject({ family, code: INVALID_RECORD });
      const ev = n.events.filter((e) => e.kind === 'record.rejected');
      expect(ev.map((e) => e.data)).toEqual([{ family, code: INVALID_RECORD, error: message }]);
      const metric = await n.agent.metrics.registry.getSingleMetricAsString('l4fleet_store_rejected_records_total');
      expect(metric).toMatch(new RegExp(`l4fleet_store_rejected_records_total\\{family="${family}"[^}]*\\} 1`));
      const expected = { total: 1, byFamily: { [family]: 1 }, last: { family, error: message } };
      expect(n.agent.status().rejectedRecords).toMatchObject(expected);
      expect((await n.statusRecord())?.rejectedRecords).toMatchObject(expected);

      // nothing changed: same tables, same routes, no data-plane apply, no route set, no withdraw
      expect(n.agent.status()).toMatchObject({ state: 'serving', failStatic: false, tables });
      expect(n.speaker.advertised.map((a) => a.prefix)).toEqual(routes);
      expect(n.dataPlane.applied.length).toBe(applies);
      expect(n.speaker.history.length).toBe(routeSets);
      expect(n.events.some((e) => e.kind === 'vip.withdrawn')).toBe(false);
    },
  );

  test('the watch keeps working after a rejected record: the next good desired state is served', async () => {
    const n = await servingNode();
    n.store.reject('desired', 'desired key: sha256 does not match');
    n.store.reject('desired', 'desired key: sha256 does not match');
    const fleet = twoPoolFleet({ type: 'none' });
    await n.store.apply({ ...fleet, vips: fleet.vips.slice(0, 1) });
    await n.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(n.speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32']);
    expect(n.agent.status().rejectedRecords).toMatchObject({ total: 2, byFamily: { desired: 2 } });
  });

  test('other watch errors are not counted as rejected records', async () => {
    const n = await servingNode();
    n.store.taps.get('decided')?.onError?.(new StoreError('COMPACTED', 'etcd watch: compacted'));
    await n.clock.advance(STATUS_REPORT_DELAY_MS);
    expect(n.agent.status().rejectedRecords).toBeUndefined();
    expect(n.events.some((e) => e.kind === 'record.rejected')).toBe(false);
  });

  // One hand-written 800 KB key made the status record 1.6 MB: etcd refused every status write (retried each second
  // forever) and the 1.6 MB event was beyond NATS's 1 MB payload.
  test('a very long key and message are cut in the log, the event and the status record, saying so', async () => {
    const n = await servingNode();
    const key = `/l4fleet/v1/desired/${'k'.repeat(800_000)}`;
    n.store.reject('desired', `${key}: not JSON`, key);
    await n.clock.advance(STATUS_REPORT_DELAY_MS);

    const last = n.agent.status().rejectedRecords?.last;
    expect(last?.key?.length).toBeLessThan(400);
    expect(last?.key).toMatch(/^\/l4fleet\/v1\/desired\/k+.*cut.*800,020 chars/);
    expect(last?.error.length).toBeLessThan(700);
    expect(last?.error).toMatch(/cut/);
    const record = await n.statusRecord();
    expect(JSON.stringify(record).length).toBeLessThan(16_000);
    expect(record?.rejectedRecords?.last.key).toBe(last?.key);
    const ev = n.events.find((e) => e.kind === 'record.rejected');
    expect(JSON.stringify(ev).length).toBeLessThan(2_000);
    const line = n.lines.find((l) => l.event === 'recordRejected');
    expect(JSON.stringify(line).length).toBeLessThan(2_000);
  });
});
