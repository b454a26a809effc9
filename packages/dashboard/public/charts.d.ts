/** Types of charts.js for the unit tests (the page itself is plain JavaScript). */
import type { MetricsColumn, MetricsHistory } from '../src/metrics-history.js';
export declare function appendColumn(history: MetricsHistory, column: MetricsColumn): MetricsHistory;
export declare function createCharts(
  container: unknown,
  note: unknown,
): { append(column: MetricsColumn): void; update(full: MetricsHistory): void };
