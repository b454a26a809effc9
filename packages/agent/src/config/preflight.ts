/**
 * `l4fleet agent --check`, past parsing: whether this valid agent.yaml can run on this machine. Everything is
 * read-only (HostFacts): addresses the node announces or binds must be usable and its own, files must be readable,
 * the state directory writable, and the data-plane driver's prerequisites present. Each problem names the field
 * and its value, like a parse problem. Warnings (preflightWarnings) are what the agent survives: said, never fatal.
 */
import { join } from 'node:path';
import { parseListenAddress, unusableAddress } from '@l4fleet/config';
import type { AgentConfigProblem } from '../errors.js';
import { DATA_PLANE_DRIVER_SPECS } from '../serve/drivers.js';
import { bound as listenerAddress, shown as shownListenAddress } from './bgp-listen.js';
import type { HostFacts } from './host.js';
import { sigtermDrainWarning } from './stop-budget.js';
import type { AgentConfig } from './types.js';

const UNSPECIFIED = new Set(['0.0.0.0', '::']);

/** Problems of `config` on `host`; empty when the agent can start here. */
export function preflightProblems(config: AgentConfig, host: HostFacts): AgentConfigProblem[] {
  const problems: AgentConfigProblem[] = [];
  const add = (path: string, message: string): void => {
    problems.push({ path, message });
  };

  // The next hops: the router forwards VIP traffic to them, so they must be unicast and this node's own.
  const nextHop = (path: string, address: string | undefined, what: string) => {
    if (address === undefined) return;
    const why = unusableAddress(address);
    if (why) add(path, `"${address}" is ${why}: not a next hop a router can forward to`);
    else if (!host.isLocalAddress(address)) {
      add(path, `"${address}" is not assigned to any interface on this host (${what})`);
    }
  };
  nextHop('node.address', config.node.address, 'the next hop announced for IPv4 VIPs');
  nextHop('node.address6', config.node.address6, 'the next hop announced for IPv6 VIPs');

  // Addresses a socket binds: bind(2) fails with EADDRNOTAVAIL unless they are local (or unspecified).
  // `shown`: the value as written, when the address bound differs from it.
  const bound = (path: string, address: string | undefined, what: string, shown = `"${address}"`) => {
    if (address === undefined || UNSPECIFIED.has(address) || host.isLocalAddress(address)) return;
    add(path, `${shown} is not assigned to any interface on this host (${what})`);
  };
  bound('health.sourceAddress', config.health.sourceAddress, 'health probes bind it');
  // gobgpd binds an IPv4-mapped address (::ffff:a.b.c.d, ::ffff:0.0.0.0 too) as the IPv4 one (bgp-listen.ts).
  for (const [i, a] of (config.bgp.listenAddresses ?? []).entries()) {
    const path = `bgp.listenAddresses[${i}]`;
    bound(path, listenerAddress(a), "gobgpd's listener binds it", shownListenAddress(a));
  }
  config.bgp.peers.forEach((p, i) => {
    bound(`bgp.peers[${i}].localAddress`, p.localAddress, 'the BGP session is opened from it');
    const why = unusableAddress(p.address);
    // A peer on loopback (a router on the same host) or IPv4 link-local (169.254.0.0/16 on a point-to-point link) is
    // a real setup. An IPv6 link-local peer never gets here: parse refuses it (it needs a zone, which no field takes).
    if (why && !/loopback|link-local/.test(why)) add(`bgp.peers[${i}].address`, `"${p.address}" is ${why}`);
  });
  const metricsHost = parseListenAddress(config.metrics.listen, 'metrics.listen').host;
  if (metricsHost !== 'localhost') bound('metrics.listen', metricsHost, '/metrics binds it');

  // Read as the start reads them (host.canRead: tls-files.ts readTlsFile), so --check refuses what the start would.
  const file = (path: string, f: string | undefined) => {
    if (f === undefined) return;
    const ok = host.canRead(f, path);
    if (ok !== true) add(path, `"${f}" ${ok === false ? 'cannot be read' : ok}`);
  };
  for (const [section, tls] of [
    ['etcd.tls', config.etcd.tls],
    ['nats.tls', config.nats.tls],
  ] as const) {
    for (const k of ['ca', 'cert', 'key'] as const) file(`${section}.${k}`, tls?.[k]);
  }
  file('health.caFile', config.health.caFile);
  if (config.state.enabled && !host.canWriteDir(config.state.dir)) {
    add('state.dir', `"${config.state.dir}" cannot be created or written (the last good state is saved there)`);
  }

  problems.push(...DATA_PLANE_DRIVER_SPECS[config.dataplane.driver].prerequisites(config, host));
  return problems;
}

/**
 * What `--check` says without failing: the unit runs it before every start, and the agent survives these. A SIGTERM
 * drain that may take longer, at its worst, than the unit's TimeoutStopSec in force allows (stop-budget.ts). bfdd: the
 * agent talks to it through its vty socket, and nothing starts bfdd for it (Debian's frr ships bfdd=no in
 * /etc/frr/daemons); while it is away the agent says so (bfddUnreachable, l4fleet_bfdd_reachable 0), BGP runs
 * without BFD, and the sessions are configured once it answers (0010), so an agent (re)started while frr restarts
 * must not be refused.
 */
export function preflightWarnings(config: AgentConfig, host: HostFacts): AgentConfigProblem[] {
  const warnings: AgentConfigProblem[] = [];
  if (config.bfd.enabled && !host.isSocket(join(config.bfd.vtyDir, 'bfdd.vty'))) {
    warnings.push({
      path: 'bfd.vtyDir',
      message: `"${config.bfd.vtyDir}" has no bfdd.vty socket: bfdd is not running (Debian's frr starts it with bfdd=yes in /etc/frr/daemons, then systemctl restart frr); the agent runs BGP without BFD until it answers`,
    });
  }
  const stopWarning = sigtermDrainWarning(config, host.unitStopTimeout());
  if (stopWarning) warnings.push(stopWarning);
  return warnings;
}
