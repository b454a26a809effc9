/**
 * deploy/grafana/alerts.yml through Prometheus's own rule engine: `promtool check rules`, then `promtool test rules`
 * over series shaped like the agents' (every sample labelled node and fleet), with a case that fires and a
 * neighbour that must not for each alert. The expected annotations are the file's templates with the alert's labels
 * filled in, so a template naming a label the alert does not carry (Prometheus would print `<no value>`) fails here.
 * Every metric and label an expression uses must be on the agent's real /metrics.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createAgentMetrics } from '@l4fleet/agent';
import { parsePrometheusText } from '@l4fleet/dashboard';
import { agentExposition } from '@l4fleet/test-support/agent-exposition';
import { afterAll, describe, expect, test } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';

const run = promisify(execFile);
const RULES = fileURLToPath(new URL('../deploy/grafana/alerts.yml', import.meta.url));
const PROMETHEUS_YML = fileURLToPath(new URL('../deploy/grafana/prometheus.yml', import.meta.url));

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const rules = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

type Labels = Record<string, string>;
interface Case {
  readonly alert: string;
  /** Series: PromQL selector text -> promtool values (`1 0x30`), 5 s apart. */
  readonly series: Record<string, string>;
  readonly at: string;
  /** The alert's own labels (without alertname and severity) for every alert expected at `at`. */
  readonly fires: Labels[];
  /** Earlier, nothing yet (the `for` still running), when given. */
  readonly quietAt?: string;
}

const n = (node: string, more = '') => `node="${node}", fleet="lab"${more ? `, ${more}` : ''}`;
const vip = 'vip="198.51.100.10:80/tcp"';
const vip2 = 'vip="198.51.100.11:53/udp"';

const CASES: Case[] = [
  {
    alert: 'L4fleetAgentDown',
    series: {
      'up{job="l4fleet-agent", instance="198.18.0.11:9469"}': '1 0x30',
      'up{job="l4fleet-agent", instance="198.18.0.12:9469"}': '1x30',
    },
    quietAt: '30s',
    at: '2m',
    fires: [{ job: 'l4fleet-agent', instance: '198.18.0.11:9469' }],
  },
  {
    alert: 'L4fleetNodeStuckStarting',
    series: {
      [`l4fleet_node_state{${n('n1', 'state="starting"')}}`]: '1x40',
      [`l4fleet_node_state{${n('n2', 'state="starting"')}}`]: '1x5 0x35',
    },
    quietAt: '1m',
    at: '3m',
    fires: [{ node: 'n1', fleet: 'lab', state: 'starting' }],
  },
  {
    alert: 'L4fleetFailStatic',
    series: { [`l4fleet_fail_static{${n('n1')}}`]: '0 1x30', [`l4fleet_fail_static{${n('n2')}}`]: '0x30' },
    quietAt: '30s',
    at: '2m',
    fires: [{ node: 'n1', fleet: 'lab' }],
  },
  {
    alert: 'L4fleetFailStaticEntered',
    series: {
      [`l4fleet_fail_static_entered_total{${n('n1')}}`]: '0 0 1x20',
      [`l4fleet_fail_static_entered_total{${n('n2')}}`]: '3x20',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab' }],
  },
  {
    alert: 'L4fleetGobgpdUnreachable',
    series: { [`l4fleet_gobgpd_reachable{${n('n1')}}`]: '1 0x20', [`l4fleet_gobgpd_reachable{${n('n2')}}`]: '1x20' },
    quietAt: '15s',
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab' }],
  },
  {
    alert: 'L4fleetBgpSessionDown',
    series: {
      [`l4fleet_bgp_session_state{${n('n1', 'peer="198.18.0.1", state="established"')}}`]: '1 0x20',
      [`l4fleet_bgp_session_state{${n('n1', 'peer="198.18.0.1", state="active"')}}`]: '0 1x20',
      [`l4fleet_bgp_session_state{${n('n2', 'peer="198.18.0.1", state="established"')}}`]: '1x20',
    },
    at: '1m30s',
    fires: [{ node: 'n1', fleet: 'lab', peer: '198.18.0.1', state: 'established' }],
  },
  {
    // n2's session is down because the agent holds it AdminDown: that is L4fleetDataPlaneFailed, not this.
    alert: 'L4fleetBfdSessionDown',
    series: {
      [`l4fleet_bfd_session_up{${n('n1', 'peer="198.18.0.1"')}}`]: '1 0x20',
      [`l4fleet_bfd_admin_down{${n('n1', 'peer="198.18.0.1"')}}`]: '0x20',
      [`l4fleet_bfd_session_up{${n('n2', 'peer="198.18.0.1"')}}`]: '1 0x20',
      [`l4fleet_bfd_admin_down{${n('n2', 'peer="198.18.0.1"')}}`]: '0 1x20',
    },
    at: '1m30s',
    fires: [{ node: 'n1', fleet: 'lab', peer: '198.18.0.1' }],
  },
  {
    // n2's reads fail for more than a minute; n1's failed once and answered again.
    alert: 'L4fleetDataPlaneCountersUnreadable',
    series: {
      [`l4fleet_dataplane_counters_up{${n('n1')}}`]: '1 0 1x20',
      [`l4fleet_dataplane_counters_up{${n('n2')}}`]: '1 0x20',
    },
    quietAt: '30s',
    at: '1m30s',
    fires: [{ node: 'n2', fleet: 'lab' }],
  },
  {
    alert: 'L4fleetDataPlaneFailed',
    series: {
      [`l4fleet_bfd_admin_down{${n('n1', 'peer="198.18.0.1"')}}`]: '0x20',
      [`l4fleet_bfd_admin_down{${n('n2', 'peer="198.18.0.1"')}}`]: '0 1x20',
    },
    at: '30s',
    fires: [{ node: 'n2', fleet: 'lab', peer: '198.18.0.1' }],
  },
  {
    alert: 'L4fleetTableApplyErrors',
    series: {
      // Before the agent started: no sample; from its first scrape on, 0 until the first error.
      [`l4fleet_table_applies_total{${n('n1', 'result="error"')}}`]: '_ 0 1x20',
      [`l4fleet_table_applies_total{${n('n1', 'result="ok"')}}`]: '_ 0+1x21',
      // n2's periodic verify failed (a failed read-back, no table refused): L4fleetDataPlaneVerifyErrors, not this.
      [`l4fleet_table_applies_total{${n('n2', 'result="error"')}}`]: '_ 0x21',
      [`l4fleet_table_verifies_total{${n('n2', 'result="error"')}}`]: '_ 0 1x20',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab', result: 'error' }],
  },
  {
    alert: 'L4fleetDataPlaneVerifyErrors',
    series: {
      [`l4fleet_table_verifies_total{${n('n1', 'result="error"')}}`]: '_ 0 1x20',
      [`l4fleet_table_verifies_total{${n('n1', 'result="repaired"')}}`]: '_ 0x21',
      [`l4fleet_table_verifies_total{${n('n2', 'result="error"')}}`]: '_ 0x21',
      [`l4fleet_table_verifies_total{${n('n2', 'result="repaired"')}}`]: '_ 0 1x20',
      // n3's apply failed (the kernel refused its tables): L4fleetTableApplyErrors, not this.
      [`l4fleet_table_applies_total{${n('n3', 'result="error"')}}`]: '_ 0 1x20',
      [`l4fleet_table_verifies_total{${n('n3', 'result="error"')}}`]: '_ 0x21',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab', result: 'error' }],
  },
  {
    alert: 'L4fleetDataPlaneDrift',
    series: {
      [`l4fleet_table_drift_repairs_total{${n('n1')}}`]: '_ 0 1x20',
      [`l4fleet_table_drift_repairs_total{${n('n2')}}`]: '_ 0x20',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab' }],
  },
  {
    alert: 'L4fleetVipNoBackend',
    series: {
      [`l4fleet_table_usable_backends{${n('n1', vip)}}`]: '2 0x20',
      [`l4fleet_table_usable_backends{${n('n2', vip)}}`]: '2 0x20',
      [`l4fleet_table_usable_backends{${n('n1', vip2)}}`]: '2x20',
      [`l4fleet_table_usable_backends{${n('n2', vip2)}}`]: '0x20',
    },
    quietAt: '15s',
    at: '1m',
    fires: [{ fleet: 'lab', vip: '198.51.100.10:80/tcp' }],
  },
  {
    // n1 serves and has backends but does not announce; n2 is drained (not serving), which is on purpose.
    alert: 'L4fleetVipNotAnnounced',
    series: {
      [`l4fleet_vip_announced{${n('n1', vip)}}`]: '1 0x20',
      [`l4fleet_node_state{${n('n1', 'state="serving"')}}`]: '1x20',
      [`l4fleet_table_usable_backends{${n('n1', vip)}}`]: '2x20',
      [`l4fleet_vip_announced{${n('n2', vip)}}`]: '1 0x20',
      [`l4fleet_node_state{${n('n2', 'state="serving"')}}`]: '1 0x20',
      [`l4fleet_node_state{${n('n2', 'state="drained"')}}`]: '0 1x20',
      [`l4fleet_table_usable_backends{${n('n2', vip)}}`]: '2x20',
      // n3 serves and has a backend, but fewer than minUpMembers: withdrawn on purpose (L4fleetVipBelowMinUpMembers).
      [`l4fleet_vip_announced{${n('n3', vip)}}`]: '1 0x20',
      [`l4fleet_node_state{${n('n3', 'state="serving"')}}`]: '1x20',
      [`l4fleet_table_usable_backends{${n('n3', vip)}}`]: '2 1x20',
      [`l4fleet_table_below_min_up_members{${n('n3', vip)}}`]: '0 1x20',
    },
    at: '1m30s',
    fires: [{ node: 'n1', fleet: 'lab', vip: '198.51.100.10:80/tcp' }],
  },
  {
    alert: 'L4fleetTablesDiffer',
    series: {
      [`l4fleet_table_checksum_info{${n('n1', `${vip}, checksum="aaaa"`)}}`]: '1x40',
      [`l4fleet_table_checksum_info{${n('n2', `${vip}, checksum="aaaa"`)}}`]: '1 0x39',
      [`l4fleet_table_checksum_info{${n('n2', `${vip}, checksum="bbbb"`)}}`]: '0 1x39',
      [`l4fleet_table_checksum_info{${n('n1', `${vip2}, checksum="cccc"`)}}`]: '1x40',
      [`l4fleet_table_checksum_info{${n('n2', `${vip2}, checksum="cccc"`)}}`]: '1x40',
    },
    quietAt: '1m',
    at: '3m',
    fires: [{ fleet: 'lab', vip: '198.51.100.10:80/tcp' }],
  },
  {
    alert: 'L4fleetBackupServing',
    series: {
      [`l4fleet_table_backup_serving{${n('n1', vip)}}`]: '0 1x20',
      [`l4fleet_table_backup_serving{${n('n2', vip)}}`]: '0 1x20',
      [`l4fleet_table_backup_serving{${n('n1', vip2)}}`]: '0x20',
    },
    at: '1m30s',
    fires: [{ fleet: 'lab', vip: '198.51.100.10:80/tcp' }],
  },
  {
    alert: 'L4fleetVipBelowMinUpMembers',
    series: {
      [`l4fleet_table_below_min_up_members{${n('n1', vip)}}`]: '0 1x20',
      [`l4fleet_table_below_min_up_members{${n('n2', vip)}}`]: '0 1x20',
      [`l4fleet_table_below_min_up_members{${n('n1', vip2)}}`]: '0x20',
    },
    quietAt: '15s',
    at: '1m',
    fires: [{ fleet: 'lab', vip: '198.51.100.10:80/tcp' }],
  },
  {
    alert: 'L4fleetMemberDown',
    series: {
      [`l4fleet_member_decided{${n('n1', 'member="web/be1"')}}`]: '1 0x20',
      [`l4fleet_member_decided{${n('n2', 'member="web/be1"')}}`]: '1 0x20',
      [`l4fleet_member_decided{${n('n1', 'member="web/be2"')}}`]: '1x20',
    },
    at: '1m30s',
    fires: [{ fleet: 'lab', member: 'web/be1' }],
  },
  {
    // n1 cannot reach be1 but n2 and n3 can: decided up, seen down from n1 only. be2 is down everywhere: not this.
    alert: 'L4fleetMemberDownFromOneNode',
    series: {
      [`l4fleet_member_observed{${n('n1', 'member="web/be1"')}}`]: '1 0x80',
      [`l4fleet_member_observed{${n('n2', 'member="web/be1"')}}`]: '1x80',
      [`l4fleet_member_decided{${n('n1', 'member="web/be1"')}}`]: '1x80',
      [`l4fleet_member_decided{${n('n2', 'member="web/be1"')}}`]: '1x80',
      [`l4fleet_member_observed{${n('n1', 'member="web/be2"')}}`]: '1 0x80',
      [`l4fleet_member_decided{${n('n1', 'member="web/be2"')}}`]: '1 0x80',
    },
    quietAt: '4m',
    at: '6m',
    fires: [{ node: 'n1', fleet: 'lab', member: 'web/be1' }],
  },
  {
    alert: 'L4fleetNoAggregator',
    series: {
      [`l4fleet_aggregator_leader{${n('n1')}}`]: '1 0x20',
      [`l4fleet_aggregator_leader{${n('n2')}}`]: '0x20',
      'l4fleet_aggregator_leader{node="m1", fleet="other"}': '1x20',
    },
    at: '1m30s',
    fires: [{ fleet: 'lab' }],
  },
  {
    alert: 'L4fleetRecordsRejected',
    series: {
      [`l4fleet_store_rejected_records_total{${n('n1', 'family="desired"')}}`]: '_ 0 1x20',
      [`l4fleet_store_rejected_records_total{${n('n2', 'family="desired"')}}`]: '_ 0x20',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab', family: 'desired' }],
  },
  {
    alert: 'L4fleetConfigReloadRefused',
    series: {
      [`l4fleet_config_reloads_total{${n('n1', 'result="refused"')}}`]: '_ 0 1x20',
      [`l4fleet_config_reloads_total{${n('n1', 'result="applied"')}}`]: '_ 0 1x20',
    },
    at: '1m',
    fires: [{ node: 'n1', fleet: 'lab', result: 'refused' }],
  },
];

/** Prometheus's text/template as the rules use it: `{{ $labels.x }}` only; a label the alert lacks is an error. */
function render(template: string, labels: Labels, where: string): string {
  return template.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_all, name: string) => {
    const v = labels[name];
    if (v === undefined)
      throw new Error(`${where}: the template names label "${name}", which the alert does not carry`);
    return v;
  });
}

function promtoolTests(): unknown {
  return {
    rule_files: ['alerts.yml'],
    evaluation_interval: '5s',
    tests: CASES.map((c) => {
      const rule = rules.find((r) => r.alert === c.alert);
      if (!rule) throw new Error(`no rule ${c.alert} in alerts.yml`);
      const expected = c.fires.map((own) => {
        const labels = { ...own, ...rule.labels };
        const annotations = Object.fromEntries(
          Object.entries(rule.annotations).map(([k, t]) => [k, render(t, labels, `${c.alert}.${k}`)]),
        );
        return { exp_labels: labels, exp_annotations: annotations };
      });
      return {
        name: c.alert,
        interval: '5s',
        input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
        alert_rule_test: [
          ...(c.quietAt ? [{ eval_time: c.quietAt, alertname: c.alert, exp_alerts: [] }] : []),
          { eval_time: c.at, alertname: c.alert, exp_alerts: expected },
        ],
      };
    }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-alerts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('promtool', args, { cwd: dir, timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error("promtool is missing: bash scripts/install-system-deps.sh installs Debian's prometheus");
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('deploy/grafana/alerts.yml', () => {
  test('alerts - promtool accepts the rules, and prometheus.yml loads them', async () => {
    copyFileSync(RULES, join(dir, 'alerts.yml'));
    const r = await promtool('check', 'rules', 'alerts.yml');
    expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
    const prom = parseYaml(readFileSync(PROMETHEUS_YML, 'utf8')) as { rule_files?: string[] };
    expect(prom.rule_files).toContain('alerts.yml');
  });

  test('alerts - each fires on the series it is for, after its `for`, and not on its neighbours (promtool test rules)', async () => {
    expect(CASES.map((c) => c.alert).sort()).toEqual(rules.map((r) => r.alert).sort());
    copyFileSync(RULES, join(dir, 'alerts.yml'));
    writeFileSync(join(dir, 'alerts-test.yml'), stringify(promtoolTests()));
    const r = await promtool('test', 'rules', 'alerts-test.yml');
    expect(r.out).toContain('SUCCESS');
    expect(r.code, r.out).toBe(0);
  });

  test('alerts - every metric and label the rules use is on the agent /metrics', async () => {
    const exposed = await agentExposition();
    const problems: string[] = [];
    for (const rule of rules) {
      const metrics = rule.expr.match(/\bl4fleet_[a-z0-9_]+/g) ?? [];
      const labels = new Set<string>(['node', 'fleet']);
      for (const name of metrics) {
        const have = exposed.get(name);
        if (!have) problems.push(`${rule.alert}: metric ${name} is not on the agent's /metrics`);
        for (const l of have ?? []) labels.add(l);
      }
      for (const m of rule.expr.matchAll(/\b(?:by|on) \(([^)]*)\)/g)) {
        for (const l of (m[1] as string).split(',').map((s) => s.trim())) {
          if (!labels.has(l)) problems.push(`${rule.alert}: uses label "${l}" that none of ${metrics.join(', ')} has`);
        }
      }
      for (const m of rule.expr.matchAll(/\{([^}]*)\}/g)) {
        for (const sel of (m[1] as string).split(',')) {
          const l = sel.split(/[=!~]/)[0]?.trim();
          if (l && l !== 'job' && !labels.has(l)) problems.push(`${rule.alert}: selects on label "${l}" that none has`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  // The cases above start a counter at 0 on the agent's first scrape: true only if the agent exports the series before
  // the first event. A series that appeared at 1 with it would be no increase, and the alert would never fire for the
  // first event after a start.
  test('alerts - every counter series an increase() alert reads is on a fresh agent /metrics, at 0', async () => {
    const fresh = parsePrometheusText(
      await createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false }).registry.metrics(),
    );
    const problems: string[] = [];
    let checked = 0;
    for (const rule of rules) {
      for (const m of rule.expr.matchAll(/\bincrease\((l4fleet_[a-z0-9_]+)(?:\{([^}]*)\})?\[/g)) {
        const name = m[1] as string;
        const want = Object.fromEntries(
          (m[2] ?? '')
            .split(',')
            .filter((x) => x.trim())
            .map((sel) => sel.split('=').map((x) => x.trim().replace(/^"|"$/g, '')) as [string, string]),
        );
        const series = fresh.filter(
          (s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v),
        );
        checked++;
        if (series.length === 0) problems.push(`${rule.alert}: no ${m[0]}...] series before the first event`);
        for (const s of series) if (s.value !== 0) problems.push(`${rule.alert}: ${name} starts at ${s.value}`);
      }
    }
    expect(checked).toBeGreaterThanOrEqual(4);
    expect(problems).toEqual([]);
  });

  // promtool's lint: a `_total` name on a gauge (the events counters were gauges) is a counter to every tool that
  // reads the name, so rate()/increase() over it would be taken as meaningful while a gauge may go down.
  test('alerts - promtool check metrics accepts the agent /metrics', async () => {
    const m = createAgentMetrics({ node: 'n1', fleet: 'f', defaultMetrics: false });
    m.eventsDroppedTotal.set(1);
    m.eventsPublishedTotal.set(2);
    const text = await m.registry.metrics();
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('promtool', ['check', 'metrics'], { timeout: 60_000 });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
      child.stdin.end(text);
    });
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });
});

// What each runbook tells the operator to do must be true of the units and data planes it acts on.
describe('deploy/grafana/alerts.yml - runbooks', () => {
  const AGENT_UNIT = fileURLToPath(new URL('../deploy/systemd/l4fleet-agent.service', import.meta.url));
  const description = (alert: string): string => {
    const rule = rules.find((r) => r.alert === alert);
    if (!rule) throw new Error(`alerts.yml: no alert ${alert}`);
    return (rule.annotations.description ?? '').replace(/\s+/g, ' ');
  };

  test('runbook - L4fleetGobgpdUnreachable: restarting gobgpd restarts the agent (its unit Requires= it), so --check first', () => {
    // Requires= propagates an explicit restart: the agent drains, stops and starts cold, its ExecStartPre --check first.
    expect(readFileSync(AGENT_UNIT, 'utf8')).toMatch(/^Requires=.*\bl4fleet-gobgpd\.service\b/m);
    const d = description('L4fleetGobgpdUnreachable');
    expect(d).toContain('systemctl restart l4fleet-gobgpd');
    expect(d).toContain('restarts l4fleet-agent too');
    expect(d).toContain('l4fleet agent --config /etc/l4fleet/agent.yaml --check');
    expect(d.indexOf('--check')).toBeLessThan(d.indexOf('systemctl restart l4fleet-gobgpd'));
  });

  test('runbook - L4fleetAgentDown: a proxy node forwards nothing without its agent; stop gobgpd there', () => {
    const d = description('L4fleetAgentDown');
    expect(d).toMatch(/proxy data plane/);
    expect(d).toContain('systemctl stop l4fleet-gobgpd');
  });

  test('runbook - L4fleetVipNotAnnounced: an IPv6 VIP on a node without node.address6 is the first thing to check', () => {
    const d = description('L4fleetVipNotAnnounced');
    expect(d).toContain('node.address6');
    expect(d.indexOf('node.address6')).toBeLessThan(d.indexOf('gobgp global rib'));
  });

  test('runbook - L4fleetBfdSessionDown: names bfdReplaceFailed, a session on another source bfdd will not remove', () => {
    // The agent logs it (docs/design/0010-bfd.md) while the session runs on the wrong local address, metric 0.
    const d = description('L4fleetBfdSessionDown');
    expect(d).toContain('bfdReplaceFailed');
    expect(d).toContain('another local address');
  });

  test("runbook - L4fleetDataPlaneDrift: an apply reopening a proxy VIP's lost listener counts too, with its log event", () => {
    // The proxy reopens a lost listener on every apply, not only on verify (l4fleet_table_drift_repairs_total's help).
    const d = description('L4fleetDataPlaneDrift');
    expect(d).toContain("an apply that reopened a proxy VIP's lost listener");
    expect(d).toContain('listenerLost');
  });
});

describe('alert count in the docs', () => {
  // README and the operator guide each state how many rules alerts.yml holds; a rule added without them went
  // unnoticed twice (21 after L4fleetDataPlaneDrift, 22 after L4fleetDataPlaneVerifyErrors).
  test.each([
    ['README.md', /with (\d+) alerting\s+rules/],
    ['docs/operator-guide.md', /holds Prometheus alerting rules over these metrics \((\d+),/],
  ])('%s names the number of rules in alerts.yml', (doc, pattern) => {
    const text = readFileSync(fileURLToPath(new URL(`../${doc}`, import.meta.url)), 'utf8');
    const stated = pattern.exec(text)?.[1];
    expect(stated, `${doc}: no sentence matching ${pattern}`).toBeDefined();
    expect(Number(stated)).toBe(rules.length);
  });
});
