/** The page's charts history (public/charts.js appendColumn) follows the server's from one column per scrape. */
import { describe, expect, test } from 'vitest';
import { appendColumn } from '../public/charts.js';
import { createMetricsRecorder, type MetricsHistory } from './metrics-history.js';

const body = (packets: number, backends: Record<string, number>) =>
  [
    `l4fleet_dataplane_vip_packets{vip="198.51.100.10:80/tcp"} ${packets}`,
    'l4fleet_dataplane_flow_entries 2',
    ...Object.entries(backends).map(([b, v]) => `l4fleet_dataplane_backend_packets{backend="${b}"} ${v}`),
  ].join('\n');

describe('metrics-column', () => {
  test('metrics-column - full history once, then columns: the page holds what the server holds', async () => {
    // n1: backends come and go; n2: fails for a while (errors, gaps); capacity 3 so columns fall off.
    const n1 = [body(0, { a: 0 }), body(10, { a: 5, b: 5 }), body(20, { b: 10 }), body(30, { b: 20 }), body(40, {})];
    const n2 = [body(0, {}), 'down', 'down', body(5, { c: 1 }), body(9, { c: 3 })];
    n1.push(body(50, { d: 1 }), body(60, { d: 2 }));
    n2.push(body(12, {}), body(15, {}));
    const rec = createMetricsRecorder({
      targets: new Map([
        ['n1', 'http://n1/metrics'],
        ['n2', 'http://n2/metrics'],
      ]),
      fetchText: async (url) => {
        const next = (url.includes('n1') ? n1 : n2).shift() ?? '';
        if (next === 'down') throw new Error('connect ECONNREFUSED');
        return next;
      },
      capacity: 3,
    });
    await rec.tick(0, 0);
    const page = structuredClone(rec.history()) as MetricsHistory;
    for (let i = 1; i < 7; i++) {
      await rec.tick(i * 2_000, i * 2_000);
      const column = rec.lastColumn();
      expect(column?.t).toBe(i * 2);
      appendColumn(page, structuredClone(column) as NonNullable<typeof column>);
      expect(page).toEqual(rec.history());
    }
  });

  test('metrics-column - a column the page has already (same time) is not appended twice', async () => {
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => body(1, {}),
    });
    await rec.tick(0, 0);
    await rec.tick(2_000, 2_000);
    const page = structuredClone(rec.history()) as MetricsHistory;
    appendColumn(page, rec.lastColumn() as NonNullable<ReturnType<typeof rec.lastColumn>>);
    expect(page).toEqual(rec.history());
  });

  test("metrics-column - a column that does not follow the page's last one (clock stepped back) asks for the whole history", async () => {
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => body(1, {}),
    });
    await rec.tick(3_600_000, 0);
    await rec.tick(3_602_000, 2_000);
    const page = structuredClone(rec.history()) as MetricsHistory;
    await rec.tick(4_000, 4_000); // NTP stepped the wall clock an hour back
    const column = rec.lastColumn() as NonNullable<ReturnType<typeof rec.lastColumn>>;
    expect(appendColumn(page, column)).toBe('out-of-step');
    expect(page.t).toEqual([3600, 3602]); // untouched: the page takes the server's history instead
  });

  test("metrics-column - a column that follows the page's last one is appended", async () => {
    const rec = createMetricsRecorder({
      targets: new Map([['n1', 'http://n1/metrics']]),
      fetchText: async () => body(1, {}),
    });
    await rec.tick(0, 0);
    const page = structuredClone(rec.history()) as MetricsHistory;
    await rec.tick(2_000, 2_000);
    expect(appendColumn(page, rec.lastColumn() as NonNullable<ReturnType<typeof rec.lastColumn>>)).toBe('appended');
    expect(page).toEqual(rec.history());
  });
});
