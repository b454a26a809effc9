import { createAgentMetrics } from '@l4fleet/agent';
import { describe, expect, test } from 'vitest';
import { parsePrometheusText, sumBy } from './prom-text.js';

describe('prom-text', () => {
  test('prom-text - reads the agent registry as it renders it (labels, histograms, default labels)', async () => {
    const m = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
    m.vipAnnounced.set({ vip: '198.51.100.10:80/tcp' }, 1);
    m.tableApplySeconds.observe(0.02);
    m.setDataPlaneSource(async () => ({
      vips: [{ vip: '198.51.100.10:80/tcp', packets: 7, bytes: 700 }],
      backends: [],
      drops: { noBackend: { packets: 2, bytes: 0 } } as never,
      flowTable: { entries: 3, fullPackets: 0 },
    }));
    const samples = parsePrometheusText(await m.registry.metrics());
    const announced = samples.find((s) => s.name === 'l4fleet_vip_announced');
    expect(announced).toEqual({
      name: 'l4fleet_vip_announced',
      labels: { vip: '198.51.100.10:80/tcp', node: 'n1', fleet: 'f' },
      value: 1,
    });
    expect(sumBy(samples, 'l4fleet_dataplane_vip_packets', 'vip').get('198.51.100.10:80/tcp')).toBe(7);
    expect(samples.find((s) => s.name === 'l4fleet_table_apply_seconds_bucket' && s.labels.le === '+Inf')?.value).toBe(
      1,
    );
  });

  test('prom-text - escaped label values, +Inf, timestamps', () => {
    const s = parsePrometheusText('# HELP x y\nx{a="q\\"uote\\\\",b="l\\nf"} +Inf 1700000000\ny 2.5\n');
    expect(s).toEqual([
      { name: 'x', labels: { a: 'q"uote\\', b: 'l\nf' }, value: Number.POSITIVE_INFINITY },
      { name: 'y', labels: {}, value: 2.5 },
    ]);
  });

  test.each([['x{a=1} 2'], ['x{a="1" 2'], ['{} 1'], ['x']])('prom-text - refuses %j naming the line', (line) => {
    expect(() => parsePrometheusText(`ok 1\n${line}\n`)).toThrow(
      new RegExp(`metrics line ${JSON.stringify(line).replace(/[{}[\]()*+?.\\^$|]/g, '\\$&')}`),
    );
  });
});
