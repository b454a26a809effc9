import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAgentMetrics } from '@l4fleet/agent';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { agentSamples, createMetricsRecorder, httpFetchText } from './metrics-history.js';

function exposition(packets: number, flows: number, backends: Record<string, number> = {}): string {
  return [
    `l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} ${packets / 2}`,
    `l4fleet_dataplane_vip_packets{vip="198.51.100.11:53/udp"} ${packets / 2}`,
    `l4fleet_dataplane_flow_entries ${flows}`,
    `l4fleet_dataplane_drops_packets{reason="noBackend"} 0`,
    ...Object.entries(backends).map(([b, v]) => `l4fleet_dataplane_backend_packets{backend="${b}"} ${v}`),
  ].join('\n');
}

describe('metrics-history', () => {
  test('metrics-history - packet counters become rates per node; a reset gives a gap; backends sum over nodes', async () => {
    const readings: Record<string, string[]> = {
      'http://n1/metrics': [
        exposition(0, 5, { a: 0 }),
        exposition(200, 6, { a: 100 }),
        exposition(10, 7, { a: 10 }),
        exposition(30, 7, { a: 30 }),
      ],
      'http://n2/metrics': [
        exposition(0, 1, { a: 0 }),
        exposition(100, 1, { a: 50 }),
        exposition(200, 1, { a: 100 }),
        exposition(300, 1, { a: 150 }),
      ],
    };
    const rec = createMetricsRecorder({
      targets: new Map([
        ['n1', 'http://n1/metrics'],
        ['n2', 'http://n2/metrics'],
      ]),
      fetchText: async (url) => readings[url]?.shift() ?? '',
    });
    for (const t of [0, 2_000, 4_000, 6_000]) await rec.tick(t, t);
    const h = rec.history();
    expect(h.t).toEqual([0, 2, 4, 6]);
    expect(h.packetsPerNode.n1).toEqual([null, 100, null, 10]); // 200 pkts / 2 s; then the counter went down
    expect(h.packetsPerNode.n2).toEqual([null, 50, 50, 50]);
    expect(h.flowsPerNode.n1).toEqual([5, 6, 7, 7]);
    expect(h.packetsPerBackend.a).toEqual([null, 75, 25, 35]); // n1's reset column counts n2 only
  });

  test('metrics-history - a wall clock stepped forward moves the time axis, not the rates (they use the steady clock)', async () => {
    const readings = [exposition(0, 1), exposition(200, 1), exposition(400, 1)];
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => readings.shift() ?? '',
    });
    await rec.tick(0, 0);
    await rec.tick(2_000, 2_000);
    // NTP steps the wall clock an hour forward between two scrapes 2 s apart.
    await rec.tick(3_602_000, 4_000);
    const h = rec.history();
    expect(h.t).toEqual([0, 2, 3602]);
    expect(h.packetsPerNode.n1).toEqual([null, 100, 100]);
  });

  test('metrics-history - a wall clock stepped back moves the held columns back with it: the time axis stays sorted', async () => {
    const readings = [exposition(0, 1), exposition(200, 1), exposition(400, 1), exposition(600, 1)];
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => readings.shift() ?? '',
    });
    await rec.tick(3_600_000, 0);
    await rec.tick(3_602_000, 2_000);
    // NTP steps the wall clock an hour back between two scrapes 2 s apart (the steady clock goes on).
    await rec.tick(4_000, 4_000);
    expect(rec.history().t).toEqual([0, 2, 4]);
    expect(rec.lastColumn()).toMatchObject({ t: 4, prevT: 2 });
    await rec.tick(6_000, 6_000);
    expect(rec.history().t).toEqual([0, 2, 4, 6]);
    expect(rec.history().packetsPerNode.n1).toEqual([null, 100, 100, 100]);
    expect(rec.lastColumn()).toMatchObject({ t: 6, prevT: 4 });
  });

  test('metrics-history - a wall clock stepped back by exactly one scrape still gives a later column', async () => {
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => exposition(0, 1),
    });
    await rec.tick(10_000, 0);
    await rec.tick(12_000, 2_000);
    await rec.tick(12_000, 4_000); // stepped back 2 s: same wall reading as the last column
    expect(rec.history().t).toEqual([8, 10, 12]);
    expect(rec.lastColumn()).toMatchObject({ t: 12, prevT: 10 });
  });

  test('metrics-history - an unreachable agent gives a gap and an error, and recovers', async () => {
    let fail = true;
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => {
        if (fail) throw new Error('connect ECONNREFUSED');
        return exposition(10, 1);
      },
      capacity: 2,
    });
    await rec.tick(0, 0);
    expect(rec.history().errors).toEqual({ n1: 'connect ECONNREFUSED' });
    fail = false;
    await rec.tick(1_000, 1_000);
    await rec.tick(2_000, 2_000);
    const h = rec.history();
    expect(h.errors).toEqual({});
    expect(h.t).toEqual([1, 2]); // capacity 2
    expect(h.flowsPerNode.n1).toEqual([1, 1]);
    expect(h.packetsPerNode.n1).toEqual([null, 0]);
  });

  test.each([
    [
      'an empty 200',
      '',
      "no l4fleet_dataplane_vip_packets, l4fleet_dataplane_flow_entries (not an l4fleet agent's /metrics?)",
    ],
    [
      'node_exporter',
      '# TYPE node_load1 gauge\nnode_load1 0.5\n',
      "no l4fleet_dataplane_vip_packets, l4fleet_dataplane_flow_entries (not an l4fleet agent's /metrics?)",
    ],
    [
      'no flow entries',
      '# TYPE l4fleet_dataplane_vip_packets gauge\n',
      "no l4fleet_dataplane_flow_entries (not an l4fleet agent's /metrics?)",
    ],
    [
      'a NaN packet counter',
      exposition(10, 1).replace(
        'l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} 5',
        'l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} NaN',
      ),
      'l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} is NaN, not a finite number',
    ],
    [
      'an infinite flow count',
      exposition(10, 1).replace('l4fleet_dataplane_flow_entries 1', 'l4fleet_dataplane_flow_entries +Inf'),
      'l4fleet_dataplane_flow_entries is Infinity, not a finite number',
    ],
    [
      'a value that is not a number',
      exposition(10, 1).replace(
        'l4fleet_dataplane_drops_packets{reason="noBackend"} 0',
        'l4fleet_dataplane_drops_packets{reason="noBackend"} abc',
      ),
      'l4fleet_dataplane_drops_packets{reason="noBackend"} is NaN, not a finite number',
    ],
  ])(
    'metrics-history - %s at the metrics URL is a failed scrape naming the problem, not an idle node',
    async (_, body, problem) => {
      const rec = createMetricsRecorder({
        targets: new Map([['n1', 'http://n1/metrics']]),
        fetchText: async () => body,
      });
      await rec.tick(0, 0);
      await rec.tick(2_000, 2_000);
      const h = rec.history();
      expect(h.errors).toEqual({ n1: `http://n1/metrics: ${problem}` });
      expect([h.packetsPerNode.n1, h.flowsPerNode.n1]).toEqual([
        [null, null],
        [null, null],
      ]);
    },
  );

  test("metrics-history - a real agent's /metrics passes, with its data plane not up yet and with it", async () => {
    const m = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
    expect(agentSamples('http://n1/metrics', await m.registry.metrics())).not.toHaveLength(0);
    m.setDataPlaneSource(async () => ({
      vips: [{ vip: '198.51.100.10:80/tcp', packets: 7, bytes: 700 }],
      backends: [],
      drops: {} as never,
      flowTable: { entries: 3, fullPackets: 0 },
    }));
    const samples = agentSamples('http://n1/metrics', await m.registry.metrics());
    expect(samples.find((x) => x.name === 'l4fleet_dataplane_flow_entries')?.value).toBe(3);
  });

  test('metrics-history - a real agent whose data-plane counters cannot be read is a gap and an error, not 0 packets/s', async () => {
    const m = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
    // Reads 1-2 answer, 3-5 fail (the agent then keeps the families declared with no sample, counters_up 0), 6-7 answer.
    let reads = 0;
    m.setDataPlaneSource(async () => {
      reads += 1;
      if (reads >= 3 && reads <= 5) throw new Error('bpf map read failed');
      return {
        vips: [{ vip: '198.51.100.10:80/tcp', packets: reads * 500, bytes: reads * 50_000 }],
        backends: [{ address: '198.18.1.1', packets: reads * 500, bytes: reads * 50_000 }],
        drops: { 'no-backend': { packets: reads * 10, bytes: reads * 600 } } as never,
        flowTable: { entries: 3, fullPackets: 0 },
      };
    });
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => m.registry.metrics(),
    });
    const errors: Record<string, string>[] = [];
    for (let i = 0; i < 7; i++) {
      await rec.tick(i * 2_000, i * 2_000);
      errors.push({ ...rec.history().errors });
    }
    const h = rec.history();
    expect(h.packetsPerNode.n1).toEqual([null, 250, null, null, null, null, 250]);
    expect(h.dropsPerNode.n1).toEqual([null, 5, null, null, null, null, 5]);
    expect(h.flowsPerNode.n1).toEqual([3, 3, null, null, null, 3, 3]);
    expect(h.packetsPerBackend['198.18.1.1']).toEqual([null, 250, null, null, null, null, 250]);
    const unreadable = 'http://n1/metrics: data-plane counters unreadable (l4fleet_dataplane_counters_up 0)';
    expect(errors).toEqual([{}, {}, { n1: unreadable }, { n1: unreadable }, { n1: unreadable }, {}, {}]);
    expect(rec.lastColumn()?.errors).toEqual({});
  });

  test('metrics-history - a real agent whose data plane is not up yet is a gap and says so, not an idle node', async () => {
    const m = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => m.registry.metrics(),
    });
    await rec.tick(0, 0);
    await rec.tick(2_000, 2_000);
    const h = rec.history();
    expect([h.packetsPerNode.n1, h.dropsPerNode.n1, h.flowsPerNode.n1]).toEqual([
      [null, null],
      [null, null],
      [null, null],
    ]);
    expect(h.errors).toEqual({
      n1: 'http://n1/metrics: no data-plane counters read yet (l4fleet_dataplane_flow_entries has no sample)',
    });
  });

  test('metrics-history - an agent without VIPs yet (families declared, no samples) is scraped fine', async () => {
    const body = [
      '# HELP l4fleet_dataplane_vip_packets packets',
      '# TYPE l4fleet_dataplane_vip_packets gauge',
      '# TYPE l4fleet_dataplane_flow_entries gauge',
      'l4fleet_dataplane_flow_entries 0',
    ].join('\n');
    const rec = createMetricsRecorder({ targets: new Map([['n1', 'http://n1/metrics']]), fetchText: async () => body });
    await rec.tick(0, 0);
    await rec.tick(2_000, 2_000);
    expect(rec.history().errors).toEqual({});
    expect(rec.history().packetsPerNode.n1).toEqual([null, 0]);
  });

  test('metrics-history - a backend no node reports any more is dropped once its whole window is a gap', async () => {
    const readings = [
      exposition(0, 1, { a: 0, b: 0 }),
      exposition(10, 1, { a: 10, b: 10 }),
      exposition(20, 1, { b: 20 }), // a left the pools
      exposition(30, 1, { b: 30 }),
      exposition(40, 1, { b: 40 }),
    ];
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => readings.shift() ?? '',
      capacity: 2,
    });
    await rec.tick(0, 0);
    expect(Object.keys(rec.history().packetsPerBackend).sort()).toEqual(['a', 'b']); // no rate yet, but reported
    await rec.tick(1_000, 1_000);
    await rec.tick(2_000, 2_000);
    expect(rec.history().packetsPerBackend.a).toEqual([10, null]);
    await rec.tick(3_000, 3_000);
    await rec.tick(4_000, 4_000);
    // Backends come and go with the pools: a series kept for each one ever seen would grow without bound.
    expect(rec.history().packetsPerBackend).toEqual({ b: [10, 10] });
  });
});

describe('metrics-history - scraping over http', () => {
  let server: Server;
  let base = '';
  const timers = new Set<NodeJS.Timeout>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/metrics' }).end();
      } else if (req.url === '/endless') {
        // 16 KiB every 10 ms until the client goes: an agent (or whatever answers there) that never ends its body.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('#'.repeat(16 * 1024)), 10);
        timers.add(timer);
        res.once('close', () => {
          clearInterval(timer);
          timers.delete(timer);
        });
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('l4fleet_dataplane_flow_entries 3\n');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('metrics-history - a body within the cap is read whole', async () => {
    await expect(httpFetchText(`${base}/metrics`, 5_000)).resolves.toBe('l4fleet_dataplane_flow_entries 3\n');
  });

  test('metrics-history - a redirect is a failed scrape, not followed', async () => {
    await expect(httpFetchText(`${base}/moved`, 5_000)).rejects.toThrow(`${base}/moved: HTTP 302`);
  });

  test('metrics-history - a body past the byte cap is a failed scrape, read no further', async () => {
    await expect(httpFetchText(`${base}/endless`, 5_000, 64 * 1024)).rejects.toThrow(
      `${base}/endless: the body is more than 65536 bytes`,
    );
  });
});
