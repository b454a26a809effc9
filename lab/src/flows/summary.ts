/** Pure: a worker report plus "which node carries which flow" -> the figures `lab watch` and the e2e steps print. */
import type { FlowSample, WorkerReport } from './types.js';

export interface FlowSummary {
  readonly at: number;
  readonly total: number;
  readonly open: number;
  readonly broken: number;
  readonly perNode: Record<string, number>;
  readonly perBackend: Record<string, number>;
  /** Longest gap between answers on any flow since the last mark, ms. */
  readonly longestPauseMs: number;
  /** Flows opened after the last mark (a step's new flows), by node and by backend. */
  readonly newFlows: {
    readonly total: number;
    readonly perNode: Record<string, number>;
    readonly perBackend: Record<string, number>;
  };
  readonly brokenFlows: readonly {
    id: number;
    protocol: string;
    localPort: number;
    reason: string;
    backend?: string;
  }[];
}

export function flowKey(protocol: string, localPort: number): string {
  return `${protocol}:${localPort}`;
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

/** `carriers` maps flowKey -> node name; flows no node reported are counted under `?`. */
export function summarize(report: WorkerReport, carriers: ReadonlyMap<string, string>): FlowSummary {
  const perNode: Record<string, number> = {};
  const perBackend: Record<string, number> = {};
  const newPerNode: Record<string, number> = {};
  const newPerBackend: Record<string, number> = {};
  let open = 0;
  let broken = 0;
  let newTotal = 0;
  let longestPauseMs = 0;
  const brokenFlows: FlowSummary['brokenFlows'][number][] = [];
  for (const f of report.flows) {
    longestPauseMs = Math.max(longestPauseMs, f.maxPauseMs);
    if (f.state === 'broken') {
      broken++;
      brokenFlows.push({
        id: f.id,
        protocol: f.protocol,
        localPort: f.localPort,
        reason: f.reason ?? 'unknown',
        ...(f.backend ? { backend: f.backend } : {}),
      });
      continue;
    }
    if (f.state !== 'open') continue;
    open++;
    const node = carriers.get(flowKey(f.protocol, f.localPort)) ?? '?';
    const backend = f.backend ?? '?';
    count(perNode, node);
    count(perBackend, backend);
    if (f.sinceMark ?? f.openedAt >= report.markAt) {
      newTotal++;
      count(newPerNode, node);
      count(newPerBackend, backend);
    }
  }
  return {
    at: report.at,
    total: report.flows.length,
    open,
    broken,
    perNode,
    perBackend,
    longestPauseMs,
    newFlows: { total: newTotal, perNode: newPerNode, perBackend: newPerBackend },
    brokenFlows,
  };
}

/** The table each e2e step prints: flows per node and backend, broken flows, the longest pause. */
export function disruptionTable(step: string, s: FlowSummary): string {
  const pct = (n: number, of: number) => (of === 0 ? '-' : `${((100 * n) / of).toFixed(1)}%`);
  const lines = [
    `== ${step}`,
    `flows ${s.total}  open ${s.open}  broken ${s.broken}  longest pause ${s.longestPauseMs} ms  new flows ${s.newFlows.total}`,
    'where      name        flows   share   new   new share',
  ];
  const rows = (kind: string, all: Record<string, number>, fresh: Record<string, number>) => {
    for (const name of [...new Set([...Object.keys(all), ...Object.keys(fresh)])].sort()) {
      const n = all[name] ?? 0;
      const m = fresh[name] ?? 0;
      lines.push(
        `${kind.padEnd(10)} ${name.padEnd(11)} ${String(n).padStart(5)} ${pct(n, s.open).padStart(7)} ${String(m).padStart(5)} ${pct(m, s.newFlows.total).padStart(10)}`,
      );
    }
  };
  rows('node', s.perNode, s.newFlows.perNode);
  rows('backend', s.perBackend, s.newFlows.perBackend);
  for (const b of s.brokenFlows.slice(0, 10)) {
    lines.push(`broken     ${b.protocol}:${b.localPort} (${b.reason}${b.backend ? `, was ${b.backend}` : ''})`);
  }
  if (s.brokenFlows.length > 10) lines.push(`broken     ... ${s.brokenFlows.length - 10} more`);
  return lines.join('\n');
}

export type { FlowSample };
