import type { ChildProcess } from 'node:child_process';
import { describe, expect, test, vi } from 'vitest';
import type { Lab } from '../runtime/lab.js';
import { buildTopology } from '../topology/model.js';

// The worker is a process that never reports; the test keeps hold of it to see what start() leaves running.
const spawned = vi.hoisted(() => ({ children: [] as ChildProcess[] }));
vi.mock('node:child_process', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:child_process')>();
  return {
    ...original,
    spawn: (...args: Parameters<typeof original.spawn>) => {
      const child = original.spawn(...args);
      spawned.children.push(child);
      return child;
    },
  };
});

const { FlowRun } = await import('./run.js');

describe('lab flows - run', () => {
  test('lab flows - a worker whose flows never answer is killed when start gives up', async () => {
    const lab = {
      topology: buildTopology(),
      execArgv: () => [process.execPath, '-e', 'setInterval(() => {}, 1000)'],
    } as unknown as Lab;
    try {
      await expect(FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0, openTimeoutMs: 300 })).rejects.toThrow(
        '1 flows answered',
      );
      const [child] = spawned.children;
      expect(child?.killed).toBe(true);
    } finally {
      for (const c of spawned.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  });
});
