/** An in-memory Speaker for other packages' unit tests: same validation, no gobgpd. */
import { BgpError } from './errors.js';
import { EventHub } from './event-hub.js';
import type { Advertisement, GlobalConfig, Peer, PeerEvent, PeerStatus, SessionState, Speaker } from './types.js';
import {
  type CanonicalAdvertisement,
  type CanonicalGlobal,
  type CanonicalPeer,
  canonicalAdvertisements,
  canonicalGlobal,
  canonicalPeers,
} from './validate.js';

export interface FakeSpeaker extends Speaker {
  /** What the fake "announces" now, canonical, sorted by prefix. */
  readonly advertised: readonly CanonicalAdvertisement[];
  readonly global: CanonicalGlobal | undefined;
  readonly peers: readonly CanonicalPeer[];
  /** Every setAdvertisements step, in order (each a sorted prefix list), to assert sequences. */
  readonly history: readonly (readonly string[])[];
  /** Sets a peer's session state and emits a PeerEvent, as gobgpd would. */
  setPeerState(address: string, state: SessionState): void;
  /** Makes every following call fail with `err` (e.g. an UNAVAILABLE BgpError); undefined clears it. */
  failWith(err: BgpError | undefined): void;
}

export function createFakeSpeaker(): FakeSpeaker {
  const hub = new EventHub<PeerEvent>();
  let global: CanonicalGlobal | undefined;
  let peers = new Map<string, CanonicalPeer>();
  let paths = new Map<string, CanonicalAdvertisement>();
  const states = new Map<string, SessionState>();
  const history: string[][] = [];
  let failure: BgpError | undefined;
  let closed = false;

  const check = () => {
    if (closed) throw new BgpError('CLOSED', 'the speaker is closed');
    if (failure) throw failure;
  };
  const record = () => history.push([...paths.keys()].sort());

  return {
    get advertised() {
      return [...paths.values()].sort((a, b) => a.prefix.localeCompare(b.prefix));
    },
    get global() {
      return global;
    },
    get peers() {
      return [...peers.values()];
    },
    history,
    async ensureGlobal(g: GlobalConfig) {
      check();
      const want = canonicalGlobal(g);
      // As gobgpd: a running speaker keeps its AS, router id and port (GobgpSpeaker.applyGlobal).
      if (
        global &&
        (global.asn !== want.asn || global.routerId !== want.routerId || global.listenPort !== want.listenPort)
      ) {
        throw new BgpError(
          'GLOBAL_CONFLICT',
          `the fake speaker runs with asn ${global.asn} routerId "${global.routerId}" listenPort ${global.listenPort}, ` +
            `not asn ${want.asn} routerId "${want.routerId}" listenPort ${want.listenPort}`,
        );
      }
      global = want;
    },
    async setPeers(list: readonly Peer[]) {
      check();
      peers = canonicalPeers(list);
      for (const address of states.keys()) if (!peers.has(address)) states.delete(address);
    },
    async setAdvertisements(advs: readonly Advertisement[]) {
      check();
      paths = canonicalAdvertisements(advs);
      record();
    },
    peerEvents: () => hub.subscribe(),
    async peerStates(): Promise<PeerStatus[]> {
      check();
      return [...peers.values()].map((p) => ({
        address: p.address,
        asn: p.asn,
        state: states.get(p.address) ?? 'idle',
        adminDown: false,
        negotiatedHoldTimeS: states.get(p.address) === 'established' ? p.holdTimeS : 0,
        uptimeS: undefined,
        advertised: states.get(p.address) === 'established' ? paths.size : 0,
        received: 0,
      }));
    },
    setPeerState(address, state) {
      const peer = peers.get(address);
      const previousState = states.get(address) ?? 'unknown';
      states.set(address, state);
      hub.publish({ address, asn: peer?.asn ?? 0, state, previousState, atMs: Date.now() });
    },
    failWith(err) {
      failure = err;
    },
    async close() {
      closed = true;
      hub.close();
    },
  };
}
