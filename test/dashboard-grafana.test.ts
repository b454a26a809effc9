/**
 * deploy/grafana against the agent's real metrics module: every metric the Grafana dashboard queries (panels,
 * variables and annotations) exists in what the agent's registry renders on /metrics, every label it groups by exists on a metric
 * of that query, and the provisioning and the Prometheus scrape config agree with the dashboard and the agent's
 * defaults. No Grafana or Prometheus needed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { agentConfigDefaults } from '@l4fleet/agent';
import { agentExposition } from '@l4fleet/test-support/agent-exposition';
import { grafanaDashboard as dashboard, grafanaQueries as queries } from '@l4fleet/test-support/grafana-queries';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';

const dir = fileURLToPath(new URL('../deploy/grafana/', import.meta.url));
const read = (p: string) => readFileSync(`${dir}${p}`, 'utf8');

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
});
