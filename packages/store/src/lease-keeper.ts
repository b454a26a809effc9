/**
 * Keeps a lease alive: one renewal (a LeaseKeepAlive request and its answer, on a stream of its own) every third of
 * the TTL, as etcd's Go client paces them, each bounded by the per-endpoint attempt deadline.
 *
 * Why not etcd3's autoKeepAlive: it holds one stream for the lease's life, and a stream has no deadline. A member
 * that hangs under it (SIGSTOP, a frozen VM) is found only by gRPC keepalive (6 s: connection.ts), after the last
 * renewal may have gone out a third of the TTL before the hang: 3.3 + 6 s of a 10 s TTL, plus the reconnection,
 * and a loaded CI machine lost a node's lease that way (test/etcd-failover.int.test.ts). Here a renewal that is
 * not answered within the deadline fails, the stream's error marks its endpoint down (endpoint-health.ts), and the
 * next attempt, RENEW_RETRY_MS later, goes to another member: the longest gap between renewals is
 * TTL/3 + attemptMs + RENEW_RETRY_MS (5.5 s with the defaults), not TTL/3 + 6 s + the reconnection.
 *
 * Only etcd says a lease is gone (a renewal answered with TTL 0: etcd3 emits the lease's 'lost' event). No local
 * clock declares it: a leader change renews every lease for a TTL plus an election timeout (etcd's lessor
 * Promote), and a member rejoining after a hang can force one (etcd 3.4 has no pre-vote by default), so a lease
 * unanswered for a TTL may well be alive; while no member answers nobody can tell, and the first that does answers.
 */
import { EtcdLeaseInvalidError, type Lease } from 'etcd3';

/** Pause before a failed renewal is tried again (on another endpoint when the failed one was marked down). */
export const RENEW_RETRY_MS = 200;

/**
 * The longest time between two answered renewals while one member hangs, in ms: a renewal sent to it waits the
 * attempt deadline, the retry goes elsewhere. A lease outlives a hung member only if this is below its TTL.
 */
export function longestRenewalGapMs(ttlS: number, attemptMs: number): number {
  return Math.ceil((ttlS * 1000) / 3) + attemptMs + RENEW_RETRY_MS;
}

export interface LeaseKeeperOptions {
  readonly ttlS: number;
  /** Deadline of one renewal, in ms (connection.ts `attemptMs`). */
  readonly attemptMs: number;
  /** A renewal failed; it is tried again after RENEW_RETRY_MS, doubling up to the renewal interval. */
  readonly onRenewFailed: (err: Error) => void;
  /** A renewal was answered (the lease lives); not awaited. */
  readonly onRenewed?: () => void;
}

export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private retryMs = RENEW_RETRY_MS;

  constructor(
    private readonly lease: Lease,
    private readonly options: LeaseKeeperOptions,
  ) {}

  private get intervalMs(): number {
    return (this.options.ttlS * 1000) / 3;
  }

  start(): void {
    this.schedule(this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), delayMs);
  }

  private async renew(): Promise<void> {
    this.timer = undefined;
    if (this.stopped || this.lease.revoked()) return;
    try {
      await this.lease.keepaliveOnce({ deadline: Date.now() + this.options.attemptMs });
      this.retryMs = RENEW_RETRY_MS;
      this.schedule(this.intervalMs);
      this.options.onRenewed?.();
    } catch (err) {
      if (this.stopped || err instanceof EtcdLeaseInvalidError) return; // etcd3 emitted 'lost'
      this.options.onRenewFailed(err instanceof Error ? err : new Error(String(err)));
      this.schedule(this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, this.intervalMs);
    }
  }
}
