import { createServer } from 'node:net';
import { describe, expect, test, vi } from 'vitest';

// What /proc/sys/net/ipv4/ip_local_port_range reads as; every other file is read for real.
const kernel = vi.hoisted(() => ({ range: '32768\t60999\n' }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const readFileSync = ((path: unknown, ...rest: unknown[]) =>
    path === '/proc/sys/net/ipv4/ip_local_port_range'
      ? kernel.range
      : (real.readFileSync as (...a: unknown[]) => unknown)(path, ...rest)) as typeof real.readFileSync;
  return { ...real, default: { ...real, readFileSync }, readFileSync };
});

const { ephemeralPortLow, freePort } = await import('./ports.js');

function bindable(port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

describe('process - freePort', () => {
  // Below 20000 (etcd 2379/2380, 5432, 6379, 8080, 9090, 10250, ...) only when the ports from 20000 up are too few.
  test.each([
    ['32768\t60999', 20_000],
    ['10000\t60999', 20_000],
    ['20500\t60999', 20_000],
    ['20500\t65000', 1_024],
    ['1100\t65535', 1_024],
  ])(
    'process - freePort with ip_local_port_range %s: outside the range, from %i up, never the same port twice',
    async (range, lowest) => {
      kernel.range = `${range}\n`;
      const [low, high] = range.split('\t').map(Number) as [number, number];
      const seen = new Set<number>();
      for (let i = 0; i < 20; i++) {
        const port = await freePort();
        expect(port < low || port > high, `port ${port} in the ephemeral range ${range}`).toBe(true);
        expect(port).toBeGreaterThanOrEqual(lowest);
        expect(port).toBeLessThanOrEqual(65_535);
        expect(seen.has(port), `port ${port} handed out twice`).toBe(false);
        seen.add(port);
        await bindable(port);
      }
    },
  );

  test('process - freePort with every unprivileged port ephemeral (1024-65535) takes the kernel pick, not one it gave', async () => {
    kernel.range = '1024\t65535\n';
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(1_024);
      expect(seen.has(port)).toBe(false);
      seen.add(port);
    }
  });

  // etcd.ts and etcd-cluster.ts take [await freePort(), await freePort()] for the client and peer ports and bind
  // later: the same port twice (one in ~12,768 pairs) failed the second daemon's bind.
  test('process - freePort never hands out a port it gave lately, even when the random pick is the same', async () => {
    kernel.range = '32768\t60999\n';
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.5);
    try {
      const first = await freePort();
      const second = await freePort();
      const third = await freePort();
      expect(new Set([first, second, third]).size).toBe(3);
    } finally {
      random.mockRestore();
    }
  });

  // The list of ports handed out lately is bounded (256, RECENT_MAX): unbounded, a long test run's process would grow it
  // without end and, in a small range, exclude every port. The random pick is steered: P first, then other ports.
  test('process - freePort remembers the last 256 ports it handed out, no more: the one 257 calls ago may come again', async () => {
    kernel.range = '32768\t60999\n';
    const P_PICK = 0.0005; // 20008: ports 20000-32767 and 61000-65535 are the 17,304 candidates
    let next = 1;
    let steer: 'p' | 'others' = 'p';
    // Each other pick a distinct port, never P's: j / 1000 of 17,304 candidates, j from 1 up.
    const random = vi.spyOn(Math, 'random').mockImplementation(() => (steer === 'p' ? P_PICK : next++ / 1000));
    try {
      const p = await freePort();
      expect(p, `the candidate ${p} the pick steers to is free`).toBeLessThan(32_768);
      steer = 'others';
      for (let i = 0; i < 255; i++) expect(await freePort()).not.toBe(p);
      // 256 handed out, P among them: the pick of P is skipped (a port the kernel picks instead), which is the 257th.
      steer = 'p';
      expect(await freePort()).not.toBe(p);
      // P was handed out 257 calls ago: out of the list, it may be handed out again.
      expect(await freePort()).toBe(p);
    } finally {
      random.mockRestore();
    }
  });

  test('process - ephemeralPortLow reads the range; an unreadable one is the default 32768', () => {
    kernel.range = '40000\t50000\n';
    expect(ephemeralPortLow()).toBe(40_000);
    kernel.range = 'garbage\n';
    expect(ephemeralPortLow()).toBe(32_768);
  });
});
