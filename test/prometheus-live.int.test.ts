/**
 * The shipped Prometheus config and alerting rules (deploy/grafana) against a live agent: Debian's prometheus
 * scrapes the agent's real /metrics (runAgent over a real etcd, the fake speaker and the recording data plane),
 * evaluates alerts.yml, and its API lists the alerts the agent's state calls for, with the labels and rendered
 * summaries an operator gets. Intervals are shortened to 1 s; `for` clauses are unchanged, so alerts are checked
 * as pending or firing (pending: the expression holds, the `for` runs).
 */
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { RunningAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import { type PrometheusAlert, type PrometheusHandle, startPrometheus } from '@l4fleet/daemons';
import { freePort } from '@l4fleet/process';
import { EtcdFleetStore } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { runRecordingAgent } from '@l4fleet/test-support/etcd-agents';
import { eventually } from '@l4fleet/test-support/eventually';
import { grafanaDashboard, grafanaExpanded, grafanaQueries } from '@l4fleet/test-support/grafana-queries';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';

const DEPLOY = fileURLToPath(new URL('../deploy/grafana/', import.meta.url));
const PREFIX = `/prometheus-live-${process.pid}`;
const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });

let etcd: EtcdHandle | undefined;
let admin: EtcdFleetStore | undefined;
let running: RunningAgent | undefined;
let prometheus: PrometheusHandle | undefined;
let backend: Server | undefined;

/** deploy/grafana/prometheus.yml with the agent as its one target and 1 s intervals; everything else as shipped. */
function configFor(target: string): string {
  const shipped = parseYaml(readFileSync(`${DEPLOY}prometheus.yml`, 'utf8')) as {
    global: Record<string, unknown>;
    rule_files: string[];
    scrape_configs: { job_name: string; scrape_timeout?: string; static_configs: { targets: string[] }[] }[];
  };
  return stringify({
    ...shipped,
    global: { ...shipped.global, scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: shipped.scrape_configs.map((j) => ({
      ...j,
      scrape_timeout: '900ms',
      static_configs: [{ targets: [target] }],
    })),
  });
}

beforeAll(async () => {
  backend = createServer((c) => c.end());
  await new Promise<void>((r) => backend?.listen(0, '127.0.0.1', r));
  const livePort = (backend.address() as AddressInfo).port;
  const deadPort = await freePort();
  const check = { type: 'tcp', intervalMs: 300, timeoutMs: 200, rise: 1, fall: 1 };
  etcd = await startEtcd();
  admin = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: PREFIX, logger });
  await admin.apply(
    parseFleet({
      hashSeed: 1,
      pools: [
        {
          name: 'web',
          healthCheck: check,
          members: [
            { name: 'live', address: '127.0.0.1', port: livePort },
            { name: 'gone', address: '127.0.0.1', port: deadPort },
          ],
        },
        { name: 'dead', healthCheck: check, members: [{ name: 'gone', address: '127.0.0.2', port: deadPort }] },
      ],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' },
        { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'dead' },
      ],
    }),
    { expectRevision: 0 },
  );
  running = await runRecordingAgent(etcd.endpoints, PREFIX, logger, { fleet: 'lab' });
  prometheus = await startPrometheus({
    configYaml: configFor(running.metricsAddress),
    files: { 'alerts.yml': readFileSync(`${DEPLOY}alerts.yml`, 'utf8') },
  });
}, 60_000);

afterAll(async () => {
  await prometheus?.stop();
  await running?.close();
  await admin?.close();
  await etcd?.stop();
  backend?.close();
});

const named = (alerts: PrometheusAlert[], name: string) => alerts.filter((a) => a.labels.alertname === name);

describe('deploy/grafana against a live agent and a real Prometheus', () => {
  test('prometheus scrapes the agent and raises the alerts its state calls for, and no others', async () => {
    const alerts = await eventually(
      'MemberDown for web/gone and dead/gone, VipNoBackend for the dead pool',
      async () => (await prometheus?.alerts()) ?? [],
      (a) => named(a, 'L4fleetMemberDown').length === 2 && named(a, 'L4fleetVipNoBackend').length === 1,
      30_000,
      500,
    );
    expect(
      named(alerts, 'L4fleetMemberDown')
        .map((a) => a.labels.member)
        .sort(),
    ).toEqual(['dead/gone', 'web/gone']);
    const noBackend = named(alerts, 'L4fleetVipNoBackend')[0];
    expect(noBackend?.labels).toMatchObject({ fleet: 'lab', vip: '198.51.100.11:80/tcp', severity: 'critical' });
    expect(noBackend?.annotations.summary).toBe('VIP 198.51.100.11:80/tcp has no backend taking new flows');
    expect(named(alerts, 'L4fleetMemberDown')[0]?.annotations.summary).toMatch(
      /^member (web|dead)\/gone is decided down$/,
    );
    // The live member, the node (serving, announcing web, tables applied) and the aggregator raise nothing.
    const names = new Set(alerts.map((a) => a.labels.alertname));
    expect([...names].sort(), JSON.stringify(alerts.map((a) => a.labels))).toEqual([
      'L4fleetMemberDown',
      'L4fleetVipNoBackend',
    ]);
    const up = await prometheus?.query('up{job="l4fleet-agent"}');
    expect(up?.map((s) => s.value)).toEqual([1]);
    const serving = await prometheus?.query('l4fleet_node_state{state="serving"}');
    expect(serving?.[0]?.metric).toMatchObject({ node: 'n1', fleet: 'lab' });
  });

  test("every Grafana query (panels, variables, annotations) is PromQL Prometheus evaluates; a fleet write marks 'Fleet changes'", async () => {
    await eventually(
      'a scrape',
      async () => (await prometheus?.query('l4fleet_node_state')) ?? [],
      (r) => r.length > 0,
      30_000,
      500,
    );
    const failed: string[] = [];
    for (const q of grafanaQueries()) {
      const expr = grafanaExpanded(q.expr, 'lab');
      // A variable's label_values(SELECTOR, LABEL) is Grafana's, not PromQL: the selector must find the label.
      const values = /^label_values\((.*),\s*(\w+)\)$/.exec(expr);
      try {
        const samples = (await prometheus?.query(values ? (values[1] as string) : expr)) ?? [];
        if (values && !samples.some((x) => (values[2] as string) in x.metric)) {
          failed.push(`${q.where}: no sample of ${values[1]} has the label ${values[2]}`);
        }
      } catch (err) {
        failed.push(`${q.where}: ${(err as Error).message}`);
      }
    }
    expect(failed).toEqual([]);
    // The annotation: the desired revision moved within its window after a write (the same fleet again: a revision).
    const annotation = grafanaDashboard.annotations.list.find((a) => a.name === 'Fleet changes');
    const expr = grafanaExpanded(annotation?.expr ?? '', 'lab');
    // Quiet first: the agent's first reads may have moved the revision as Prometheus began; they age out of the window.
    await eventually(
      'no change in the window',
      async () => (await prometheus?.query(expr)) ?? [],
      (r) => r.length === 0,
      90_000,
      1_000,
    );
    const current = await admin?.getDesired();
    await admin?.apply(current?.fleet ?? { pools: [], vips: [] }, { expectRevision: current?.revision ?? 0 });
    const marked = await eventually(
      'the Fleet changes annotation query returns a sample',
      async () => (await prometheus?.query(expr)) ?? [],
      (r) => r.length > 0,
      60_000,
      1_000,
    );
    expect(marked[0]?.value).toBeGreaterThan(0);
  }, 180_000);

  test('the agent gone: L4fleetAgentDown for its instance', async () => {
    const address = running?.metricsAddress ?? '';
    await running?.close();
    running = undefined;
    const down = await eventually(
      'L4fleetAgentDown',
      async () => named((await prometheus?.alerts()) ?? [], 'L4fleetAgentDown'),
      (a) => a.length === 1,
      20_000,
      500,
    );
    expect(down[0]?.labels).toMatchObject({ instance: address, job: 'l4fleet-agent', severity: 'warning' });
    expect(down[0]?.annotations.summary).toBe(`l4fleet agent ${address} does not answer /metrics`);
  });
});
