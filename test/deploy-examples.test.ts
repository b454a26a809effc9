/**
 * deploy/'s files that name the same machines agree: Prometheus scrapes the agents where deploy/examples puts their
 * metrics (agent.yaml's metrics.listen, dashboard.env's --agent-metrics), not at addresses no example agent uses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

describe('deploy examples', () => {
  test('deploy examples - prometheus scrapes the agents at the metrics addresses of agent.yaml and dashboard.env', () => {
    const prometheus = parse(read('deploy/grafana/prometheus.yml')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const job = prometheus.scrape_configs.find((c) => c.job_name === 'l4fleet-agent');
    const targets = (job?.static_configs ?? []).flatMap((c) => c.targets).sort();

    const flags = /--agent-metrics ([^\s"]+)/.exec(read('deploy/examples/dashboard.env'))?.[1] ?? '';
    const dashboard = flags
      .split(',')
      .map((e) => new URL(e.slice(e.indexOf('=') + 1)).host)
      .sort();
    const agent = (parse(read('deploy/examples/agent.yaml')) as { metrics: { listen: string } }).metrics.listen;

    expect(targets.length).toBeGreaterThan(0);
    expect(targets).toEqual(dashboard);
    expect(targets).toContain(agent);
  });
});
