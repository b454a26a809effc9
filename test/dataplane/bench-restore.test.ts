/**
 * The data-plane bench's restore registry (packages/dataplane/bench/restore.ts): a sysctl the bench changed is put
 * back by its own `finally` and, when the bench is interrupted (whose handler exits before any `finally` runs),
 * by the interrupt handler; never twice, and newest first so nested changes end at the first value.
 */
import { describe, expect, test } from 'vitest';
import { createRestorer } from '../../packages/dataplane/bench/restore.js';

const recorder = () => {
  const writes: string[] = [];
  return { writes, write: (name: string, value: string) => void writes.push(`${name}=${value}`) };
};

describe('bench restore registry', () => {
  test('bench restore - an interrupt writes back every pending value, newest first', () => {
    const w = recorder();
    const r = createRestorer(w.write);
    r.restoreOnInterrupt('kernel.bpf_stats_enabled', '0');
    r.restoreOnInterrupt('net.core.busy_poll', '50');
    r.restoreAll();
    expect(w.writes).toEqual(['net.core.busy_poll=50', 'kernel.bpf_stats_enabled=0']);
  });

  test('bench restore - a value restored by its finally is not written again on interrupt', () => {
    const w = recorder();
    const r = createRestorer(w.write);
    const restore = r.restoreOnInterrupt('kernel.bpf_stats_enabled', '0');
    restore();
    restore();
    r.restoreAll();
    expect(w.writes).toEqual(['kernel.bpf_stats_enabled=0']);
  });

  test('bench restore - nested changes of one sysctl end at the value before the first', () => {
    const w = recorder();
    const r = createRestorer(w.write);
    r.restoreOnInterrupt('kernel.bpf_stats_enabled', '0');
    r.restoreOnInterrupt('kernel.bpf_stats_enabled', '1');
    r.restoreAll();
    expect(w.writes.at(-1)).toBe('kernel.bpf_stats_enabled=0');
  });

  test('bench restore - one failing write does not keep the others from running', () => {
    const writes: string[] = [];
    const reported: string[] = [];
    const r = createRestorer(
      (name, value) => {
        if (name === 'bad') throw new Error('sysctl: permission denied');
        writes.push(`${name}=${value}`);
      },
      (msg) => void reported.push(msg),
    );
    r.restoreOnInterrupt('kernel.bpf_stats_enabled', '0');
    r.restoreOnInterrupt('bad', '1');
    expect(() => r.restoreAll()).not.toThrow();
    expect(writes).toEqual(['kernel.bpf_stats_enabled=0']);
    expect(reported).toEqual(['bench: could not restore bad=1:']);
    r.restoreAll();
    expect(writes).toEqual(['kernel.bpf_stats_enabled=0']);
  });
});
