/**
 * The bpffs that holds the pinned maps. A host without one mounted at the configured path gets one mounted
 * there (the mount lives in the driver's mount namespace; `ip netns exec` would give each command a fresh
 * /sys, which is why the loader joins only the network namespace, by setns(): platform notes).
 */
import { mkdirSync, statfsSync } from 'node:fs';
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

/** Makes `path` a mounted bpffs (mounting one when it is not); returns whether it mounted. */
export async function ensureBpffs(path: string, exec: Exec): Promise<boolean> {
  if (isBpffs(path)) return false;
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
