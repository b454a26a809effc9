import { createManualClock } from '@l4fleet/agent';
import { StoreError } from '@l4fleet/store';
import { describe, expect, test } from 'vitest';
import { checkEtcd, type EtcdReachability } from './etcd-check.js';

/** A store whose getLeader answers, fails or hangs as the test says. */
function fakeStore() {
  let mode: 'up' | 'down' | 'hung' = 'up';
  let calls = 0;
  return {
    set: (m: typeof mode) => {
      mode = m;
    },
    calls: () => calls,
    store: {
      getLeader: (): Promise<string | undefined> => {
        calls += 1;
        if (mode === 'up') return Promise.resolve('n1');
        if (mode === 'down') return Promise.reject(new StoreError('UNAVAILABLE', 'etcd read leader: refused'));
        return new Promise(() => undefined);
      },
    },
  };
}

describe('dashboard etcd check', () => {
  test('reachable -> down -> hung -> reachable: one change each, the outage keeps its start, the problem says why', async () => {
    const clock = createManualClock(1_000_000);
    const f = fakeStore();
    const changes: EtcdReachability[] = [];
    const check = checkEtcd(f.store, { clock, intervalMs: 2_000, timeoutMs: 4_500, onChange: (s) => changes.push(s) });
    await clock.advance(0);
    expect(check.state().reachable).toBe(true);
    expect(changes).toEqual([]);

    f.set('down');
    await clock.advance(2_000);
    expect(check.state()).toEqual({
      reachable: false,
      unreachableSinceMs: 1_002_000,
      problem: 'etcd read leader: refused',
    });
    await clock.advance(2_000); // the same failure again: no new change
    expect(changes).toHaveLength(1);

    f.set('hung');
    await clock.advance(2_000 + 4_500);
    expect(check.state()).toEqual({
      reachable: false,
      unreachableSinceMs: 1_002_000,
      problem: 'etcd check: no answer within 4500 ms',
    });
    expect(changes).toHaveLength(2);

    f.set('up');
    await clock.advance(2_000);
    expect(check.state()).toEqual({ reachable: true, unreachableSinceMs: null, problem: null });
    expect(changes).toHaveLength(3);
    check.close();
  });

  test('one chain of checks, every interval after the last ended; close stops it', async () => {
    const clock = createManualClock();
    const f = fakeStore();
    const check = checkEtcd(f.store, { clock, intervalMs: 2_000, timeoutMs: 4_500, onChange: () => undefined });
    await clock.advance(10_000);
    expect(f.calls()).toBe(6); // at 0, 2, 4, 6, 8, 10 s
    check.close();
    await clock.advance(10_000);
    expect(f.calls()).toBe(6);
    expect(clock.pending).toBe(0);
  });
});
