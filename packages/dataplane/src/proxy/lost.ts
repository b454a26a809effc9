/**
 * Listeners lost under the proxy: a VIP's listening socket closed other than by the driver (closed by a fault, or gone
 * with an error after its bind). The VIP then takes no new connection or datagram while the agent reports ready and
 * the node announces it, so every apply and verify opens such a listener again, and counts it as a listener change
 * (verify reports it as a repair, as the kernel drivers do a rule deleted by hand). One that cannot listen again fails
 * the apply or verify, after the driver made every other change of it.
 */
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import type { VipListener } from './tcp.js';

export interface ListeningVip {
  /** The VIP's label (`address:port/protocol`). */
  readonly label: string;
  /** Where its listener is bound (listenLabel). */
  readonly listen: string;
  readonly listener: VipListener;
}

/** `host:port/protocol`, an IPv6 host in brackets: where a listener is bound, for logs and errors. */
export function listenLabel(host: string, port: number, protocol: string): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}/${protocol}`;
}

export interface Relistened<T> {
  /** The VIPs whose listener opened again. */
  readonly opened: Set<T>;
  /**
   * LISTEN_FAILED naming each VIP that cannot listen again (another socket took the port) and where it listened;
   * undefined when none failed.
   */
  readonly failure: DataPlaneError | undefined;
}

/**
 * Opens the listener of each VIP in `vips` that lost it again. Every lost listener is tried; the failures are returned,
 * not thrown, so that the caller makes every other change of its apply before it fails it (a VIP whose port another
 * process took must not hold back the table changes of the others: members taken out by health would keep their
 * slots on every VIP of the node).
 */
export async function relistenLost<T extends ListeningVip>(vips: Iterable<T>, log: Logger): Promise<Relistened<T>> {
  const opened = new Set<T>();
  const failures: DataPlaneError[] = [];
  for (const v of vips) {
    if (v.listener.listening) continue;
    log.warn({ event: 'listenerLost', vip: v.label, listen: v.listen });
    try {
      await v.listener.relisten();
      opened.add(v);
      log.warn({ event: 'listenerReopened', vip: v.label, listen: v.listen });
    } catch (err) {
      failures.push(
        new DataPlaneError(
          'LISTEN_FAILED',
          `vip ${v.label}: its listener on ${v.listen} was lost and cannot listen again: ${(err as Error).message}`,
          { cause: err },
        ),
      );
    }
  }
  return { opened, failure: joinFailures(failures) };
}

/** One LISTEN_FAILED of several: their messages joined, each kept as a cause. */
export function joinFailures(failures: readonly DataPlaneError[]): DataPlaneError | undefined {
  if (failures.length <= 1) return failures[0];
  return new DataPlaneError('LISTEN_FAILED', failures.map((f) => f.message).join('; '), {
    cause: new AggregateError(failures),
  });
}

/**
 * `err` carrying the labels of the VIPs in `reopened` as DataPlaneError.repaired: a call that reopened lost listeners
 * and then failed still repaired them, and the caller counts that drift (it would otherwise never be counted: the
 * next call finds them listening). Anything but a DataPlaneError is returned as it is.
 */
export function withRepaired(err: unknown, reopened: ReadonlySet<{ readonly label: string }>): unknown {
  if (!(err instanceof DataPlaneError)) return err;
  const carried = new DataPlaneError(err.code, err.message, {
    cause: err.cause,
    repaired: [...reopened].map((r) => r.label),
  });
  if (err.stack !== undefined) carried.stack = err.stack;
  return carried;
}
