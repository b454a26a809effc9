/**
 * gobgpd (Debian's GoBGP 3.x): its command line, a TOML config for a daemon that is not driven over gRPC, and the
 * `gobgp` CLI against its API. The CLI speaks TCP only: a daemon on a unix socket is read through the Speaker.
 */
import { run } from '@l4fleet/process';
import { tomlString } from './config-text.js';

export const GOBGPD_BIN = '/usr/bin/gobgpd';
export const GOBGP_CLI_BIN = '/usr/bin/gobgp';
const CLI_TIMEOUT_MS = 10_000;

export interface GobgpdArgvOptions {
  /** `--api-hosts`: `127.0.0.1:PORT` or `unix:///path`. */
  readonly apiHosts: string;
  /** TOML config file; absent: gobgpd waits for StartBgp over gRPC. */
  readonly configFile?: string | undefined;
  /** Default `info`: gobgpd logs every keepalive at debug. */
  readonly logLevel?: 'debug' | 'info' | 'warn';
}

export function gobgpdArgv(o: GobgpdArgvOptions): string[] {
  const argv = [GOBGPD_BIN, '--api-hosts', o.apiHosts, '--pprof-disable', '--log-level', o.logLevel ?? 'info'];
  if (o.configFile) argv.push('-f', o.configFile, '-t', 'toml');
  return argv;
}

export interface GobgpdNeighborConfig {
  readonly address: string;
  readonly asn: number;
  /** TCP MD5 password (RFC 2385). */
  readonly password?: string | undefined;
  readonly holdTimeS: number;
  readonly keepaliveS: number;
  /** Seconds between connection attempts; default GoBGP's. */
  readonly connectRetryS?: number;
  readonly localAddress?: string | undefined;
  /** Only wait for the neighbour to connect; default false. */
  readonly passive?: boolean;
}

export interface GobgpdConfig {
  readonly asn: number;
  readonly routerId: string;
  /** BGP listen port; default 179. */
  readonly port?: number;
  /** Addresses the listener binds, e.g. the node's own: several speakers can then share a namespace. */
  readonly listenAddresses?: readonly string[];
  readonly neighbors: readonly GobgpdNeighborConfig[];
}

/**
 * The TOML file for `cfg`: IPv4 and IPv6 unicast on every neighbour. Strings are TOML basic strings (a password may
 * hold `"` or `\`); a control character in one is refused with INVALID_CONFIG.
 */
export function gobgpdConfigToml(cfg: GobgpdConfig): string {
  const str = (field: string, value: string) => tomlString(`gobgpd config ${field}`, value);
  const lines = [
    '[global.config]',
    `  as = ${cfg.asn}`,
    `  router-id = ${str('routerId', cfg.routerId)}`,
    `  port = ${cfg.port ?? 179}`,
  ];
  if (cfg.listenAddresses) {
    const list = cfg.listenAddresses.map((a, i) => str(`listenAddresses[${i}]`, a));
    lines.push(`  local-address-list = [${list.join(', ')}]`);
  }
  for (const [i, n] of cfg.neighbors.entries()) {
    const field = `neighbors[${i}]`;
    lines.push(
      '',
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = ${str(`${field}.address`, n.address)}`,
    );
    lines.push(`    peer-as = ${n.asn}`);
    if (n.password) lines.push(`    auth-password = ${str(`${field}.password`, n.password)}`);
    lines.push(
      '  [neighbors.timers.config]',
      `    hold-time = ${n.holdTimeS}`,
      `    keepalive-interval = ${n.keepaliveS}`,
    );
    if (n.connectRetryS !== undefined) lines.push(`    connect-retry = ${n.connectRetryS}`);
    if (n.localAddress || n.passive) {
      lines.push('  [neighbors.transport.config]');
      if (n.localAddress) lines.push(`    local-address = ${str(`${field}.localAddress`, n.localAddress)}`);
      if (n.passive) lines.push('    passive-mode = true');
    }
    for (const family of ['ipv4-unicast', 'ipv6-unicast']) {
      lines.push('  [[neighbors.afi-safis]]', '    [neighbors.afi-safis.config]', `      afi-safi-name = "${family}"`);
    }
  }
  lines.push('');
  return lines.join('\n');
}

/** Where a gobgpd's API is: a TCP port on 127.0.0.1, inside `namespace` if given. */
export interface GobgpApi {
  readonly apiPort: number;
  readonly namespace?: string | undefined;
}

/** `gobgp <args>` against `api`; returns stdout. */
export async function gobgpCli(api: GobgpApi, ...args: string[]): Promise<string> {
  const argv = [GOBGP_CLI_BIN, '-u', '127.0.0.1', '-p', String(api.apiPort), ...args];
  return (await run(argv, { namespace: api.namespace, timeoutMs: CLI_TIMEOUT_MS })).stdout;
}

function familyArgs(prefix: string): string[] {
  return prefix.includes(':') ? ['-a', 'ipv6'] : [];
}

/** Originates `prefix` with `nextHop` in the daemon's global RIB (for a daemon not driven by an agent). */
export async function gobgpAnnounce(api: GobgpApi, prefix: string, nextHop: string): Promise<void> {
  await gobgpCli(api, 'global', 'rib', ...familyArgs(prefix), 'add', prefix, 'nexthop', nextHop);
}

export async function gobgpWithdraw(api: GobgpApi, prefix: string): Promise<void> {
  await gobgpCli(api, 'global', 'rib', ...familyArgs(prefix), 'del', prefix);
}

/** Prefixes in the daemon's global RIB, both families, sorted. */
export async function gobgpRibPrefixes(api: GobgpApi): Promise<string[]> {
  const out: string[] = [];
  for (const family of [[], ['-a', 'ipv6']]) {
    const doc = JSON.parse((await gobgpCli(api, 'global', 'rib', ...family, '-j')).trim() || '{}') as object;
    out.push(...Object.keys(doc ?? {}));
  }
  return out.sort();
}

export interface GobgpNeighbor {
  readonly address: string;
  /** As GoBGP names it, lower case: `established`, `active`, ... */
  readonly state: string;
}

const SESSION_STATES = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];

/** `gobgp neighbor -j`: session state per neighbour. */
export async function gobgpNeighbors(api: GobgpApi): Promise<GobgpNeighbor[]> {
  const list = JSON.parse((await gobgpCli(api, 'neighbor', '-j')).trim() || '[]') as {
    conf?: { neighbor_address?: string };
    state?: { session_state?: number | string; neighbor_address?: string };
  }[];
  return list.map((n) => {
    const s = n.state?.session_state;
    return {
      address: n.state?.neighbor_address ?? n.conf?.neighbor_address ?? '?',
      state: typeof s === 'number' ? (SESSION_STATES[s] ?? String(s)) : (s ?? 'unknown').toLowerCase(),
    };
  });
}
