/**
 * A bpf file system per lab host (bpf nodes, encapsulating backends), mounted in the host's mount namespace under
 * the host's state dir. Why: `ip netns exec` remounts /sys, so pins under /sys/fs/bpf would live only as long as
 * the process that made them (platform facts, "eBPF data plane"); a mount made here before the daemons start is
 * shared into their mount namespaces. Each mount is its own instance, so hosts never see each other's pins; `lab
 * down` unmounts them (the pins go with them).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@l4fleet/process';

export function bpffsDir(hostDir: string): string {
  return join(hostDir, 'bpffs');
}

/** Mount points of bpf file systems under `root` (from /proc/self/mountinfo), deepest first. */
export function bpffsMountsUnder(root: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const mounts: string[] = [];
  for (const line of mountinfo.split('\n')) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
    const [left = '', right = ''] = line.split(' - ');
    const point = left.split(' ')[4];
    if (point?.startsWith(prefix) && right.split(' ')[0] === 'bpf') mounts.push(point.replace(/\\040/g, ' '));
  }
  return mounts.sort((a, b) => b.length - a.length);
}

/** Mounts a bpf file system at `dir` unless one is there already (idempotent: restarts and add-node call it). */
export async function mountBpffs(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (bpffsMountsUnder(join(dir, '..')).includes(dir)) return;
  await run(['mount', '-t', 'bpf', 'bpf', dir]);
}

/** Unmounts every bpf file system under `root` (lab down); a mount that will not go is detached lazily. */
export async function unmountBpffsUnder(root: string): Promise<void> {
  for (const point of bpffsMountsUnder(root)) {
    const r = await run(['umount', point], { allowFailure: true });
    if (r.code !== 0) await run(['umount', '-l', point], { allowFailure: true });
  }
}
