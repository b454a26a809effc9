import { ProcessError } from '@l4fleet/process';
import { beforeEach, describe, expect, test, vi } from 'vitest';

// The launchers' readiness paths without the daemons: spawnChild hands out fakes, waitFor answers as told.
const proc = vi.hoisted(() => ({
  children: [] as { stop: ReturnType<typeof vi.fn> }[],
  ready: [] as boolean[],
}));
vi.mock('@l4fleet/process', async (original) => ({
  ...(await original<typeof import('@l4fleet/process')>()),
  freePort: async () => 4999,
  canConnect: async () => true,
  spawnChild: () => {
    const c = { pid: 1, log: () => '', exitReason: () => undefined, stop: vi.fn(async () => {}) };
    proc.children.push(c);
    return c;
  },
  waitFor: async (what: string) => {
    if (proc.ready.shift() === false) throw new ProcessError('TIMEOUT', `${what} not ready within 10000 ms`);
    return true;
  },
}));

const { startDnsmasq } = await import('./dnsmasq.js');
const { startEtcd } = await import('./etcd.js');
const { startNats } = await import('./nats.js');

beforeEach(() => {
  proc.children.length = 0;
  proc.ready.length = 0;
});

describe('launchers - a daemon that does not become ready', () => {
  test('startNats kills the server it started and rethrows', async () => {
    proc.ready.push(false);
    await expect(startNats()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(proc.children[0]?.stop).toHaveBeenCalledWith('SIGKILL');
  });

  test('a NATS start() after kill() that times out kills that server, and the next start() launches again', async () => {
    proc.ready.push(true, false, true);
    const nats = await startNats();
    await nats.kill();
    await expect(nats.start()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(proc.children[1]?.stop).toHaveBeenCalledWith('SIGKILL');
    await nats.start();
    expect(proc.children).toHaveLength(3);
    await nats.stop();
    expect(proc.children[2]?.stop).toHaveBeenCalledWith('SIGTERM', 3_000);
  });

  test('startDnsmasq kills the dnsmasq it started and rethrows', async () => {
    proc.ready.push(false);
    await expect(startDnsmasq()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(proc.children[0]?.stop).toHaveBeenCalledWith('SIGKILL');
  });
});

describe('launchers - a handle after stop()', () => {
  test('startEtcd: start() and restart() after stop() are refused (its data dir is gone), nothing is launched', async () => {
    const etcd = await startEtcd();
    await etcd.stop();
    await expect(etcd.start()).rejects.toMatchObject({ code: 'STOPPED' });
    await expect(etcd.restart()).rejects.toMatchObject({
      code: 'STOPPED',
      message: `etcd ${etcd.endpoints[0]}: stopped (its data dir is gone)`,
    });
    expect(proc.children).toHaveLength(1);
  });

  test('startNats: start() after stop() is refused', async () => {
    const nats = await startNats();
    await nats.stop();
    await expect(nats.start()).rejects.toMatchObject({ code: 'STOPPED', message: `nats-server ${nats.url}: stopped` });
  });
});
