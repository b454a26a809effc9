/**
 * What `l4fleet agent --check` asks of the machine, read-only: interfaces, local addresses, files, programs on
 * PATH, capabilities and the agent unit's stop timeout in force. Injected, so the checks are tested against a
 * described host and never touch the real one.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { bpfAvailable, bpffsPathProblem } from '@l4fleet/dataplane';
import { AGENT_UNIT } from './stop-budget.js';
import { tlsFileProblem } from './tls-files.js';

/**
 * The agent unit's stop timeout in force, drop-ins included, as systemd prints it (`shown`: `1min`, `18s`,
 * `infinity`), or why it could not be read (`unread`: no systemctl, systemd not PID 1, the unit not loaded).
 */
export type UnitStopTimeout = { readonly shown: string } | { readonly unread: string };

export interface HostFacts {
  /** Whether a network interface of this name exists (in this network namespace). */
  hasInterface(name: string): boolean;
  /** Whether `address` is assigned to an interface of this host. */
  isLocalAddress(address: string): boolean;
  /**
   * Whether the start can read the file agent.yaml's `field` names (`etcd.tls.ca`, `health.caFile`): true, or why not
   * in the start's words (`is not a regular file`, `is empty`; tls-files.ts readTlsFile, the start's own check). A bare
   * false says only that it cannot be read.
   */
  canRead(path: string, field: string): boolean | string;
  /** Whether the directory exists and is writable, or its nearest existing parent is (so it can be created). */
  canWriteDir(path: string): boolean;
  /** Whether an executable of this name is on PATH. */
  onPath(program: string): boolean;
  /** Whether this process holds CAP_NET_ADMIN (nftables, qdiscs, BPF attach need it). */
  hasNetAdmin(): boolean;
  /** The first missing file of the bpf data plane (its loader or its program object); undefined when it is built. */
  missingBpfFile(): string | undefined;
  /** net.ipv4|ipv6.conf.IFACE.forwarding of this network namespace; undefined when it cannot be read. */
  forwarding(iface: string, family: 4 | 6): boolean | undefined;
  /** Whether this process holds CAP_SYS_ADMIN (mount(2): the bpf driver mounts a bpffs where none is). */
  hasSysAdmin(): boolean;
  /** Whether `path` is a mounted bpffs (statfs f_type BPF_FS_MAGIC). */
  isBpffs(path: string): boolean;
  /**
   * Why the bpf driver's start refuses to mount a bpffs at `path` (`/`, a non-empty directory that is no bpffs), in the
   * start's words (@l4fleet/dataplane's bpffsPathProblem, the start's own check); undefined when it would not.
   */
  bpffsPathProblem(path: string): string | undefined;
  /** Whether `path` is a Unix socket (bfdd's vty socket: bfdd runs). */
  isSocket(path: string): boolean;
  /** l4fleet-agent.service's TimeoutStopUSec in force (stop-budget.ts compares the SIGTERM drain with it). */
  unitStopTimeout(): UnitStopTimeout;
}

/** What a run of systemctl gave: spawnSync's fields the read looks at. */
export interface SystemctlRun {
  readonly error?: Error;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}
/** How long `systemctl show` may take, ms: --check runs before every start and must not hang on a stuck bus. */
export const SYSTEMCTL_TIMEOUT_MS = 5_000;

const runSystemctl = (args: readonly string[]): SystemctlRun =>
  spawnSync('systemctl', args, { encoding: 'utf8', timeout: SYSTEMCTL_TIMEOUT_MS });

/**
 * The unit's TimeoutStopUSec in force, read with `systemctl show` (LoadState too: for a unit it does not know,
 * systemctl still prints the manager's default timeout). `run` is systemctl (a fake in tests).
 */
export function readUnitStopTimeout(run: (args: readonly string[]) => SystemctlRun = runSystemctl): UnitStopTimeout {
  const r = run(['show', '-p', 'LoadState', '-p', 'TimeoutStopUSec', AGENT_UNIT]);
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return { unread: 'systemctl is not installed' };
  if (code === 'ETIMEDOUT') return { unread: `systemctl show did not answer within ${SYSTEMCTL_TIMEOUT_MS} ms` };
  if (r.error) return { unread: `systemctl show failed: ${r.error.message}` };
  if (r.status !== 0) {
    // "System has not been booted with systemd as init system (PID 1). Can't operate." and the like.
    const why = r.stderr.trim().split('\n')[0] || `exit status ${r.status ?? 'none (killed)'}`;
    return { unread: `systemctl show failed: ${why}` };
  }
  const props = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const load = props.get('LoadState');
  if (load !== 'loaded') return { unread: `${AGENT_UNIT} is not loaded (LoadState=${load ?? 'unknown'})` };
  const shown = props.get('TimeoutStopUSec');
  return shown === undefined ? { unread: 'systemctl show printed no TimeoutStopUSec' } : { shown };
}

/** Capability bits in /proc/self/status CapEff (linux/capability.h). */
const CAP_NET_ADMIN_BIT = 12n;
const CAP_SYS_ADMIN_BIT = 21n;
/** statfs f_type of a bpffs (include/uapi/linux/magic.h BPF_FS_MAGIC), as @l4fleet/dataplane's bpf/bpffs.ts. */
const BPF_FS_MAGIC = 0xcafe4a11;

/** Whether this process's effective set holds the capability of this bit; false when it cannot be read. */
function hasCapability(bit: bigint): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> bit) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

const accessible = (path: string, mode: number): boolean => {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
};

/** This machine, read through /sys, /proc, os.networkInterfaces() and access(2): nothing is created or changed. */
export function systemHost(): HostFacts {
  return {
    // `.` and `..` exist under /sys/class/net and are no interface.
    hasInterface: (name) =>
      !name.includes('/') && name !== '.' && name !== '..' && existsSync(join('/sys/class/net', name)),
    isLocalAddress(address) {
      const want = address.toLowerCase();
      return Object.values(networkInterfaces()).some((list) =>
        (list ?? []).some((a) => a.address.toLowerCase() === want),
      );
    },
    // The start's own read (access(2) R_OK passed a FIFO, /dev/zero, an oversized or an empty file, all of which the
    // start refuses: `--check`, run before every start, said OK and the start failed).
    canRead: (path, field) => tlsFileProblem(field, path) ?? true,
    canWriteDir(path) {
      let dir = path;
      for (let i = 0; i < 64; i++) {
        if (existsSync(dir)) return statSync(dir).isDirectory() && accessible(dir, constants.W_OK | constants.X_OK);
        const up = dirname(dir);
        if (up === dir) return false;
        dir = up;
      }
      return false;
    },
    onPath: (program) =>
      (process.env.PATH ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .some((d) => accessible(join(d, program), constants.X_OK)),
    missingBpfFile: () => bpfAvailable(),
    forwarding(iface, family) {
      if (iface.includes('/') || iface.startsWith('.')) return undefined;
      try {
        return readFileSync(`/proc/sys/net/ipv${family}/conf/${iface}/forwarding`, 'utf8').trim() !== '0';
      } catch {
        return undefined;
      }
    },
    hasNetAdmin: () => hasCapability(CAP_NET_ADMIN_BIT),
    hasSysAdmin: () => hasCapability(CAP_SYS_ADMIN_BIT),
    isBpffs(path) {
      try {
        return statfsSync(path).type === BPF_FS_MAGIC;
      } catch {
        return false;
      }
    },
    bpffsPathProblem: (path) => bpffsPathProblem(path),
    isSocket(path) {
      try {
        return statSync(path).isSocket();
      } catch {
        return false;
      }
    },
    unitStopTimeout: () => readUnitStopTimeout(),
  };
}
