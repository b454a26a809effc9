/**
 * The bpffs that holds the pinned maps. A host without one mounted at the configured path gets one mounted
 * there (the mount lives in the driver's mount namespace; `ip netns exec` would give each command a fresh
 * /sys, which is why the loader joins only the network namespace, by setns(): platform notes).
 */
import { mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { resolve } from 'node:path';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';

/** statfs f_type of a bpffs (include/uapi/linux/magic.h BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;

export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** The first few entries of `path` when it is a directory with any; none when it is empty or not there. */
function entriesOf(path: string): string[] {
  try {
    return readdirSync(path).slice(0, 3);
  } catch {
    return [];
  }
}

/**
 * Why a bpffs may not be mounted at `path`, in the words the start refuses it with (after `bpffsPath: `); undefined
 * when it is a bpffs already or may get one. `/` and a non-empty directory are refused: a bpffs mounted there hides
 * what it holds (the whole filesystem, for `/`) from every process of the mount namespace until it is unmounted.
 * `l4fleet agent --check` asks the same (the agent's HostFacts), so it never says OK to a start that refuses.
 */
export function bpffsPathProblem(path: string): string | undefined {
  if (isBpffs(path)) return undefined;
  if (resolve(path) === '/') {
    return `"${path}" is the root directory: a bpffs mounted there would hide the whole filesystem`;
  }
  const entries = entriesOf(path);
  if (entries.length > 0) {
    return `"${path}" is a non-empty directory (${entries.join(', ')}) and not a bpffs: a bpffs mounted there would hide its files`;
  }
  return undefined;
}

/** Makes `path` a mounted bpffs (mounting one when it is not, where bpffsPathProblem allows); returns whether it mounted. */
export async function ensureBpffs(path: string, exec: Exec): Promise<boolean> {
  if (isBpffs(path)) return false;
  const problem = bpffsPathProblem(path);
  if (problem !== undefined) throw new DataPlaneError('OPTIONS_INVALID', `bpffsPath: ${problem}`);
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw new DataPlaneError('OPTIONS_INVALID', `bpffsPath: cannot create "${path}": ${(err as Error).message}`, {
      cause: err,
    });
  }
  const r = await exec(['mount', '-t', 'bpf', 'bpf', path]);
  if (r.code !== 0 || !isBpffs(path)) {
    throw new DataPlaneError(
      'BPF_FAILED',
      `bpffsPath: mount -t bpf bpf ${path}: ${r.stderr.trim() || 'not a bpffs after mount'}`,
    );
  }
  return true;
}
