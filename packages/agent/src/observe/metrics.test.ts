import type { DataPlaneCounters } from '@l4fleet/dataplane';
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
