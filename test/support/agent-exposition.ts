/**
 * What an agent's /metrics exposes: metric name -> label names, from the agent's real registry
 * (createAgentMetrics) rendered with every metric given a value, parsed as Prometheus text. The deploy/grafana
 * tests check the dashboard's queries and the alert rules against it.
 */
import { createAgentMetrics } from '@l4fleet/agent';
import { parsePrometheusText } from '@l4fleet/dashboard';

/** Metric name -> label names, from the agent's registry rendered with every metric given a value. */
export async function agentExposition(): Promise<Map<string, Set<string>>> {
  const m = createAgentMetrics({ node: 'n1', fleet: 'f' });
  m.setNodeState('serving');
  m.setSessionState('198.18.0.1', 'established');
  m.bfdSessionUp.set({ peer: '198.18.0.1' }, 1);
  m.bfdAdminDown.set({ peer: '198.18.0.1' }, 0);
  m.failStatic.set(0);
  m.etcdConnected.set(1);
  m.natsConnected.set(1);
  m.aggregatorLeader.set(1);
  m.vipAnnounced.set({ vip: '198.51.100.10:80/tcp' }, 1);
  m.vipsAnnounced.set(1);
  m.tableChecksum.set({ vip: '198.51.100.10:80/tcp', checksum: '0123456789abcdef' }, 1);
  m.tableUsableBackends.set({ vip: '198.51.100.10:80/tcp' }, 3);
  m.tableBackupServing.set({ vip: '198.51.100.10:80/tcp' }, 0);
  m.tableBelowMinUpMembers.set({ vip: '198.51.100.10:80/tcp' }, 0);
  m.tableApplySeconds.observe(0.01);
  m.tableAppliesTotal.inc({ result: 'ok' });
  m.desiredRevision.set(3);
  m.memberObserved.set({ member: 'web/a' }, 1);
  m.memberDecided.set({ member: 'web/a' }, 1);
  m.memberWeightPercent.set({ member: 'web/a' }, 40);
  m.probesTotal.inc({ result: 'ok' });
  m.stateRejectedTotal.inc();
  m.storeRejectedRecordsTotal.inc({ family: 'desired' });
  m.configReloadsTotal.inc({ result: 'refused' });
  m.eventsDroppedTotal.set(0);
  m.setDataPlaneSource(async () => ({
    vips: [{ vip: '198.51.100.10:80/tcp', packets: 10, bytes: 1_000 }],
    backends: [{ address: '198.18.0.21', packets: 10, bytes: 1_000 }],
    drops: { noBackend: { packets: 1, bytes: 60 } } as never,
    flowTable: { entries: 4, fullPackets: 0 },
    icmp: { echoReplied: { packets: 3, bytes: 252 } },
  }));
  const names = new Map<string, Set<string>>();
  for (const s of parsePrometheusText(await m.registry.metrics())) {
    const labels = names.get(s.name) ?? new Set<string>();
    for (const l of Object.keys(s.labels)) labels.add(l);
    names.set(s.name, labels);
  }
  return names;
}
