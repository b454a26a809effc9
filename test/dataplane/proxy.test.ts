/**
 * The proxy driver on loopback: the same behaviour as the kernel path where it applies (Maglev choice
 * per flow, affinity across table changes, no-backend drops, typed errors with the previous state kept).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import {
  createProxyDataPlane,
  type DataPlane,
  DataPlaneError,
  type ProxySelection,
  type VipTable,
} from '@l4fleet/dataplane';
import { NO_BACKEND, slotOf } from '@l4fleet/maglev';
import { eventually } from '@l4fleet/test-support/eventually';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { withDown } from './member-down.js';
import { connect, freePort, type NamedServer, nameServer, SEED, table, udpAsk } from './proxy-harness.js';

const logger = pino({ level: 'silent' });

const expectedName = (t: VipTable, src: string, sport: number): string => {
  const i = t.slots[
    slotOf(
      { src, sport, dst: t.vip.address, dport: t.vip.port, protocol: t.vip.protocol },
      t.slots.length,
      t.seed,
      t.hash,
    )
  ] as number;
  return i === NO_BACKEND ? '' : (t.backends[i]?.name as string);
};

let servers: NamedServer[] = [];
const open: DataPlane[] = [];
function proxy(selection?: ProxySelection): DataPlane {
  const dp = createProxyDataPlane({ logger, ...(selection ? { selection } : {}) });
  open.push(dp);
  return dp;
}

beforeAll(async () => {
  servers = await Promise.all(['b0', 'b1', 'b2'].map((n) => nameServer(n)));
  return () => {
    for (const s of servers) s.close();
  };
});

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close();
});

describe('proxy data plane', () => {
  test('maglev selection - 300 TCP and UDP flows land where slotOf predicts, 5-tuple and source-ip', async () => {
    const port = await freePort();
    const tcp = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' });
    const udp = table(servers, { address: '127.0.0.1', port, protocol: 'udp' });
    const sticky = table(servers, { address: '127.0.0.1', port: await freePort(), protocol: 'tcp' }, 'source-ip');
    const dp = proxy();
    expect((await dp.apply([tcp, udp, sticky])).vips.map((v) => v.action)).toEqual(['added', 'added', 'added']);
    const got = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const c = await connect('127.0.0.1', port);
      const name = await c.ask();
      c.close();
      expect(name).toBe(expectedName(tcp, '127.0.0.1', c.sport));
      got.add(name);
    }
    for (let i = 0; i < 100; i++) {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      expect(await udpAsk(s, '127.0.0.1', port)).toBe(expectedName(udp, '127.0.0.1', s.address().port));
      s.close();
    }
    for (let i = 0; i < 100; i++) {
      const src = `127.0.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`;
      const c = await connect('127.0.0.1', sticky.vip.port, src);
      expect(await c.ask()).toBe(expectedName(sticky, src, c.sport));
      c.close();
    }
    expect(got.size).toBe(3);
    const counters = await dp.counters();
    expect(counters.vips.map((v) => v.packets)).toEqual([100, 100, 100]);
  });

  test('affinity - an established TCP flow and a UDP session keep their backend when the table moves them; new flows follow', async () => {
    const port = await freePort();
    const tcp = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' }, 'source-ip');
    const udp = table(servers, { address: '127.0.0.1', port, protocol: 'udp' }, 'source-ip');
    const dp = proxy();
    await dp.apply([tcp, udp]);
    const c = await connect('127.0.0.1', port, '127.0.0.77');
    const first = await c.ask();
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.77', r));
    expect(await udpAsk(u, '127.0.0.1', port)).toBe(first);

    const slot = slotOf(
      { src: '127.0.0.77', sport: 0, dst: '127.0.0.1', dport: port, protocol: 'tcp' },
      65_537,
      SEED,
      'source-ip',
    );
    const moved = (tcp.backends.findIndex((b) => b.name === first) + 1) % 3;
    const move = (t: VipTable): VipTable => {
      const slots = Int32Array.from(t.slots);
      slots[slot] = moved;
      return { ...t, slots };
    };
    const r = await dp.apply([move(tcp), move(udp)]);
    expect(r.slotsChanged).toBe(2);
    expect(await c.ask()).toBe(first);
    expect(await udpAsk(u, '127.0.0.1', port)).toBe(first);
    const fresh = await connect('127.0.0.1', port, '127.0.0.77');
    expect(await fresh.ask()).toBe(`b${moved}`);
    fresh.close();
    c.close();
    u.close();
  });

  test('pool change - flows to a backend that left the pool end; no backend refuses', async () => {
    const port = await freePort();
    const all = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' });
    const dp = proxy();
    await dp.apply([all]);
    let c = await connect('127.0.0.1', port);
    const name = await c.ask();
    const rest = servers.filter((s) => s.name !== name);
    await dp.apply([table(rest, all.vip)]);
    await c.closed; // the connection to the removed backend was closed
    c = await connect('127.0.0.1', port);
    expect(rest.map((s) => s.name)).toContain(await c.ask());
    c.close();

    await dp.apply([{ ...all, slots: new Int32Array(all.slots.length).fill(NO_BACKEND) }]);
    const refused = net.connect({ host: '127.0.0.1', port });
    refused.on('error', () => undefined);
    await new Promise((r) => refused.once('close', r)); // reset by the proxy
    expect((await dp.counters()).drops['no-backend'].packets).toBe(1);
  });

  test('a draining VIP (draining: true, its table kept) - the open TCP connection and UDP session go on; a new connection is reset, a new UDP flow dropped', async () => {
    const port = await freePort();
    const tcp = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' });
    const udp = table(servers, { address: '127.0.0.1', port, protocol: 'udp' }, 'source-ip');
    const dp = proxy();
    await dp.apply([tcp, udp]);
    const c = await connect('127.0.0.1', port, '127.0.0.79');
    const first = await c.ask();
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.79', r));
    const session = await udpAsk(u, '127.0.0.1', port);
    await dp.apply([
      { ...tcp, draining: true },
      { ...udp, draining: true },
    ]);
    expect(await c.ask()).toBe(first);
    expect(await udpAsk(u, '127.0.0.1', port)).toBe(session);
    const refused = net.connect({ host: '127.0.0.1', port });
    refused.on('error', () => undefined);
    await new Promise((r) => refused.once('close', r)); // reset by the proxy
    expect((await dp.counters()).drops['no-backend'].packets).toBe(1);
    // A new UDP flow (another source) gets nothing: its datagram is dropped and counted.
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.80', r));
    stranger.send('x', port, '127.0.0.1');
    await eventually(
      'the stranger datagram counted',
      async () => (await dp.counters()).drops['no-backend'].packets,
      (n) => n === 2,
      5_000,
    );
    c.close();
    u.close();
    stranger.close();
  });

  test.each(['keep', 'reselect'] as const)(
    'onMemberDown %s - a UDP session and a TCP connection whose backend is decided down stay on it, or are re-picked and reset',
    async (mode) => {
      const port = await freePort();
      const udp = table(servers, { address: '127.0.0.1', port, protocol: 'udp' }, 'source-ip');
      const tcp = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' }, 'source-ip');
      const dp = proxy();
      await dp.apply([withDown(udp, undefined, mode), withDown(tcp, undefined, mode)]);
      const u = dgram.createSocket('udp4');
      await new Promise<void>((r) => u.bind(0, '127.0.0.78', r));
      const first = await udpAsk(u, '127.0.0.1', port);
      const c = await connect('127.0.0.1', port, '127.0.0.78');
      expect(await c.ask()).toBe(first);
      const a = udp.backends.findIndex((b) => b.name === first);
      const down = withDown(udp, a, mode);
      await dp.apply([down, withDown(tcp, a, mode)]);
      if (mode === 'keep') {
        expect(await udpAsk(u, '127.0.0.1', port)).toBe(first);
        expect(await c.ask()).toBe(first);
      } else {
        const moved = expectedName(down, '127.0.0.78', 0);
        expect(moved).not.toBe(first);
        expect(await udpAsk(u, '127.0.0.1', port)).toBe(moved);
        await c.closed; // reset: the client learns at once instead of waiting on a dead backend
        // Back up: the session stays where it went.
        await dp.apply([withDown(udp, undefined, mode), withDown(tcp, undefined, mode)]);
        expect(await udpAsk(u, '127.0.0.1', port)).toBe(moved);
      }
      c.close();
      u.close();
    },
  );

  test.each(['round-robin', 'least-connections'] as const)(
    '%s - node-local selection spreads over every backend',
    async (selection) => {
      const port = await freePort();
      const dp = proxy(selection);
      await dp.apply([table(servers, { address: '127.0.0.1', port, protocol: 'tcp' })]);
      const conns = [];
      for (let i = 0; i < 6; i++) conns.push(await connect('127.0.0.1', port));
      const names = await Promise.all(conns.map((c) => c.ask()));
      for (const c of conns) c.close();
      expect([...names].sort()).toEqual(['b0', 'b0', 'b1', 'b1', 'b2', 'b2']);
    },
  );

  test('bad desired state - typed errors; a failed listen keeps the previous state', async () => {
    const port = await freePort();
    const good = table(servers, { address: '127.0.0.1', port, protocol: 'tcp' });
    const dp = proxy();
    await dp.apply([good]);
    const wrongFamily = { ...good, backends: [{ name: 'b0', address: '::1', port: 1 }, ...good.backends.slice(1)] };
    await expect(dp.apply([wrongFamily])).rejects.toMatchObject({ code: 'BACKEND_FAMILY_MISMATCH' });
    const blocker = net.createServer();
    const busy = await freePort();
    await new Promise<void>((r) => blocker.listen(busy, '127.0.0.1', r));
    try {
      const err = await dp.apply([good, { ...good, vip: { ...good.vip, port: busy } }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect((err as DataPlaneError).code).toBe('LISTEN_FAILED');
    } finally {
      blocker.close();
    }
    const c = await connect('127.0.0.1', port);
    expect(['b0', 'b1', 'b2']).toContain(await c.ask());
    c.close();
    expect((await dp.apply([good])).vips).toEqual([expect.objectContaining({ action: 'unchanged' })]);
  });
});
