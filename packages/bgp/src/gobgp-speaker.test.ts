/**
 * The speaker over a stubbed gobgpd client: the resync every resyncIntervalMs (docs/design/0003) against wall-clock
 * steps (NTP), and setPeers against a gobgpd that reports a session's real source as its local address.
 * vi.setSystemTime moves Date only; the faked timers and performance.now() go on as a steady clock does.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { type ApiObject, toApiPeer } from './codec.js';
import type { CanonicalPeer } from './validate.js';

const calls = vi.hoisted(() => ({ getGlobal: 0, ping: 0 }));

/**
 * gobgpd's neighbours: AddPeer's message by address, and the source of each established session. ListPeer reports
 * that source as transport.local_address whatever was configured (GoBGP 3.10 merges the session state in).
 */
const gobgpd = vi.hoisted(() => ({
  peers: new Map<string, ApiObject>(),
  sources: new Map<string, string>(),
  log: [] as string[],
}));

vi.mock('./gobgp-client.js', () => ({
  /** A gobgpd that answers at once and was never given a global config: a resync is one getGlobal. */
  GobgpClient: class {
    readonly address = '127.0.0.1:50051';
    async waitForReady(): Promise<void> {}
    async ping(): Promise<void> {
      calls.ping++;
    }
    async getGlobal() {
      calls.getGlobal++;
      return { asn: 0, routerId: '', listenPort: 0 };
    }
    async listPeers(): Promise<ApiObject[]> {
      return [...gobgpd.peers.entries()].map(([address, row]) => {
        const source = gobgpd.sources.get(address);
        return source === undefined ? row : { ...row, transport: { ...row.transport, local_address: source } };
      });
    }
    async addPeer(peer: CanonicalPeer) {
      gobgpd.peers.set(peer.address, toApiPeer(peer));
      gobgpd.log.push(`add ${peer.address} from "${peer.localAddress}"`);
    }
    async deletePeer(address: string) {
      gobgpd.peers.delete(address);
      gobgpd.sources.delete(address);
      gobgpd.log.push(`delete ${address}`);
    }
    watchPeers() {
      return { ended: new Promise(() => undefined), cancel: () => undefined };
    }
    close(): void {}
  },
}));

const { createGobgpSpeaker } = await import('./gobgp-speaker.js');

afterEach(() => {
  vi.useRealTimers();
});

describe('gobgp speaker - resync on a steady clock', () => {
  test('a wall clock stepped back an hour does not stop the resync for an hour', async () => {
    vi.useFakeTimers();
    const speaker = createGobgpSpeaker({
      address: '127.0.0.1:50051',
      logger: pino({ level: 'silent' }),
      resyncIntervalMs: 10_000,
    });
    try {
      await vi.advanceTimersByTimeAsync(0);
      expect(speaker.connected).toBe(true);
      const atConnect = calls.getGlobal;
      await vi.advanceTimersByTimeAsync(30_000);
      expect(calls.getGlobal - atConnect).toBe(3);
      const beforeStep = calls.getGlobal;
      vi.setSystemTime(Date.now() - 3_600_000);
      await vi.advanceTimersByTimeAsync(5 * 60_000);
      // 30 intervals of 10 s; one fewer if the last lands exactly at the end.
      expect(calls.getGlobal - beforeStep).toBeGreaterThanOrEqual(29);
    } finally {
      await speaker.close();
    }
  });
});

describe('gobgp speaker - setPeers and the localAddress it configured', () => {
  const ROUTER = '198.18.3.1';
  const OLD_SOURCE = '198.18.3.11';
  const KERNEL_SOURCE = '198.18.3.12';
  const speakers: { close(): Promise<void> }[] = [];
  const newSpeaker = () => {
    const s = createGobgpSpeaker({ address: '127.0.0.1:50051', logger: pino({ level: 'silent' }) });
    speakers.push(s);
    return s;
  };

  beforeEach(() => {
    gobgpd.peers.clear();
    gobgpd.sources.clear();
    gobgpd.log.length = 0;
  });
  afterEach(async () => {
    for (const s of speakers.splice(0)) await s.close();
  });

  // A reload removing bgp.peers[].localAddress: gobgpd kept the old source (the plan was empty) while BFD moved.
  test('a localAddress removed: the peer is re-created without it, then left alone on the kernel source', async () => {
    const s = newSpeaker();
    await s.setPeers([{ address: ROUTER, asn: 65000, localAddress: OLD_SOURCE }]);
    gobgpd.sources.set(ROUTER, OLD_SOURCE);
    await s.setPeers([{ address: ROUTER, asn: 65000 }]);
    expect(gobgpd.log).toEqual([`add ${ROUTER} from "${OLD_SOURCE}"`, `delete ${ROUTER}`, `add ${ROUTER} from ""`]);
    gobgpd.sources.set(ROUTER, KERNEL_SOURCE);
    await s.setPeers([{ address: ROUTER, asn: 65000 }]);
    expect(gobgpd.log).toHaveLength(3);
  });

  test('a localAddress added that the kernel already chose: the peer is re-created with it', async () => {
    const s = newSpeaker();
    await s.setPeers([{ address: ROUTER, asn: 65000 }]);
    gobgpd.sources.set(ROUTER, OLD_SOURCE);
    await s.setPeers([{ address: ROUTER, asn: 65000, localAddress: OLD_SOURCE }]);
    expect(gobgpd.log).toEqual([`add ${ROUTER} from ""`, `delete ${ROUTER}`, `add ${ROUTER} from "${OLD_SOURCE}"`]);
  });

  test('gobgpd restarted (the peer gone): re-added, and what was sent is what counts again', async () => {
    const s = newSpeaker();
    await s.setPeers([{ address: ROUTER, asn: 65000, localAddress: OLD_SOURCE }]);
    gobgpd.peers.clear();
    await s.setPeers([{ address: ROUTER, asn: 65000 }]);
    gobgpd.sources.set(ROUTER, OLD_SOURCE);
    await s.setPeers([{ address: ROUTER, asn: 65000 }]);
    expect(gobgpd.log).toEqual([`add ${ROUTER} from "${OLD_SOURCE}"`, `add ${ROUTER} from ""`]);
  });

  // A new speaker (agent restart) did not configure the peer: gobgpd cannot tell it a configured source from the
  // kernel's, and resetting every session at every agent restart would withdraw the VIPs at the routers.
  test('a peer a previous speaker configured, established: a new speaker leaves it alone', async () => {
    const first = newSpeaker();
    await first.setPeers([{ address: ROUTER, asn: 65000 }]);
    gobgpd.sources.set(ROUTER, KERNEL_SOURCE);
    await first.close();
    await newSpeaker().setPeers([{ address: ROUTER, asn: 65000 }]);
    expect(gobgpd.log).toEqual([`add ${ROUTER} from ""`]);
  });
});
