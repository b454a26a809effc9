/** Time-series charts with uPlot (bundled with the package, served from /assets/uplot.js: no CDN). */
import { el, PALETTE } from './dom.js';

const CHARTS = [
  { key: 'packetsPerNode', title: 'packets/s per node' },
  { key: 'flowsPerNode', title: 'flows (flow-table entries) per node' },
  { key: 'packetsPerBackend', title: 'packets/s per backend (all nodes)' },
  { key: 'dropsPerNode', title: 'drops/s per node' },
];

const WIDTH_PX = 460;
const HEIGHT_PX = 180;

/**
 * Appends a `metrics-column` record (src/metrics-history.ts MetricsColumn) to `history` as the server did: a new
 * series starts with gaps, a series the column lacks is gone, and only the last `capacity` columns are kept.
 * 'appended'; 'held' when the history has that column already; 'out-of-step' (history untouched) when the column does
 * not follow the last one held (the server moved its times back after a wall clock step, or a column was missed):
 * the page must take the server's whole history again, or it would skip every column until the clock caught up.
 */
export function appendColumn(history, column) {
  const last = history.t.at(-1) ?? null;
  if (last === column.t && (history.t.at(-2) ?? null) === column.prevT) return 'held';
  if (last !== column.prevT) return 'out-of-step';
  const before = history.t.length;
  history.t.push(column.t);
  for (const c of CHARTS) {
    const series = history[c.key] ?? {};
    const values = column[c.key] ?? {};
    for (const name of Object.keys(series)) if (!(name in values)) delete series[name];
    for (const [name, v] of Object.entries(values)) {
      series[name] ??= new Array(before).fill(null);
      series[name].push(v);
    }
    history[c.key] = series;
  }
  history.errors = column.errors;
  const extra = history.t.length - column.capacity;
  if (extra > 0) {
    history.t.splice(0, extra);
    for (const c of CHARTS)
      for (const col of Object.values(history[c.key])) col.splice(0, col.length - column.capacity);
  }
  return 'appended';
}

export function createCharts(container, note) {
  const made = new Map(); // key -> { plot, names }
  let history;
  return {
    /** A `metrics-column` record: appended to the history the page holds, then drawn. What appendColumn says. */
    append(column) {
      if (!history) return 'held'; // the full history comes first on every (re)connect
      const result = appendColumn(history, column);
      if (result === 'appended') this.update(history);
      return result;
    },
    /** A `metrics` record: the whole history (on connect). */
    update(full) {
      history = full;
      for (const c of CHARTS) {
        const series = history[c.key] ?? {};
        const names = Object.keys(series).sort();
        const data = [history.t, ...names.map((n) => series[n])];
        let chart = made.get(c.key);
        if (!chart || chart.names.join() !== names.join()) {
          chart?.plot.destroy();
          const box = el('div', { 'data-chart': c.key });
          // In the old one's place: the charts keep their order when one's series change.
          if (chart) chart.box.replaceWith(box);
          else container.append(box);
          const plot = new globalThis.uPlot(
            {
              title: c.title,
              width: WIDTH_PX,
              height: HEIGHT_PX,
              series: [
                {},
                ...names.map((n, i) => ({
                  label: n,
                  stroke: PALETTE[i % PALETTE.length],
                  width: 1.5,
                  spanGaps: false,
                })),
              ],
              axes: [{}, { size: 60 }],
            },
            data,
            box,
          );
          chart = { plot, names, box };
          made.set(c.key, chart);
        } else {
          chart.plot.setData(data);
        }
      }
      const down = Object.entries(history.errors ?? {});
      note.textContent = down.length ? `no data from: ${down.map(([n, e]) => `${n} (${e})`).join(', ')}` : '';
      if (!history.t.length)
        note.textContent = 'no agent /metrics configured or scraped yet (--agent-metrics NODE=URL)';
    },
  };
}
