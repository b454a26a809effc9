/**
 * The node's BGP speaker setup and session states: hands gobgpd the global config and the peers from agent.yaml
 * (retrying until gobgpd answers), and follows each session's state for metrics and the status record. Routes are
 * not here: the reconciler hands the speaker the whole route set on every pass.
 */
import type { Speaker } from '@l4fleet/bgp';
import type { Logger } from 'pino';
import { type Clock, sleep } from '../clock.js';
import type { BgpSection, PeerSection } from '../config/types.js';
import type { EventPublisher } from '../events/publisher.js';
import type { AgentMetrics } from '../observe/metrics.js';

/** Pause before setting up gobgpd again after a failure that is not retried by the speaker itself, ms. */
export const BGP_SETUP_RETRY_MS = 5_000;

export interface BgpSessionsOptions {
  readonly speaker: Speaker;
  readonly config: BgpSection;
  readonly clock: Clock;
  readonly metrics: AgentMetrics;
  readonly events: Pick<EventPublisher, 'emit'>;
  readonly logger: Logger;
  /** A session changed state (status record). */
  readonly onChange: () => void;
}

export interface BgpSessions {
  /** Sets up gobgpd and follows the sessions in the background. */
  start(): void;
  /** Session state per peer address. */
  states(): Record<string, string>;
  /**
   * A reload's new peer list (config/reload.ts): gobgpd reconciles its neighbours to it, leaving unchanged sessions
   * alone; a removed peer's state and metrics go. gobgpd unreachable: the speaker keeps the list and applies it when
   * gobgpd answers, as at startup.
   */
  setPeers(peers: readonly PeerSection[]): Promise<void>;
  close(): void;
}

export function createBgpSessions(opts: BgpSessionsOptions): BgpSessions {
  const { speaker, config, clock, metrics } = opts;
  const log = opts.logger;
  const states: Record<string, string> = {};
  let peers = config.peers;
  let closed = false;

  const setState = (peer: string, state: string): void => {
    states[peer] = state;
    metrics.setSessionState(peer, state);
  };

  const follow = async (): Promise<void> => {
    try {
      for (const p of await speaker.peerStates()) setState(p.address, p.state);
      metrics.gobgpdReachable.set(1);
    } catch {
      // gobgpd not there yet: events will tell
    }
    try {
      for await (const ev of speaker.peerEvents()) {
        if (closed) break;
        setState(ev.address, ev.state);
        // A hung gobgpd (SIGSTOP, deadlock) answers no call: the speaker's resync times out and says so here. The
        // router drops the node within its hold time meanwhile (RFC 4271 §6.5); the operator should learn why.
        const unreachable = ev.reason === 'gobgpdUnreachable';
        metrics.gobgpdReachable.set(unreachable ? 0 : 1);
        const reason = ev.reason ? { reason: ev.reason } : {};
        log.info({ event: 'bgpSession', peer: ev.address, state: ev.state, previous: ev.previousState, ...reason });
        opts.events.emit('bgp.session', { peer: ev.address, state: ev.state, previous: ev.previousState, ...reason });
        opts.onChange();
      }
    } catch (err) {
      if (!closed) log.warn({ event: 'bgpEventsEnded', err: (err as Error).message });
    }
  };

  const retryable = (err: unknown): boolean => (err as { retryable?: boolean }).retryable === true;

  const setup = async (): Promise<void> => {
    while (!closed) {
      try {
        try {
          await speaker.ensureGlobal({
            asn: config.asn,
            routerId: config.routerId,
            listenPort: config.listenPort,
            ...(config.listenAddresses ? { listenAddresses: config.listenAddresses } : {}),
          });
        } catch (err) {
          if (!retryable(err)) throw err;
          // gobgpd not answering yet: the speaker kept the global, and must keep the peers too, or its reconnect
          // starts BGP with no neighbours (it leaves peers it was never told about alone).
          log.warn({ event: 'bgpSetupFailed', retryable: true, err: (err as Error).message });
        }
        // PeerSection is bgp's Peer with agent.yaml's defaults filled in: handed over as it is.
        await speaker.setPeers(peers);
        return;
      } catch (err) {
        log.warn({ event: 'bgpSetupFailed', retryable: retryable(err), err: (err as Error).message });
        // The speaker keeps the desired global and peers and applies them when gobgpd answers.
        if (retryable(err)) return;
        await sleep(clock, BGP_SETUP_RETRY_MS);
      }
    }
  };

  return {
    start() {
      void setup();
      void follow();
    },
    states: () => ({ ...states }),
    async setPeers(next) {
      const kept = new Set(next.map((p) => p.address));
      for (const address of new Set([...peers.map((p) => p.address), ...Object.keys(states)])) {
        if (kept.has(address)) continue;
        delete states[address];
        metrics.forgetSession(address);
      }
      peers = next;
      try {
        await speaker.setPeers(next);
      } catch (err) {
        if (!retryable(err)) throw err;
        log.warn({ event: 'bgpPeersDeferred', err: (err as Error).message });
      }
      opts.onChange();
    },
    close() {
      closed = true;
    },
  };
}
