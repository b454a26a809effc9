/**
 * FRR (8.4, Debian) as a router in front of the nodes: the bgpd.conf text, the daemons' command lines and their
 * directory. Started without systemd or watchfrr (platform-facts): zebra and bgpd in the foreground, dropping
 * privileges to frr, with config, pid files, the zserv socket and the vty sockets in one directory owned by frr.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frrAddress, frrIpv4, frrWord } from './config-text.js';
import { type BfddOptions, type BfdTimers, frrBfddConfig } from './frr-bfd.js';

export const FRR_DAEMON_DIR = '/usr/lib/frr';

/** One BGP neighbour's (or peer group's) session settings. */
export interface FrrPeerSettings {
  readonly asn: number;
  /** TCP MD5 password (RFC 2385). */
  readonly password?: string | undefined;
  /** Default 1 s / 3 s, like the node side (packages/bgp). */
  readonly keepaliveS?: number;
  readonly holdTimeS?: number;
  /**
   * BFD (RFC 5880) for the session: bgpd registers it with bfdd (which must run: `bfdd` in `daemons`) and drops
   * the neighbour, with its routes, as soon as BFD reports it down, instead of waiting for the hold timer. The
   * value names a bfdd profile (`FrrOptions.bfdProfiles`) with the timers; default none (no BFD).
   */
  readonly bfdProfile?: string;
}

export interface FrrNeighbor extends FrrPeerSettings {
  readonly address: string;
}

/** A peer group: its settings once, its members by address; `addFrrNeighbor` adds members at run time. */
export interface FrrPeerGroup extends FrrPeerSettings {
  readonly name: string;
  readonly members: readonly string[];
}

export interface FrrOptions {
  readonly asn: number;
  readonly routerId: string;
  /** `hostname` line in both configs; default none (FRR uses the machine's). */
  readonly hostname?: string;
  /** Neighbours with their own settings. */
  readonly neighbors?: readonly FrrNeighbor[];
  readonly peerGroup?: FrrPeerGroup;
  /** `maximum-paths` for eBGP in both unicast families: ECMP width; default DEFAULT_MAXIMUM_PATHS. */
  readonly maximumPaths?: number;
  /**
   * Writes the RFC 8326 §4.2 receiver policy explicitly: routes carrying GRACEFUL_SHUTDOWN (65535:0) get
   * LOCAL_PREF 0, so a draining node leaves the ECMP group while its path stays as a backup. FRR 8.4 already
   * does this for received routes without any config (measured: packages/bgp/src/frr.int.test.ts); the explicit
   * route-map documents the intent and is what other routers need. Default false.
   */
  readonly gracefulShutdownPolicy?: boolean;
  /** Lines added inside `router bgp` (before the neighbours). */
  readonly extraBgpConfig?: readonly string[];
  /** bfdd profiles (timers) that `bfdProfile` refers to; written to bfdd.conf. Default none. */
  readonly bfdProfiles?: readonly ({ readonly name: string } & BfdTimers)[];
}

export const DEFAULT_MAXIMUM_PATHS = 8;

function sessionLines(target: string, p: FrrPeerSettings): string[] {
  return [
    ` neighbor ${target} remote-as ${p.asn}`,
    ...(p.password ? [` neighbor ${target} password ${p.password}`] : []),
    ` neighbor ${target} timers ${p.keepaliveS ?? 1} ${p.holdTimeS ?? 3}`,
    // Retry the TCP connection every second (default 120 s), so sessions come up as soon as the node listens.
    ` neighbor ${target} timers connect 1`,
    ...(p.bfdProfile ? [` neighbor ${target} bfd`, ` neighbor ${target} bfd profile ${p.bfdProfile}`] : []),
  ];
}

/**
 * Refuses (INVALID_CONFIG) a value FRR would read as more than one token: FRR config has no quoting, so a newline
 * in a password or a name would start a config line of its own. Addresses must be addresses.
 */
function checkBgpdOptions(opts: FrrOptions): void {
  const at = (field: string) => `frr bgpd config ${field}`;
  frrIpv4(at('routerId'), opts.routerId);
  if (opts.hostname !== undefined) frrWord(at('hostname'), opts.hostname);
  const checkSession = (field: string, p: FrrPeerSettings) => {
    if (p.password) frrWord(at(`${field}.password`), p.password);
    if (p.bfdProfile) frrWord(at(`${field}.bfdProfile`), p.bfdProfile);
  };
  for (const [i, n] of (opts.neighbors ?? []).entries()) {
    frrAddress(at(`neighbors[${i}].address`), n.address);
    checkSession(`neighbors[${i}]`, n);
  }
  if (opts.peerGroup) {
    frrWord(at('peerGroup.name'), opts.peerGroup.name);
    checkSession('peerGroup', opts.peerGroup);
    for (const [i, a] of opts.peerGroup.members.entries()) frrAddress(at(`peerGroup.members[${i}]`), a);
  }
}

/** The bgpd.conf for `opts`; a value that is not one plain token (or not an address) is INVALID_CONFIG. */
export function frrBgpdConfig(opts: FrrOptions): string {
  checkBgpdOptions(opts);
  const gshut = opts.gracefulShutdownPolicy === true;
  const group = opts.peerGroup;
  const neighbors = opts.neighbors ?? [];
  // Session settings are written once per target: the group (its members inherit them) and each neighbour.
  const targets = [...(group ? [group.name] : []), ...neighbors.map((n) => n.address)];
  const lines = ['frr defaults traditional', ...(opts.hostname ? [`hostname ${opts.hostname}`] : [])];
  lines.push('log stdout informational', '!');
  if (gshut) {
    lines.push(
      'bgp community-list standard GSHUT permit graceful-shutdown',
      'route-map NODES-IN permit 10',
      ' match community GSHUT',
      ' set local-preference 0',
      'route-map NODES-IN permit 20',
      '!',
    );
  }
  lines.push(
    `router bgp ${opts.asn}`,
    ` bgp router-id ${opts.routerId}`,
    // FRR 8.4 refuses every eBGP route without a policy unless told otherwise (RFC 8212 default).
    ' no bgp ebgp-requires-policy',
    ...(opts.extraBgpConfig ?? []).map((l) => ` ${l}`),
  );
  if (group) {
    lines.push(` neighbor ${group.name} peer-group`, ...sessionLines(group.name, group));
    lines.push(...group.members.map((a) => ` neighbor ${a} peer-group ${group.name}`));
  }
  for (const n of neighbors) lines.push(...sessionLines(n.address, n));
  for (const af of ['ipv4', 'ipv6']) {
    lines.push(' !', ` address-family ${af} unicast`);
    for (const t of targets) {
      if (af === 'ipv6') lines.push(`  neighbor ${t} activate`);
      if (gshut) lines.push(`  neighbor ${t} route-map NODES-IN in`);
    }
    lines.push(`  maximum-paths ${opts.maximumPaths ?? DEFAULT_MAXIMUM_PATHS}`, ' exit-address-family');
  }
  lines.push('!', '');
  return lines.join('\n');
}

export interface FrrPaths {
  readonly dir: string;
  readonly vtyDir: string;
  readonly zservSocket: string;
}

export function frrPaths(dir: string): FrrPaths {
  return { dir, vtyDir: join(dir, 'vty'), zservSocket: join(dir, 'zserv.api') };
}

/**
 * Writes zebra.conf, bgpd.conf (and bfdd.conf with `bfdProfiles`) into `dir` (made if missing) and hands it to frr,
 * which the daemons run as.
 */
export function prepareFrrDir(dir: string, opts: FrrOptions): FrrPaths {
  const paths = frrPaths(dir);
  mkdirSync(paths.vtyDir, { recursive: true });
  writeFileSync(
    join(dir, 'zebra.conf'),
    `${opts.hostname ? `hostname ${opts.hostname}\n` : ''}log stdout informational\n`,
  );
  writeFileSync(join(dir, 'bgpd.conf'), frrBgpdConfig(opts));
  if (opts.bfdProfiles) {
    writeFileSync(join(dir, 'bfdd.conf'), frrBfddConfig({ hostname: opts.hostname, profiles: opts.bfdProfiles }));
  }
  execFileSync('chown', ['-R', 'frr:frr', dir]);
  chmodSync(dir, 0o755);
  chownSync(paths.vtyDir, idOf('-u'), idOf('-g'));
  return paths;
}

/**
 * Writes bfdd.conf into `dir` (made if missing) for a bfdd of its own (a node's), hands the directory to frr and
 * returns its paths. Only `dir` is chowned, so give it a directory of its own.
 */
export function prepareBfddDir(dir: string, opts: BfddOptions): FrrPaths {
  const paths = frrPaths(dir);
  mkdirSync(paths.vtyDir, { recursive: true });
  writeFileSync(join(dir, 'bfdd.conf'), frrBfddConfig(opts));
  execFileSync('chown', ['-R', 'frr:frr', dir]);
  chmodSync(dir, 0o755);
  return paths;
}

function idOf(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'frr']).toString().trim());
}

export type FrrDaemon = 'zebra' | 'bgpd' | 'bfdd';

/** argv of a daemon in the foreground (no -d): the pid that runs it is the daemon's, to stop and to kill. */
export function frrDaemonArgv(daemon: FrrDaemon, paths: FrrPaths): string[] {
  return [
    join(FRR_DAEMON_DIR, daemon),
    '-u',
    'frr',
    '-g',
    'frr',
    '-f',
    join(paths.dir, `${daemon}.conf`),
    '-i',
    join(paths.dir, `${daemon}.pid`),
    '-z',
    paths.zservSocket,
    '--vty_socket',
    paths.vtyDir,
    '-A',
    '127.0.0.1',
  ];
}
