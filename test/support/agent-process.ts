/**
 * An agent process in a lab network namespace, for the tests that need a real process (its capabilities, its
 * kernel state): test/support/agent-child.ts run by tsx from source with a memory store and a fake speaker, so
 * the data plane the config chooses is the part under test. `prefix` goes before tsx (e.g. setpriv).
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { NetnsHost } from './netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHILD = join(import.meta.dirname, 'agent-child.ts');

export interface AgentProcess {
  readonly child: ChildProcess;
  /** Its stderr so far (the agent logs warnings and errors there). */
  stderr(): string;
  /** SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
}

export function spawnAgent(
  host: NetnsHost,
  config: unknown,
  fleet: unknown,
  prefix: readonly string[] = [],
): AgentProcess {
  const child = host.spawn([
    ...prefix,
    join(ROOT, 'node_modules/.bin/tsx'),
    '--tsconfig',
    join(ROOT, 'tsconfig.check.json'),
    CHILD,
    JSON.stringify(config),
    JSON.stringify(fleet),
  ]);
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  return {
    child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
