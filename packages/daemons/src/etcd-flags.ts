/** etcd (Debian's 3.4): the command line of one cluster member, for the lab, the tests and their containers. */

export const ETCD_BIN = '/usr/bin/etcd';

export interface EtcdMemberOptions {
  readonly name: string;
  readonly dataDir: string;
  /** `--listen-client-urls`: one URL or several, comma-separated. */
  readonly listenClientUrl: string;
  readonly advertiseClientUrl: string;
  readonly peerUrl: string;
  /** `n1=http://...,n2=http://...`: every member's peer URL. */
  readonly initialCluster: string;
}

/** etcd's flags for one member of a new cluster, logging warnings only; the caller adds TLS and extra flags. */
export function etcdMemberFlags(o: EtcdMemberOptions): string[] {
  return [
    '--name',
    o.name,
    '--data-dir',
    o.dataDir,
    '--listen-client-urls',
    o.listenClientUrl,
    '--advertise-client-urls',
    o.advertiseClientUrl,
    '--listen-peer-urls',
    o.peerUrl,
    '--initial-advertise-peer-urls',
    o.peerUrl,
    '--initial-cluster',
    o.initialCluster,
    '--initial-cluster-state',
    'new',
    '--logger',
    'zap',
    '--log-level',
    'warn',
  ];
}

export function etcdMemberArgv(o: EtcdMemberOptions): string[] {
  return [ETCD_BIN, ...etcdMemberFlags(o)];
}

/** etcd's flags for a one-member cluster (n1). */
export function singleMemberFlags(o: Omit<EtcdMemberOptions, 'name' | 'initialCluster'>): string[] {
  return etcdMemberFlags({ ...o, name: 'n1', initialCluster: `n1=${o.peerUrl}` });
}

/** etcd 3.4 refuses to start on arches other than amd64/ppc64le/s390x unless told. */
export function etcdEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (process.arch !== 'x64' && process.arch !== 'ppc64' && process.arch !== 's390x') {
    env.ETCD_UNSUPPORTED_ARCH = process.arch === 'arm64' ? 'arm64' : process.arch;
  }
  return env;
}
