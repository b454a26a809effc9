/**
 * Test hosts built from network namespaces: namespaces with unique names, veth pairs, bridges,
 * addresses, commands run inside a namespace, and cleanup that always runs (processes first, then the
 * namespaces, which takes their interfaces with them). Needs root.
 *
 *   await using lab = await createNetnsLab('dp');
 *   const a = await lab.host('a');  const b = await lab.host('b');
 *   await lab.veth(a, 'eth0', b, 'eth0');
 *   await a.addr('eth0', '198.18.250.1/24'); await b.addr('eth0', '198.18.250.2/24');
 *   await a.run(['ping', '-c1', '198.18.0.2']);
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  killAll,
  namespacePids,
  type RunOptions as ProcessRunOptions,
  type RunResult,
  run,
  spawnChild,
} from '@l4fleet/process';

export type { RunResult };

export interface RunOptions {
  readonly input?: string;
  /** Killed after this long; default 20 s. */
  readonly timeoutMs?: number;
  /** Resolve with a non-zero exit instead of rejecting. */
  readonly allowFailure?: boolean;
}

export interface NetnsHost {
  /** The namespace name (`ip netns`), unique per lab. */
  readonly ns: string;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `sh -c script` in the namespace; rejects on failure. */
  sh(script: string, opts?: RunOptions): Promise<string>;
  /** A long-running process in the namespace, killed at cleanup. */
  spawn(argv: readonly string[]): ChildProcess;
  addr(ifname: string, cidr: string): Promise<void>;
  sysctl(key: string, value: string | number): Promise<void>;
}

export interface NetnsLab extends AsyncDisposable {
  /** Random suffix shared by the lab's namespaces. */
  readonly id: string;
  readonly hosts: readonly NetnsHost[];
  /** A new namespace `<prefix>-<id>-<role>` with lo up and IPv6 DAD off (addresses usable at once). */
  host(role: string): Promise<NetnsHost>;
  /** A veth pair between two hosts, both ends up. */
  veth(a: NetnsHost, aIf: string, b: NetnsHost, bIf: string): Promise<void>;
  /** A bridge in `host` enslaving `ports` (existing interfaces there), up, learning, no STP delay. */
  bridge(host: NetnsHost, name: string, ports: readonly string[]): Promise<void>;
  cleanup(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 20_000;

/** Runs a command on the host (outside any lab namespace), or in `namespace`. */
function exec(argv: readonly string[], opts: RunOptions = {}, namespace?: string): Promise<RunResult> {
  const options: ProcessRunOptions = { timeoutMs: COMMAND_TIMEOUT_MS, ...opts, namespace };
  return run(argv, options);
}

export async function createNetnsLab(prefix = 'l4t'): Promise<NetnsLab> {
  const id = randomBytes(3).toString('hex');
  const hosts: NetnsHost[] = [];
  const children: ChildProcess[] = [];

  const makeHost = (ns: string): NetnsHost => {
    const host: NetnsHost = {
      ns,
      run: (argv, opts) => exec(argv, opts, ns),
      sh: async (script, opts) => (await exec(['sh', '-c', script], opts, ns)).stdout,
      spawn: (argv) => {
        const child = spawnChild(argv, { namespace: ns }).process;
        children.push(child);
        return child;
      },
      addr: async (ifname, cidr) => {
        await exec(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', ifname, ...(cidr.includes(':') ? ['nodad'] : [])]);
      },
      sysctl: async (key, value) => {
        await exec(['sysctl', '-qw', `${key}=${value}`], {}, ns);
      },
    };
    return host;
  };

  const lab: NetnsLab = {
    id,
    hosts,
    async host(role) {
      const ns = `${prefix}-${id}-${role}`;
      await exec(['ip', 'netns', 'add', ns]);
      const h = makeHost(ns);
      hosts.push(h);
      await exec(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await h.sysctl('net.ipv6.conf.all.accept_dad', 0);
      await h.sysctl('net.ipv6.conf.default.accept_dad', 0);
      return h;
    },
    async veth(a, aIf, b, bIf) {
      await exec(['ip', '-n', a.ns, 'link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.ns]);
      await exec(['ip', '-n', a.ns, 'link', 'set', aIf, 'up']);
      await exec(['ip', '-n', b.ns, 'link', 'set', bIf, 'up']);
    },
    async bridge(host, name, ports) {
      await exec(['ip', '-n', host.ns, 'link', 'add', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
      for (const p of ports) await exec(['ip', '-n', host.ns, 'link', 'set', p, 'master', name]);
      await exec(['ip', '-n', host.ns, 'link', 'set', name, 'up']);
    },
    async cleanup() {
      for (const c of children.splice(0)) {
        if (c.exitCode === null && c.signalCode === null) {
          const exited = new Promise((r) => c.once('exit', r));
          c.kill('SIGKILL');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
        }
      }
      // `ip netns exec` children die with their parent only if they got the signal: kill what is left.
      for (const h of hosts) await killAll(await namespacePids(h.ns));
      for (const h of hosts.splice(0)) await exec(['ip', 'netns', 'del', h.ns], { allowFailure: true });
    },
    [Symbol.asyncDispose]() {
      return lab.cleanup();
    },
  };
  return lab;
}
