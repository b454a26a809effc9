/** What every probe type shares: its target, options and result, and how a probe ends exactly once. */
import { isIP } from 'node:net';
import { escapeControls, type HealthCheck } from '@l4fleet/config';

export interface ProbeTarget {
  readonly address: string;
  readonly port: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly latencyMs: number;
  /** Why it failed: `timeout`, `ECONNREFUSED`, `status 503`, ... */
  readonly reason?: string;
}

/** A probe of one type: the address it probes, the port there (the check's or the member's), the check, options. */
export type PortProbe = (
  target: ProbeTarget,
  port: number,
  check: HealthCheck,
  opts?: ProbeOptions,
) => Promise<ProbeResult>;

export interface ProbeOptions {
  /**
   * Source address of the probe (the agent's `health.sourceAddress`), used only for a target of its family: a socket
   * bound to an IPv4 address cannot reach an IPv6 one (EINVAL). Default, and for the other family: the kernel's.
   */
  readonly sourceAddress?: string;
  /**
   * The roots an https check with `verifyCertificate` trusts (PEM: the agent's `health.caFile`); default Node's
   * bundled public roots, plus NODE_EXTRA_CA_CERTS.
   */
  readonly ca?: string | Buffer;
  /**
   * Ends the probe when aborted (the checker stops its check: member removed, check changed, checker closed): its
   * socket is closed at once and it resolves down with STOPPED_REASON, instead of holding the socket and its
   * concurrency slot until its timeoutMs.
   */
  readonly signal?: AbortSignal;
}

/** `opts` for a probe of `address`: without `sourceAddress` when it is of the other family (or no address at all). */
export function optionsFor(address: string, opts?: ProbeOptions): ProbeOptions | undefined {
  if (opts?.sourceAddress === undefined || isIP(opts.sourceAddress) === isIP(address)) return opts;
  const { sourceAddress: _other, ...rest } = opts;
  return rest;
}

/**
 * Ends a probe once: the first call resolves (with the time since `started`) and cleans up; later calls do nothing.
 * Every probe's reason passes here, so here its control characters (C0, DEL, C1: \p{Cc}) become `\uXXXX`
 * (escapeControls). A reason quotes what a member sent (a reply, a grpc-message, an agent's description) and travels
 * to etcd status records, NATS `member.health` events, logs, `get members` and the dashboard: an escape sequence there
 * (ESC, BEL, or C1's CSI 0x9b, which JSON.stringify leaves raw) would retitle or clear an operator's terminal, and a
 * line end would start a line of its own. Nothing else changes: white space in the quoted parts (the check's
 * `expect`, the member's reply) is quoted as it is, two spaces or a no-break space included.
 */
export function finisher(started: number, resolve: (r: ProbeResult) => void, cleanup: () => void): Finish {
  let done = false;
  return (ok, reason) => {
    if (done) return;
    done = true;
    cleanup();
    resolve({
      ok,
      latencyMs: performance.now() - started,
      ...(reason === undefined ? {} : { reason: escapeControls(reason) }),
    });
  };
}

/** How a probe ends: up, or down with the reason. */
export type Finish = (ok: boolean, reason?: string) => void;

/**
 * A probe's event listener that cannot throw: a throw inside an emitter's listener is an uncaught exception, which
 * ends the agent (and every agent probing the same member), so it ends this probe down instead, naming the error.
 */
export function guarded<A extends unknown[]>(finish: Finish, listener: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      listener(...args);
    } catch (err) {
      finish(false, `probe error: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

export const errCode = (err: unknown): string =>
  (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));

/** The reason of a probe ended by its signal (its check was stopped); the checker drops such a result. */
export const STOPPED_REASON = 'stopped';

/**
 * finisher() with the probe's timeout and its signal: at `timeoutMs` after now the probe ends down with
 * `timeoutReason()` (read then, so it can say what the probe saw meanwhile), and when `signal` aborts (now or later) it
 * ends at once, down with STOPPED_REASON; either way `cleanup` closes its socket. Any end clears the timer and the
 * abort listener first.
 */
export function timedFinisher(
  started: number,
  timeoutMs: number,
  resolve: (r: ProbeResult) => void,
  cleanup: () => void,
  opts: { readonly signal?: AbortSignal | undefined; readonly timeoutReason?: () => string } = {},
): Finish {
  const { signal, timeoutReason = () => 'timeout' } = opts;
  const onAbort = () => finish(false, STOPPED_REASON);
  const timer = setTimeout(() => finish(false, timeoutReason()), timeoutMs);
  const finish = finisher(started, resolve, () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    cleanup();
  });
  // An already aborted signal ends the probe now: its socket is closed before any of its events (they come on a
  // later tick), and the listeners its caller adds next see an ended probe.
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return finish;
}
