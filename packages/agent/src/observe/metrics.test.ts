import { createNftablesDataPlane, type DataPlaneCounters } from '@l4fleet/dataplane';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createAgentMetrics, recordDecided } from './metrics.js';

const zero = { packets: 0, bytes: 0 };

function counters(extra: Partial<DataPlaneCounters> = {}): DataPlaneCounters {
  return {
    vips: [{ vip: '198.51.100.10:80/tcp', packets: 7, bytes: 700 }],
    backends: [{ address: '198.18.3.11', packets: 5, bytes: 500 }],
    drops: { port: { packets: 2, bytes: 80 }, 'no-backend': zero, source: zero },
    flowTable: { entries: 3, fullPackets: 0 },
    ...extra,
  };
}

/** Rejects after 5 s: a scrape that waits on the data plane for ever fails the test instead of hanging it. */
const bounded = <T>(p: Promise<T>): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error('the scrape waited for the data plane')), 5_000)),
  ]);

async function scrape(c: DataPlaneCounters): Promise<string> {
  const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
  m.setDataPlaneSource(async () => c);
  return m.registry.metrics();
}

describe('agent metrics - data-plane gauges', () => {
  test('per VIP, per backend, drops by reason and flow entries come from one counters() read', async () => {
    const text = await scrape(counters());
    expect(text).toMatch(
      /^l4fleet_dataplane_vip_packets\{vip="198.51.100.10:80\/tcp",node="node1",fleet="default"\} 7$/m,
    );
    expect(text).toMatch(
      /^l4fleet_dataplane_backend_packets\{backend="198.18.3.11",node="node1",fleet="default"\} 5$/m,
    );
    expect(text).toMatch(/^l4fleet_dataplane_drops_packets\{reason="port",node="node1",fleet="default"\} 2$/m);
    expect(text).toMatch(/^l4fleet_dataplane_flow_entries\{node="node1",fleet="default"\} 3$/m);
  });

  test('second chance: the packets a bpf node sent with the previous owner named; 0 without the counter', async () => {
    const tagged = await scrape(counters({ secondChance: { tagged: { packets: 42, bytes: 4200 } } }));
    expect(tagged).toMatch(/^l4fleet_dataplane_second_chance_tagged_packets\{node="node1",fleet="default"\} 42$/m);
    const without = await scrape(counters());
    expect(without).toMatch(/^l4fleet_dataplane_second_chance_tagged_packets\{node="node1",fleet="default"\} 0$/m);
  });

  test('xdp: the packets the XDP fast path sent itself; 0 without it', async () => {
    const sent = await scrape(counters({ xdp: { forwarded: { packets: 9, bytes: 900 } } }));
    expect(sent).toMatch(/^l4fleet_dataplane_xdp_forwarded_packets\{node="node1",fleet="default"\} 9$/m);
    const without = await scrape(counters());
    expect(without).toMatch(/^l4fleet_dataplane_xdp_forwarded_packets\{node="node1",fleet="default"\} 0$/m);
  });

  test('icmp: pings answered and ICMP errors forwarded or unmatched, by kind (bpf); no series without the counters', async () => {
    const icmp = {
      echoReplied: { packets: 6, bytes: 600 },
      errorsForwarded: { packets: 2, bytes: 1200 },
      errorsUnmatched: { packets: 1, bytes: 600 },
    };
    const text = await scrape(counters({ icmp }));
    expect(text).toMatch(/^l4fleet_dataplane_icmp_packets\{kind="echo-replied",node="node1",fleet="default"\} 6$/m);
    expect(text).toMatch(/^l4fleet_dataplane_icmp_packets\{kind="error-forwarded",node="node1",fleet="default"\} 2$/m);
    expect(text).toMatch(/^l4fleet_dataplane_icmp_packets\{kind="error-unmatched",node="node1",fleet="default"\} 1$/m);
    expect(await scrape(counters())).not.toMatch(/^l4fleet_dataplane_icmp_packets\{/m);
  });
});

describe('agent metrics - member series', () => {
  const series = async (m: ReturnType<typeof createAgentMetrics>, name: string) =>
    (await m.registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .map((l) => l.replace(/,node="node1",fleet="default"/, ''));

  test('a ramp that ends without a decision (healthCheck none) and a member gone from the records leave no series', async () => {
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    recordDecided(
      m,
      new Map([
        ['web/a', 'up'],
        ['web/b', 'down'],
      ]),
      new Map([['plain/c', { percent: 80, sinceMs: 1 }]]),
    );
    expect(await series(m, 'l4fleet_member_weight_percent')).toEqual([
      'l4fleet_member_weight_percent{member="web/a"} 100',
      'l4fleet_member_weight_percent{member="web/b"} 100',
      'l4fleet_member_weight_percent{member="plain/c"} 80',
    ]);
    // plain/c's ramp ended (it has its whole weight, no decision), web/b left the fleet.
    recordDecided(m, new Map([['web/a', 'up']]), new Map());
    expect(await series(m, 'l4fleet_member_weight_percent')).toEqual([
      'l4fleet_member_weight_percent{member="web/a"} 100',
    ]);
    expect(await series(m, 'l4fleet_member_decided')).toEqual(['l4fleet_member_decided{member="web/a"} 1']);
  });

  test("this node's view of a member no longer probed is dropped", async () => {
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    m.setMemberObserved('web/a', 'up');
    m.setMemberObserved('web/b', 'down');
    m.setMemberObserved('web/c', 'unknown');
    m.forgetMembersObserved(new Set(['web/a', 'web/c']));
    expect(await series(m, 'l4fleet_member_observed')).toEqual([
      'l4fleet_member_observed{member="web/a"} 1',
      'l4fleet_member_observed{member="web/c"} -1',
    ]);
  });
});

describe('agent metrics - series at start', () => {
  const fresh = async () =>
    (await createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false }).registry.metrics())
      .split('\n')
      .map((l) => l.replace(/,?node="node1",fleet="default"/, '').replace('{}', ''));

  // increase() needs a sample before the first event: a series that appears at 1 with the first error is no increase,
  // and an alert on it never fires for the first event after a start.
  test('every known label value of a counter is exported at 0 before its first event', async () => {
    const lines = await fresh();
    const families = ['desired', 'decided', 'nodes', 'health', 'election', 'history'];
    for (const line of [
      'l4fleet_table_applies_total{result="ok"} 0',
      'l4fleet_table_applies_total{result="error"} 0',
      'l4fleet_table_drift_repairs_total 0',
      'l4fleet_table_verifies_total{result="ok"} 0',
      'l4fleet_table_verifies_total{result="repaired"} 0',
      'l4fleet_table_verifies_total{result="error"} 0',
      'l4fleet_config_reloads_total{result="applied"} 0',
      'l4fleet_config_reloads_total{result="refused"} 0',
      'l4fleet_health_probes_total{result="ok"} 0',
      'l4fleet_health_probes_total{result="fail"} 0',
      'l4fleet_last_state_saves_total{result="ok"} 0',
      'l4fleet_last_state_saves_total{result="error"} 0',
      ...families.map((f) => `l4fleet_store_rejected_records_total{family="${f}"} 0`),
    ]) {
      expect(lines).toContain(line);
    }
  });

  // A 0 while the agent starts would read as a revision change in the dashboard's "Fleet changes" at each restart;
  // a 0 bfdd_reachable on a node without BFD would read as a dead bfdd.
  test('no desired revision before the first one is known, and no bfdd reachability without BFD', async () => {
    const lines = await fresh();
    expect(lines.filter((l) => /^l4fleet_(desired_revision|bfdd_reachable)\b/.test(l))).toEqual([]);
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    m.desiredRevision.set(42);
    m.bfddReachable.set(1);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^l4fleet_desired_revision\{node="node1",fleet="default"\} 42$/m);
    expect(text).toMatch(/^l4fleet_bfdd_reachable\{node="node1",fleet="default"\} 1$/m);
  });

  test('events published and dropped are counters that follow the publisher totals', async () => {
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    m.eventsDroppedTotal.set(3);
    m.eventsDroppedTotal.set(5);
    m.eventsPublishedTotal.set(7);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^# TYPE l4fleet_events_dropped_total counter$/m);
    expect(text).toMatch(/^# TYPE l4fleet_events_published_total counter$/m);
    expect(text).toMatch(/^l4fleet_events_dropped_total\{node="node1",fleet="default"\} 5$/m);
    expect(text).toMatch(/^l4fleet_events_published_total\{node="node1",fleet="default"\} 7$/m);
  });
});

describe('agent metrics - a slow data plane', () => {
  // Prometheus gives up on a scrape after scrape_timeout (4 s in deploy/grafana): a data-plane read stuck behind an
  // apply must not take the agent's other metrics with it (L4fleetAgentDown on a live agent).
  test('a read that does not answer: the scrape answers with the last reading, and no second read starts', async () => {
    const m = createAgentMetrics({
      node: 'node1',
      fleet: 'default',
      defaultMetrics: false,
      dataPlaneReadTimeoutMs: 20,
    });
    let reads = 0;
    m.setDataPlaneSource(async () => {
      reads += 1;
      if (reads === 1) return counters();
      return new Promise<DataPlaneCounters>(() => undefined);
    });
    expect(await bounded(m.registry.metrics())).toMatch(/^l4fleet_dataplane_flow_entries\{[^}]*\} 3$/m);
    // The next scrape's read hangs: the gauges keep the reading before it.
    const stuck = await bounded(m.registry.metrics());
    expect(stuck).toMatch(/^l4fleet_dataplane_vip_packets\{vip="198.51.100.10:80\/tcp",[^}]*\} 7$/m);
    expect(stuck).toMatch(/^l4fleet_fail_static\{node="node1",fleet="default"\} 0$/m);
    await bounded(m.registry.metrics());
    expect(reads).toBe(2);
  });

  test('a read that never answered yet: the scrape answers without data-plane samples', async () => {
    const m = createAgentMetrics({
      node: 'node1',
      fleet: 'default',
      defaultMetrics: false,
      dataPlaneReadTimeoutMs: 20,
    });
    m.setDataPlaneSource(() => new Promise<DataPlaneCounters>(() => undefined));
    m.failStatic.set(0);
    const text = await bounded(m.registry.metrics());
    expect(text).toMatch(/^l4fleet_fail_static\{node="node1",fleet="default"\} 0$/m);
    expect(text).not.toMatch(/^l4fleet_dataplane_vip_packets\{/m);
  });
});

describe('agent metrics - a data plane that cannot be read', () => {
  // A failed read is not a slow one: keeping its last reading would show a flat counter (rate() 0) for a VIP that may
  // still carry connections, and the operator guide's drain says to disable the VIP once its traffic stops.
  test('a read that fails: the data-plane series go missing and counters_up says 0 until a read answers again', async () => {
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    const answers: (DataPlaneCounters | Error)[] = [
      counters({ secondChance: { tagged: { packets: 4, bytes: 400 } } }),
      new Error('nft -j list table: table l4fleet does not exist'),
      counters(),
    ];
    m.setDataPlaneSource(async () => {
      const a = answers.shift();
      if (a === undefined || a instanceof Error) throw a ?? new Error('no more answers');
      return a;
    });
    const ok = await bounded(m.registry.metrics());
    expect(ok).toMatch(/^l4fleet_dataplane_counters_up\{node="node1",fleet="default"\} 1$/m);
    expect(ok).toMatch(/^l4fleet_dataplane_vip_packets\{vip="198.51.100.10:80\/tcp",[^}]*\} 7$/m);

    const failed = await bounded(m.registry.metrics());
    expect(failed).toMatch(/^l4fleet_dataplane_counters_up\{node="node1",fleet="default"\} 0$/m);
    // No sample of any data-plane gauge: absent, not a 0 that reads as an idle node.
    expect(failed.split('\n').filter((l) => /^l4fleet_dataplane_(?!counters_up)/.test(l))).toEqual([]);
    expect(failed).toMatch(/^l4fleet_fail_static\{node="node1",fleet="default"\} 0$/m);

    const back = await bounded(m.registry.metrics());
    expect(back).toMatch(/^l4fleet_dataplane_counters_up\{node="node1",fleet="default"\} 1$/m);
    expect(back).toMatch(/^l4fleet_dataplane_flow_entries\{[^}]*\} 3$/m);
  });

  test('a run of failed reads is logged once, with the error, and its end once', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    let fail = true;
    m.setDataPlaneSource(async () => {
      if (fail) throw new Error('nft -j list table: table l4fleet does not exist');
      return counters();
    }, log);
    for (let i = 0; i < 3; i++) await bounded(m.registry.metrics());
    fail = false;
    await bounded(m.registry.metrics());
    await bounded(m.registry.metrics());
    expect(lines.map((l) => [l.event, l.level])).toEqual([
      ['dataPlaneCountersFailed', 40],
      ['dataPlaneCountersRecovered', 30],
    ]);
    expect(lines[0]?.err).toMatchObject({ message: expect.stringContaining('table l4fleet does not exist') });
    expect(lines[1]?.failedReads).toBe(3);
  });

  // The agent sets the source at its start; the netdev table is written by the first apply, which waits for etcd.
  test('an nftables node before its first apply: counters_up 1 and no warning, not an unreadable data plane', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const dataPlane = createNftablesDataPlane({
      interface: 'eth0',
      logger: pino({ level: 'silent' }),
      deltaWriter: 'nft',
      // A kernel without l4fleet's tables yet.
      exec: async (argv) => ({ code: 1, stdout: '', stderr: `Error: No such file or directory\n${argv.join(' ')}` }),
    });
    const m = createAgentMetrics({ node: 'node1', fleet: 'default', defaultMetrics: false });
    m.setDataPlaneSource(() => dataPlane.counters(), log);
    const text = await bounded(m.registry.metrics());
    expect(text).toMatch(/^l4fleet_dataplane_counters_up\{node="node1",fleet="default"\} 1$/m);
    expect(text).toMatch(/^l4fleet_dataplane_flow_entries\{node="node1",fleet="default"\} 0$/m);
    expect(lines.filter((l) => l.event === 'dataPlaneCountersFailed')).toEqual([]);
    await dataPlane.close();
  });

  test('before the driver is up: no data-plane samples, counters_up included', async () => {
    const text = await createAgentMetrics({
      node: 'node1',
      fleet: 'default',
      defaultMetrics: false,
    }).registry.metrics();
    expect(text.split('\n').filter((l) => /^l4fleet_dataplane_/.test(l))).toEqual([]);
  });
});
