/**
 * The shipped Grafana dashboard (deploy/grafana/dashboards/l4fleet-agents.json) and every PromQL query in it (panels,
 * variables, annotations), for the tests that check them: against the agent's metrics (test/dashboard-grafana.test.ts)
 * and against a real Prometheus (test/prometheus-live.int.test.ts).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../../deploy/grafana/', import.meta.url));

interface Target {
  expr: string;
  datasource: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
}
export const grafanaDashboard = JSON.parse(readFileSync(`${dir}dashboards/l4fleet-agents.json`, 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query: { query: string }; datasource: { uid: string } }[] };
  annotations: { list: { name: string; expr: string; datasource: { uid: string } }[] };
};

export const grafanaQueries = (): { where: string; expr: string; uid: string | undefined }[] => [
  ...grafanaDashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}"`, expr: t.expr, uid: t.datasource?.uid })),
  ),
  ...grafanaDashboard.templating.list.map((v) => ({
    where: `variable $${v.name}`,
    expr: v.query.query,
    uid: v.datasource.uid,
  })),
  ...grafanaDashboard.annotations.list.map((a) => ({
    where: `annotation "${a.name}"`,
    expr: a.expr,
    uid: a.datasource.uid,
  })),
];

/** A query as Grafana sends it for fleet `fleet`, every node, a 1 m rate interval and a 5 m range. */
export function grafanaExpanded(expr: string, fleet: string): string {
  return expr
    .replaceAll('$fleet', fleet)
    .replaceAll('$node', '.*')
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '5m');
}
