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

export function createCharts(container, note) {
  const made = new Map(); // key -> { plot, names }
  return {
    update(history) {
      for (const c of CHARTS) {
        const series = history[c.key] ?? {};
        const names = Object.keys(series).sort();
        const data = [history.t, ...names.map((n) => series[n])];
        let chart = made.get(c.key);
        if (!chart || chart.names.join() !== names.join()) {
          chart?.plot.destroy();
          chart?.box.remove();
          const box = el('div', { 'data-chart': c.key });
          container.append(box);
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
      note.textContent = down.length ? `not scraped: ${down.map(([n, e]) => `${n} (${e})`).join(', ')}` : '';
      if (!history.t.length)
        note.textContent = 'no agent /metrics configured or scraped yet (--agent-metrics NODE=URL)';
    },
  };
}
