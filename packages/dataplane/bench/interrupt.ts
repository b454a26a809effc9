/**
 * The bench's namespaces, bpffs mounts and sysctls, removed or put back also when it is interrupted (SIGINT /
 * SIGTERM, e.g. a `timeout` around it): the `finally` blocks do not run then. Every lab of the bench comes from
 * benchLab, every sysctl it changes goes through setSysctl.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createNetnsLab, type NetnsLab } from '../../../test/support/netns.js';
import { createRestorer } from './restore.js';

const labs = new Set<NetnsLab>();
const restorer = createRestorer((name, value) => {
  const r = spawnSync('sysctl', ['-qw', `${name}=${value}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sysctl -w ${name}=${value}: ${r.stderr || r.error?.message || r.status}`);
});

/**
 * Sets `name` to `value` and returns the function that puts the earlier value back (call it in `finally`); an
 * interrupt puts it back too. An unreadable earlier value is taken as '0' (the kernel's default for the bench's).
 */
export function setSysctl(name: string, value: string): () => void {
  const before = spawnSync('sysctl', ['-n', name], { encoding: 'utf8' }).stdout?.trim() || '0';
  const restore = restorer.restoreOnInterrupt(name, before);
  spawnSync('sysctl', ['-qw', `${name}=${value}`]);
  return restore;
}
/** Removing the namespaces on interrupt gets this long; then the process exits anyway. */
const INTERRUPT_CLEANUP_MS = 20_000;

export async function benchLab(prefix: string): Promise<NetnsLab> {
  const lab = await createNetnsLab(prefix);
  labs.add(lab);
  const cleanup = lab.cleanup.bind(lab);
  return Object.assign(lab, {
    cleanup: async () => {
      labs.delete(lab);
      await cleanup();
    },
  });
}

/** bpffs mounts of this process: every bench mount point has `-<pid>` in its path. */
function ownMounts(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'bpf' && (f[1] ?? '').includes(`-${process.pid}`))
    .map((f) => f[1] as string);
}

function interrupted(signal: NodeJS.Signals): void {
  console.error(`\nbench: ${signal}: restoring its sysctls, removing its namespaces and mounts`);
  setTimeout(() => process.exit(130), INTERRUPT_CLEANUP_MS).unref();
  restorer.restoreAll();
  void Promise.allSettled([...labs].map((l) => l.cleanup())).finally(() => {
    for (const m of ownMounts()) {
      spawnSync('umount', [m]);
      spawnSync('rmdir', [m]);
    }
    process.exit(130);
  });
}

process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
