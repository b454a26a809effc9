/**
 * Speaker backed by a gobgpd sidecar over gRPC. The speaker keeps the desired state (global, peers, paths) and
 * reconciles gobgpd towards it: on every setter, after every reconnect (gobgpd restarted or was unreachable) and
 * every `resyncIntervalMs`. See docs/design/0003-bgp-speaker.md.
 */
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from './backoff.js';
import { type ApiObject, fromApiPeer, peerAddress, sessionState } from './codec.js';
import { BgpError } from './errors.js';
import { EventHub } from './event-hub.js';
import { GobgpClient } from './gobgp-client.js';
import { LearntPolicyKeeper } from './learnt-policy.js';
import { PathApplier } from './path-applier.js';
import { planPeers } from './reconcile.js';
import type { Advertisement, GlobalConfig, Peer, PeerEvent, PeerStatus, SessionState, Speaker } from './types.js';
import {
  type CanonicalAdvertisement,
  type CanonicalGlobal,
  type CanonicalPeer,
  canonicalAdvertisements,
  canonicalGlobal,
  canonicalPeers,
} from './validate.js';

/** RFC 8326 GRACEFUL_SHUTDOWN well-known community. */
export const GRACEFUL_SHUTDOWN_COMMUNITY = '65535:0';
/** How often a connected speaker checks gobgpd and re-reconciles, ms. */
export const DEFAULT_RESYNC_INTERVAL_MS = 10_000;
/** How long one connection attempt waits for the channel, ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
/**
 * How often a connected speaker asks gobgpd whether it still answers (one GetBgp), ms. A hung gobgpd (SIGSTOP,
 * deadlock) keeps its connection and stream open, so without this the speaker learnt of it only at the next resync.
 */
export const DEFAULT_LIVENESS_INTERVAL_MS = 1_000;
/**
 * Deadline of that GetBgp, ms: one unanswered ping means gobgpd is hung. A local gobgpd answers in well under 10 ms;
 * 2 s leaves room for a loaded machine, and a hung gobgpd is reported within interval + timeout (3 s).
 */
export const DEFAULT_LIVENESS_TIMEOUT_MS = 2_000;

export interface GobgpSpeakerOptions {
  /** gobgpd's API: `127.0.0.1:50051` or `unix:/path`. Non-loopback needs `allowRemoteApi`. */
  address: string;
  logger: Logger;
  allowRemoteApi?: boolean;
  /** Deadline per gRPC call, ms; default 5_000. */
  callTimeoutMs?: number;
  resyncIntervalMs?: number;
  connectTimeoutMs?: number;
  /** Liveness ping interval and deadline while connected, ms; defaults above. */
  livenessIntervalMs?: number;
  livenessTimeoutMs?: number;
  backoff?: BackoffOptions;
}

/** The real Speaker plus connection health for status pages and metrics. */
export interface GobgpSpeaker extends Speaker {
  /** True while gobgpd answers and the desired state has been applied since the last (re)connect. */
  readonly connected: boolean;
  /** Number of times the speaker reconnected (re-applied everything) after losing gobgpd. */
  readonly reconnects: number;
}

export function createGobgpSpeaker(opts: GobgpSpeakerOptions): GobgpSpeaker {
  return new GobgpSpeakerImpl(opts);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

class GobgpSpeakerImpl implements GobgpSpeaker {
  private readonly log: Logger;
  private readonly client: GobgpClient;
  private readonly hub = new EventHub<PeerEvent>();
  private readonly stop = new AbortController();
  private readonly backoff: Backoff;
  private readonly resyncIntervalMs: number;
  private readonly connectTimeoutMs: number;
  private readonly livenessIntervalMs: number;
  private readonly livenessTimeoutMs: number;
  private readonly supervisor: Promise<void>;
  /** Wakes the supervisor out of a backoff wait (a setter was called, so gobgpd may be worth trying now). */
  private kick: (() => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  private desiredGlobal: CanonicalGlobal | undefined;
  /** undefined until setPeers: the speaker leaves peers it was never told about alone. */
  private desiredPeers: Map<string, CanonicalPeer> | undefined;
  /** undefined until setAdvertisements. */
  private desiredPaths: Map<string, CanonicalAdvertisement> | undefined;
  private readonly states = new Map<string, { asn: number; state: SessionState }>();
  /**
   * The localAddress of every peer this speaker added and gobgpd still holds, by address: gobgpd's own report cannot
   * tell a configured source from the kernel's (reconcile.ts SentLocalAddresses).
   */
  private readonly sentLocalAddresses = new Map<string, string>();
  private readonly importPolicy: LearntPolicyKeeper;
  private readonly paths: PathApplier;

  connected = false;
  reconnects = 0;

  constructor(opts: GobgpSpeakerOptions) {
    this.client = new GobgpClient(opts);
    this.log = opts.logger.child({ component: 'bgp', gobgpd: this.client.address });
    this.importPolicy = new LearntPolicyKeeper(this.client, this.log);
    this.paths = new PathApplier(this.client, this.log);
    this.backoff = new Backoff(opts.backoff);
    this.resyncIntervalMs = opts.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.livenessIntervalMs = opts.livenessIntervalMs ?? DEFAULT_LIVENESS_INTERVAL_MS;
    this.livenessTimeoutMs = opts.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS;
    this.supervisor = this.supervise();
  }

  /** Runs gobgpd operations one at a time, so a reconnect's re-apply never interleaves with a setter. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.stop.signal.aborted) throw new BgpError('CLOSED', 'the speaker is closed');
  }

  async ensureGlobal(g: GlobalConfig): Promise<void> {
    this.assertOpen();
    const global = canonicalGlobal(g);
    await this.serial(async () => {
      try {
        await this.applyGlobal(global);
      } catch (err) {
        // Unreachable: remember it for the reconnect. Refused (GLOBAL_CONFLICT): keep the previous one.
        if (err instanceof BgpError && err.retryable) this.desiredGlobal = global;
        throw err;
      }
      this.desiredGlobal = global;
      await this.applyImportPolicy();
    });
  }

  async setPeers(peers: readonly Peer[]): Promise<void> {
    this.assertOpen();
    this.desiredPeers = canonicalPeers(peers);
    if (!this.connected) this.kick?.();
    await this.serial(() => this.applyPeers());
  }

  async setAdvertisements(advs: readonly Advertisement[]): Promise<void> {
    this.assertOpen();
    this.desiredPaths = canonicalAdvertisements(advs);
    if (!this.connected) this.kick?.();
    await this.serial(() => this.applyPaths());
  }

  peerEvents(): AsyncIterable<PeerEvent> {
    return this.hub.subscribe();
  }

  async peerStates(): Promise<PeerStatus[]> {
    this.assertOpen();
    const peers = await this.client.listPeers();
    return peers.map(toPeerStatus).sort((a, b) => a.address.localeCompare(b.address));
  }

  async close(): Promise<void> {
    if (this.stop.signal.aborted) return;
    this.stop.abort();
    this.kick?.();
    await this.supervisor;
    await this.chain;
    this.hub.close();
    this.client.close();
    this.log.debug({ event: 'speakerClosed' });
  }

  // --- applying desired state -------------------------------------------------------------------------------

  private async applyGlobal(want: CanonicalGlobal): Promise<void> {
    const have = await this.client.getGlobal();
    if (have.asn === 0) {
      await this.client.startBgp(want);
      this.log.info({ event: 'bgpStarted', asn: want.asn, routerId: want.routerId, listenPort: want.listenPort });
      return;
    }
    if (have.asn !== want.asn || have.routerId !== want.routerId || have.listenPort !== want.listenPort) {
      throw new BgpError(
        'GLOBAL_CONFLICT',
        `gobgpd runs with asn ${have.asn} routerId "${have.routerId}" listenPort ${have.listenPort}, ` +
          `not asn ${want.asn} routerId "${want.routerId}" listenPort ${want.listenPort}; restart gobgpd without a global config`,
      );
    }
  }

  /**
   * Keeps the routers' routes out of gobgpd's global RIB (learnt-policy.ts). Runs once BGP is started (StartBgp
   * clears every policy) and before peers are added; a refusal is logged and retried at the next resync, and blocks
   * neither ensureGlobal nor the peers and paths after it.
   */
  private async applyImportPolicy(): Promise<void> {
    await this.importPolicy.apply();
  }

  private async applyPeers(): Promise<void> {
    const desired = this.desiredPeers;
    if (!desired) return;
    const current = (await this.client.listPeers()).map(fromApiPeer);
    // A peer gobgpd no longer holds (gobgpd restarted, deleted by hand) is added again: what was sent counts no more.
    const held = new Set(current.map((p) => p.address));
    for (const address of this.sentLocalAddresses.keys()) {
      if (!held.has(address)) this.sentLocalAddresses.delete(address);
    }
    const plan = planPeers(current, desired, this.sentLocalAddresses);
    for (const address of plan.remove) {
      await this.client.deletePeer(address);
      this.states.delete(address);
      this.sentLocalAddresses.delete(address);
      this.log.info({ event: 'peerDeleted', peer: address });
    }
    for (const peer of plan.add) {
      await this.client.addPeer(peer);
      this.sentLocalAddresses.set(peer.address, peer.localAddress);
      this.log.info({ event: 'peerAdded', peer: peer.address, asn: peer.asn, holdTimeS: peer.holdTimeS });
    }
  }

  /** Announces and withdraws towards desiredPaths (path-applier.ts). */
  private async applyPaths(): Promise<void> {
    const desired = this.desiredPaths;
    if (!desired) return;
    await this.paths.apply(desired);
  }

  /** Everything, in dependency order; a gobgpd that was never given a global config gets nothing else. */
  private async reapply(): Promise<void> {
    if (this.desiredGlobal) await this.applyGlobal(this.desiredGlobal);
    else if ((await this.client.getGlobal()).asn === 0) return;
    await this.applyImportPolicy();
    await this.applyPeers();
    await this.applyPaths();
    for (const peer of await this.client.listPeers()) this.onPeer(peer);
  }

  // --- sessions and connection ----------------------------------------------------------------------------------

  private onPeer(peer: ApiObject): void {
    const address = peerAddress(peer);
    if (address === '') return;
    const asn = Number(peer.state?.peer_asn || peer.conf?.peer_asn || 0);
    this.publish(address, asn, sessionState(peer.state?.session_state));
  }

  private publish(address: string, asn: number, state: SessionState, reason?: PeerEvent['reason']): void {
    const previousState = this.states.get(address)?.state ?? 'unknown';
    this.states.set(address, { asn, state });
    if (previousState === state) return;
    const event: PeerEvent = { address, asn, state, previousState, atMs: Date.now() };
    if (reason) event.reason = reason;
    this.log.info({ event: 'peerState', peer: address, state, previousState, reason });
    this.hub.publish(event);
  }

  private setDisconnected(err: unknown): void {
    if (this.connected) {
      this.log.warn({ event: 'gobgpdUnreachable', err: (err as Error)?.message });
      for (const [address, s] of this.states) this.publish(address, s.asn, 'unknown', 'gobgpdUnreachable');
    }
    this.connected = false;
  }

  /** Waits up to `ms`, returning early on close() or a setter's kick. */
  private async backoffWait(ms: number): Promise<void> {
    const woken = new AbortController();
    this.kick = () => woken.abort();
    const onStop = () => woken.abort();
    this.stop.signal.addEventListener('abort', onStop, { once: true });
    await sleep(ms, woken.signal);
    this.stop.signal.removeEventListener('abort', onStop);
    this.kick = undefined;
  }

  private async supervise(): Promise<void> {
    let everConnected = false;
    while (!this.stop.signal.aborted) {
      const watch = await this.connectOnce().catch((err: unknown) => {
        this.setDisconnected(err);
        this.log.debug({ event: 'gobgpdConnectFailed', err: (err as Error).message });
        return undefined;
      });
      if (watch) {
        if (everConnected) this.reconnects++;
        everConnected = true;
        this.connected = true;
        this.backoff.reset();
        this.log.info({ event: 'gobgpdConnected', reconnects: this.reconnects });
        const reason = await this.whileConnected(watch.ended);
        watch.cancel();
        if (this.stop.signal.aborted) break;
        this.setDisconnected(reason);
      }
      await this.backoffWait(this.backoff.next());
    }
    this.connected = false;
  }

  /** One connection: channel ready, peer watch open, desired state re-applied. */
  private async connectOnce() {
    await this.client.waitForReady(this.connectTimeoutMs);
    // The channel of a stopped gobgpd stays ready: ask it first, so a hung one costs a ping, not a full call deadline.
    await this.client.ping(this.livenessTimeoutMs);
    const watch = this.client.watchPeers((p) => this.onPeer(p));
    try {
      await this.serial(() => this.reapply());
    } catch (err) {
      if (err instanceof BgpError && err.retryable) {
        watch.cancel();
        throw err;
      }
      // gobgpd is there but refused something (e.g. GLOBAL_CONFLICT): stay connected, report, retry on resync.
      this.log.error({ event: 'reapplyFailed', err: (err as Error).message, code: (err as BgpError).code });
    }
    return watch;
  }

  /**
   * Pings gobgpd every liveness interval and resyncs every resync interval, until the watch stream ends, a ping or
   * resync finds gobgpd gone or hung, or close(). The ping bypasses the serial chain: a setter stuck on a hung
   * gobgpd must not delay the finding.
   */
  private async whileConnected(ended: Promise<BgpError>): Promise<unknown> {
    let streamEnded: BgpError | undefined;
    void ended.then((e) => {
      streamEnded = e;
      this.kick?.();
    });
    // performance.now(), a steady clock: on the wall clock an NTP step back stopped the resync for the step's length.
    let nextResyncAt = performance.now() + this.resyncIntervalMs;
    while (!this.stop.signal.aborted && !streamEnded) {
      await this.backoffWait(Math.max(0, Math.min(this.livenessIntervalMs, nextResyncAt - performance.now())));
      if (this.stop.signal.aborted || streamEnded) break;
      const resync = performance.now() >= nextResyncAt;
      try {
        if (resync) {
          await this.serial(() => this.reapply());
          nextResyncAt = performance.now() + this.resyncIntervalMs;
        } else {
          await this.client.ping(this.livenessTimeoutMs);
        }
      } catch (err) {
        if (err instanceof BgpError && err.retryable) {
          if (!resync) this.log.warn({ event: 'gobgpdHung', timeoutMs: this.livenessTimeoutMs });
          return err;
        }
        this.log.error({ event: 'resyncFailed', err: (err as Error).message, code: (err as BgpError).code });
        nextResyncAt = performance.now() + this.resyncIntervalMs;
      }
    }
    return streamEnded;
  }
}

function toPeerStatus(peer: ApiObject): PeerStatus {
  const state = sessionState(peer.state?.session_state);
  const timers = peer.timers?.state ?? {};
  const uptimeS =
    state === 'established' && timers.uptime?.seconds
      ? Math.max(0, Date.now() / 1000 - Number(timers.uptime.seconds))
      : undefined;
  let advertised = 0;
  let received = 0;
  for (const af of (peer.afi_safis ?? []) as ApiObject[]) {
    advertised += Number(af.state?.advertised ?? 0);
    received += Number(af.state?.received ?? 0);
  }
  return {
    address: peerAddress(peer),
    asn: Number(peer.state?.peer_asn || peer.conf?.peer_asn),
    state,
    adminDown: peer.state?.admin_state === 'DOWN' || peer.state?.admin_state === 'PFX_CT',
    negotiatedHoldTimeS: Number(timers.negotiated_hold_time ?? 0),
    uptimeS: uptimeS === undefined ? undefined : Math.round(uptimeS),
    advertised,
    received,
  };
}
