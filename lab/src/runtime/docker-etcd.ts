/**
 * The etcd members of the Docker runtime's control container: `lab kill etcd2` / `lab restart etcd2` there. The
 * container starts every member at once (docker.ts, `sh -c "etcd1 & etcd2 & etcd3 & exec nats-server"`); a member is
 * found among the container's processes by its `--name` (its host pid, from /proc), killed with SIGKILL like the
 * netns runtime's, and started again with `docker exec -d` on the same flags and data dir, so it rejoins the cluster
 * (etcd ignores `--initial-cluster-state new` once the data dir holds a member). Its pid is recorded under its name.
 */
import { readFileSync } from 'node:fs';
import { killAll, namespacePids, run, waitFor } from '@l4fleet/process';
import { LabError } from '../errors.js';
import { type EtcdMember, hostOf } from '../topology/model.js';
import { etcdArgv } from './control.js';
import { CONTROL_DATA_DIR, containerName } from './docker.js';
import type { LabContext } from './lab-runtime.js';

const MEMBER_PID_TIMEOUT_MS = 10_000;
const DOCKER_EXEC_TIMEOUT_MS = 30_000;

/** argv of a process, or undefined once it is gone (a zombie's cmdline is empty: it is gone too). */
function argvOf(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? undefined : raw.split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/** Whether `argv` is etcd serving as `name` (`--name etcd2`, as etcdMemberArgv writes it). */
export function isEtcdMemberArgv(argv: readonly string[], name: string): boolean {
  const at = argv.indexOf('--name');
  return (argv[0] ?? '').endsWith('etcd') && at > 0 && argv[at + 1] === name;
}

/** Host pids of `member`'s etcd in the control container (none while it is down). */
export async function etcdMemberPids(lab: LabContext, member: EtcdMember): Promise<number[]> {
  const pids = await namespacePids(lab.ns('control'));
  return pids.filter((pid) => {
    const argv = argvOf(pid);
    return argv !== undefined && isEtcdMemberArgv(argv, member.name);
  });
}

/** Waits until `member` runs in the control container and records its pid under its name. */
export async function recordEtcdMember(lab: LabContext, member: EtcdMember): Promise<void> {
  const pid = await waitFor(
    `etcd member ${member.name} in the control container`,
    async () => (await etcdMemberPids(lab, member))[0],
    MEMBER_PID_TIMEOUT_MS,
    50,
  );
  lab.recordPid('control', member.name, pid);
}

/** SIGKILLs `member` (a crashed member: no goodbye to its peers). */
export async function stopEtcdMember(lab: LabContext, member: EtcdMember): Promise<void> {
  await killAll(await etcdMemberPids(lab, member));
}

/** Starts `member` again in the running control container, on its data dir; refuses if it still runs. */
export async function startEtcdMember(lab: LabContext, member: EtcdMember): Promise<void> {
  if ((await etcdMemberPids(lab, member)).length > 0) {
    throw new LabError('COMMAND_FAILED', `etcd member "${member.name}" of lab "${lab.id}" is already running`);
  }
  const container = containerName(hostOf(lab.topology, 'control'));
  await run(['docker', 'exec', '-d', container, ...etcdArgv(lab.topology, CONTROL_DATA_DIR, member)], {
    timeoutMs: DOCKER_EXEC_TIMEOUT_MS,
  });
  await recordEtcdMember(lab, member);
}
