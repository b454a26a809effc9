/**
 * An apply whose outcome is unknown (issue 12): etcd stalls right after the pointer switch was sent. A TCP proxy
 * between the store and a real etcd reads the client's HTTP/2 frames (RFC 9113 §4.1: 9-byte frame header, type 0x1
 * HEADERS opens each gRPC call) and, from the apply's second call (the switch txn) on, drops etcd's replies (the
 * switch lands, the client never hears) or the requests (the switch never arrives). Both must end in
 * `OUTCOME_UNKNOWN` naming the generation, never a plain TIMEOUT, and re-applying must be safe.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { parseFleet } from '@l4fleet/config';
import { EtcdFleetStore, type StoreError } from '@l4fleet/store';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const PREFACE_BYTES = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const FRAME_HEADER_BYTES = 9;
const HEADERS_FRAME = 0x1;

type Mode = 'pass' | 'drop-replies' | 'drop-requests';

/**
 * A proxy to etcd that stalls one direction from the `stallAtCall`-th gRPC call of a connection on; with `all`,
 * connections opened after that stall too (etcd itself stalled), else only that connection.
 */
async function stallingProxy(
  target: URL,
): Promise<{ url: string; arm(mode: Mode, stallAtCall: number, all: boolean): void; close(): Promise<void> }> {
  let mode: Mode = 'pass';
  let stallAt = Number.POSITIVE_INFINITY;
  let stallAll = false;
  let stalledAll = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let header = Buffer.alloc(0); // a frame header split across reads
    let skip = PREFACE_BYTES;
    let calls = 0;
    let stalled = stalledAll;
    client.on('data', (chunk: Buffer) => {
      if (stalled && mode === 'drop-requests') return;
      // Walk the frames to count calls; forward byte-exact up to the stall point.
      let cut = chunk.length;
      let i = 0;
      while (i < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const start = i - header.length;
        const take = chunk.subarray(i, i + FRAME_HEADER_BYTES - header.length);
        header = Buffer.concat([header, take]);
        i += take.length;
        if (header.length < FRAME_HEADER_BYTES) break;
        skip = header.readUIntBE(0, 3);
        const type = header[3];
        header = Buffer.alloc(0);
        if (type === HEADERS_FRAME && ++calls >= stallAt && mode !== 'pass') {
          stalled = true;
          stalledAll = stallAll;
          if (mode === 'drop-requests') {
            cut = Math.max(0, start); // this call never reaches etcd
            break;
          }
        }
      }
      upstream.write(chunk.subarray(0, cut));
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!(stalled && mode === 'drop-replies')) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    arm: (m, at, all) => {
      mode = m;
      stallAt = at;
      stallAll = all;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const fleetOf = (members: number) =>
  parseFleet({
    hashSeed: 5,
    pools: [
      {
        name: 'web',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

describe('apply - unknown outcome', () => {
  let etcd: EtcdHandle;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  test.each([
    ['drop-replies', 'the switch lands, etcd stalls'],
    ['drop-requests', 'etcd stalls before the switch arrives'],
  ] as const)('%s (%s): OUTCOME_UNKNOWN naming the generation; re-applying is safe', async (mode, _what) => {
    const prefix = `/unknown-${mode}`;
    const direct = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    const proxy = await stallingProxy(new URL(etcd.endpoints[0] as string));
    const viaProxy = new EtcdFleetStore({ endpoints: [proxy.url], prefix, logger, callTimeoutMs: 1_500 });
    try {
      const base = await direct.apply(fleetOf(1));
      // An inline fleet: apply reads the pointer (call 1), then sends the switch txn (call 2).
      proxy.arm(mode, 2, true);
      const err = (await viaProxy.apply(fleetOf(2)).catch((e: StoreError) => e)) as StoreError;
      expect(err.code, JSON.stringify(err)).toBe('OUTCOME_UNKNOWN');
      const generation = /generation ([a-z0-9-]+)/.exec(err.message)?.[1];
      expect(generation).toBeTruthy();
      expect(err.message).toMatch(/may or may not be live/);
      expect(err.message).toMatch(/sha256 [0-9a-f]{64}/);
      const now = await direct.getDesired();
      if (mode === 'drop-replies')
        expect(now.generation).toBe(generation); // it did land
      else expect(now.revision).toBe(base.revision); // it did not
      // Re-applying is safe either way: the same fleet, guarded by the revision read now.
      const again = await direct.apply(fleetOf(2), { expectRevision: now.revision });
      expect((await direct.getDesired()).revision).toBe(again.revision);
      expect((await direct.getDesired()).fleet.pools[0]?.members.length).toBe(2);
    } finally {
      await viaProxy.close();
      await direct.close();
      await proxy.close();
    }
  });

  test('the reply to the switch is lost but a new connection reads it back: the apply succeeded', async () => {
    const prefix = '/unknown-reread';
    const direct = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    const proxy = await stallingProxy(new URL(etcd.endpoints[0] as string));
    const viaProxy = new EtcdFleetStore({ endpoints: [proxy.url], prefix, logger, callTimeoutMs: 1_500 });
    try {
      await direct.apply(fleetOf(1));
      proxy.arm('drop-replies', 2, false); // only the first connection stalls; gRPC reconnects after the deadline
      const r = await viaProxy.apply(fleetOf(3));
      expect((await direct.getDesired()).generation).toBe(r.generation);
    } finally {
      await viaProxy.close();
      await direct.close();
      await proxy.close();
    }
  });
});
