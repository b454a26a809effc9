/**
 * deploy/grafana against the agent's real metrics module: every metric the Grafana dashboard queries (panels,
 * variables and annotations) exists in what the agent's registry renders on /metrics, every label it groups by exists on a metric
 * of that query, every metric an alert of alerts.yml reads has a panel (per node for an alert about a node), the
 * panels neither overlap nor leave their row, and the provisioning and the Prometheus scrape config agree with the
 * dashboard and the agent's defaults. No Grafana or Prometheus needed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { agentConfigDefaults } from '@l4fleet/agent';
import { agentExposition } from '@l4fleet/test-support/agent-exposition';
import { grafanaDashboard as dashboard, grafanaQueries as queries } from '@l4fleet/test-support/grafana-queries';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';

const dir = fileURLToPath(new URL('../deploy/grafana/', import.meta.url));
const read = (p: string) => readFileSync(`${dir}${p}`, 'utf8');

interface GridPos {
  h: number;
  w: number;
  x: number;
  y: number;
}
interface AnyPanel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  targets?: { expr: string }[];
}
/** Every dashboard shipped in deploy/grafana/dashboards (the provider loads the whole directory). */
const dashboards = readdirSync(`${dir}dashboards`)
  .filter((f) => f.endsWith('.json'))
  .map((file) => ({ file, panels: (JSON.parse(read(`dashboards/${file}`)) as { panels: AnyPanel[] }).panels }));

const rules = (
  parseYaml(read('alerts.yml')) as {
    groups: { rules: { alert: string; expr: string; annotations: { summary: string } }[] }[];
  }
).groups.flatMap((g) => g.rules);

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
/**
 * The metric names a PromQL expression reads, in order: identifiers left once label matchers (`{...}`), label lists
 * (`by (...)`, `on (...)`), ranges and strings are gone, that are neither an operator word nor a function (followed by
 * `(`).
 */
function promqlMetrics(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    const name = m[1] as string;
    if (!PROMQL_WORDS.has(name.toLowerCase()) && !names.includes(name)) names.push(name);
  }
  return names;
}

/** True when no aggregation in `expr` drops the node label (each one is `AGG by (..., node, ...)`). */
function keepsNode(expr: string): boolean {
  for (const agg of expr.matchAll(
    /\b(?:sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(by\s*\(([^)]*)\))?\s*\(/g,
  )) {
    if (agg[1] === undefined || !(agg[2] as string).split(',').some((l) => l.trim() === 'node')) return false;
  }
  return true;
}

const readsMetric = (expr: string, metric: string) =>
  new RegExp(`(?<![A-Za-z0-9_:])${metric}(?![A-Za-z0-9_:])`).test(expr);

describe('deploy/grafana', () => {
  test('grafana - every metric the dashboard queries is on the agent /metrics, with the labels it groups by', async () => {
    const exposed = await agentExposition();
    const problems: string[] = [];
    let referenced = 0;
    for (const q of queries()) {
      const metrics = q.expr.match(/\bl4fleet_[a-z0-9_]+/g) ?? [];
      if (metrics.length === 0) problems.push(`${q.where}: no l4fleet metric in ${JSON.stringify(q.expr)}`);
      const labels = new Set<string>(['le']);
      for (const name of metrics) {
        referenced++;
        const have = exposed.get(name);
        if (!have) problems.push(`${q.where}: metric ${name} is not on the agent's /metrics`);
        for (const l of have ?? []) labels.add(l);
      }
      for (const by of q.expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const l of (by[1] as string).split(',').map((s) => s.trim())) {
          if (!labels.has(l))
            problems.push(`${q.where}: groups by label "${l}" that none of ${metrics.join(', ')} has`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(referenced).toBeGreaterThanOrEqual(25);
  });

  // $fleet takes All and several fleets: VIPs, members and backend addresses are names within a fleet (two fleets may
  // both have web/a or 198.51.100.10:80/tcp), so a panel that groups by one of them without fleet adds them up.
  test('grafana - a query that groups by vip, member or backend keeps fleet, and its legend names it', () => {
    const problems: string[] = [];
    for (const p of dashboard.panels) {
      for (const t of (p as { targets?: { expr: string; legendFormat?: string }[] }).targets ?? []) {
        for (const by of t.expr.matchAll(/\bby \(([^)]*)\)/g)) {
          const labels = (by[1] as string).split(',').map((l) => l.trim());
          if (!labels.some((l) => ['vip', 'member', 'backend'].includes(l))) continue;
          if (!labels.includes('fleet')) problems.push(`panel ${p.id} "${p.title}": ${by[0]} without fleet`);
          if (t.legendFormat !== undefined && !t.legendFormat.includes('{{fleet}}'))
            problems.push(`panel ${p.id} "${p.title}": legend ${JSON.stringify(t.legendFormat)} without {{fleet}}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  // L4fleetDataPlaneDrift's runbook is "find who changes the node, and when": the dashboard showed no repairs, so the
  // when was only in the agent's log. The Tables row (the panels after its row header, before the next) shows them.
  test('grafana - the Tables row shows drift repairs per node over time', () => {
    const start = dashboard.panels.findIndex((p) => p.type === 'row' && p.title === 'Tables');
    const end = dashboard.panels.findIndex((p, i) => i > start && p.type === 'row');
    const tables = dashboard.panels.slice(start + 1, end === -1 ? undefined : end);
    const exprs = tables.flatMap((p) =>
      p.type === 'timeseries' ? ((p as { targets?: { expr: string }[] }).targets ?? []).map((t) => t.expr) : [],
    );
    expect(exprs).toContain(
      'sum by (node) (increase(l4fleet_table_drift_repairs_total{fleet=~"$fleet", node=~"$node"}[$__rate_interval]))',
    );
    expect(read('README.md')).toMatch(/- Tables: [^\n]*\bdrift repairs\b/);
  });

  test('grafana - panels have unique ids and use the provisioned datasource; the provider path is a directory', () => {
    const ds = parseYaml(read('provisioning/datasources/prometheus.yaml')) as {
      datasources: { uid: string; type: string }[];
    };
    const uid = ds.datasources[0]?.uid;
    expect(ds.datasources[0]?.type).toBe('prometheus');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const q of queries()) expect(q.uid, q.where).toBe(uid);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.datasource?.uid, p.title).toBe(uid);
    const provider = parseYaml(read('provisioning/dashboards/l4fleet.yaml')) as {
      providers: { type: string; options: { path: string } }[];
    };
    expect(provider.providers[0]).toMatchObject({ type: 'file', options: { path: expect.stringMatching(/^\//) } });
  });

  test("grafana - the Prometheus scrape config targets the agents' metrics port and path", () => {
    const prom = parseYaml(read('prometheus.yml')) as {
      scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.job_name === 'l4fleet-agent');
    expect(job?.metrics_path).toBe('/metrics');
    const targets = job?.static_configs.flatMap((s) => s.targets) ?? [];
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) {
      expect(t).toMatch(new RegExp(`^198\\.1[89]\\.\\d+\\.\\d+:${agentConfigDefaults.DEFAULT_METRICS_PORT}$`));
    }
  });
  // An operator paged by an alert opens the dashboard to see which node and since when. Only metrics that are not a
  // node's may be missing from the panels, each with its reason.
  const NOT_A_NODES_METRIC: Record<string, string> = {
    // Prometheus's own series, one per scrape target: it carries job and instance, not the node and fleet labels the
    // agent puts on its samples, so $fleet and $node cannot select it; a node whose agent is down shows as all its
    // series ending at once.
    up: 'L4fleetAgentDown',
  };

  test("grafana - every metric an alert reads is plotted by a panel; a node alert's metric by node", () => {
    const queries = dashboards.flatMap((d) =>
      d.panels.flatMap((p) =>
        (p.targets ?? []).map((t) => ({ where: `${d.file} panel ${p.id} "${p.title}"`, expr: t.expr })),
      ),
    );
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const rule of rules) {
      const metrics = promqlMetrics(rule.expr);
      if (metrics.length === 0) problems.push(`${rule.alert}: no metric found in ${JSON.stringify(rule.expr)}`);
      for (const metric of metrics) {
        seen.add(metric);
        if (NOT_A_NODES_METRIC[metric] === rule.alert) continue;
        if (!queries.some((q) => readsMetric(q.expr, metric)))
          problems.push(`${rule.alert}: no panel queries ${metric}`);
      }
      // An alert about a node (its summary names it) takes its labels from its first metric: some panel must show
      // that metric per node, not summed over the fleet.
      const first = metrics[0];
      if (first === undefined || NOT_A_NODES_METRIC[first] === rule.alert) continue;
      if (!rule.annotations.summary.includes('$labels.node')) continue;
      if (!queries.some((q) => readsMetric(q.expr, first) && keepsNode(q.expr)))
        problems.push(`${rule.alert}: no panel shows ${first} per node`);
    }
    expect(problems).toEqual([]);
    // The parse found what the file holds (a parse that finds nothing would pass the loop above).
    expect(seen).toContain('up');
    expect(seen).toContain('l4fleet_bfd_admin_down');
    expect(seen.size).toBeGreaterThanOrEqual(20);
  });

  test('grafana - alert metric parse: matchers, label lists, ranges and functions are not metrics', () => {
    expect(
      promqlMetrics(
        'l4fleet_a{state="x y"} == 0 and on (fleet, node) max by (fleet, vip) (increase(l4fleet_b_total[5m])) > 0 unless l4fleet_c',
      ),
    ).toEqual(['l4fleet_a', 'l4fleet_b_total', 'l4fleet_c']);
    expect(keepsNode('count by (node) (l4fleet_a == 0)')).toBe(true);
    expect(keepsNode('l4fleet_a == 0')).toBe(true);
    expect(keepsNode('sum by (fleet, vip) (l4fleet_a)')).toBe(false);
    expect(keepsNode('max(l4fleet_a)')).toBe(false);
  });

  // Grafana puts a panel in the row whose header is above it on the grid (the JSON's order is not what it shows), and
  // draws overlapping panels on top of each other.
  test('grafana - panels do not overlap, fit the 24 columns, and sit under the row they follow in the file', () => {
    const problems: string[] = [];
    for (const { file, panels } of dashboards) {
      const at = (p: AnyPanel) => `${file} panel ${p.id} "${p.title}" ${JSON.stringify(p.gridPos)}`;
      panels.forEach((p, i) => {
        const g = p.gridPos;
        if (g.x < 0 || g.w <= 0 || g.h <= 0 || g.x + g.w > 24) problems.push(`${at(p)}: outside the 24 columns`);
        for (const o of panels.slice(i + 1)) {
          const h = o.gridPos;
          if (g.x < h.x + h.w && h.x < g.x + g.w && g.y < h.y + h.h && h.y < g.y + g.h)
            problems.push(`${at(p)} overlaps ${at(o)}`);
        }
        if (p.type === 'row') return;
        const header = panels.slice(0, i).findLast((r) => r.type === 'row');
        const next = panels.slice(i + 1).find((r) => r.type === 'row');
        if (header && g.y < header.gridPos.y + header.gridPos.h)
          problems.push(`${at(p)}: above its row "${header.title}"`);
        if (next && g.y + g.h > next.gridPos.y) problems.push(`${at(p)}: reaches into the next row "${next.title}"`);
      });
    }
    expect(problems).toEqual([]);
  });
});
