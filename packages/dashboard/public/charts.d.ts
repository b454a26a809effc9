/** Types of charts.js for the unit tests (the page itself is plain JavaScript). */
import type { MetricsColumn, MetricsHistory } from '../src/metrics-history.js';
export type AppendResult = 'appended' | 'held' | 'out-of-step';
export declare function appendColumn(history: MetricsHistory, column: MetricsColumn): AppendResult;
export declare function createCharts(
  container: unknown,
  note: unknown,
): { append(column: MetricsColumn): AppendResult; update(full: MetricsHistory): void };
