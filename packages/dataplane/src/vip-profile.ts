/**
 * A VIP's profile (idle, TCP handshake and close timeouts, what to do on timeout) as the data planes use it: the
 * table's own profile checked again (the data plane validates its whole input, whatever the caller checked), or the
 * defaults of the VIP's protocol when the table has none. Where each field applies: docs/design/0012-nat-and-profiles.md.
 */
import {
  defaultProfile,
  MAX_IDLE_TIMEOUT_S,
  MAX_TCP_CLOSE_TIMEOUT_S,
  MAX_TCP_HANDSHAKE_TIMEOUT_S,
  MIN_PROFILE_TIMEOUT_S,
  type VipProfile,
} from '@l4fleet/config';
import type { Protocol } from '@l4fleet/maglev';
import { DataPlaneError } from './errors.js';

/** A profile with every field its protocol uses (tcp: all; udp: idle and onTimeout `drop`). */
export type ResolvedProfile = Required<VipProfile>;

function seconds(label: string, field: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < MIN_PROFILE_TIMEOUT_S || v > max) {
    throw new DataPlaneError(
      'VIP_INVALID',
      `vip ${label}: profile.${field}: ${JSON.stringify(v) ?? String(v)} is not a timeout in seconds (${MIN_PROFILE_TIMEOUT_S}-${max})`,
    );
  }
  return v;
}

/** The profile of a VIP of `protocol`; throws DataPlaneError VIP_INVALID naming the field and the value. */
export function resolveProfile(label: string, protocol: Protocol, p: VipProfile | undefined): ResolvedProfile {
  const d = defaultProfile(protocol);
  const given = p ?? d;
  if (given === null || typeof given !== 'object') {
    throw new DataPlaneError('VIP_INVALID', `vip ${label}: profile: ${JSON.stringify(given)} is not an object`);
  }
  if (given.onTimeout !== 'drop' && given.onTimeout !== 'reset') {
    throw new DataPlaneError(
      'VIP_INVALID',
      `vip ${label}: profile.onTimeout: ${JSON.stringify(given.onTimeout)} is not "drop" or "reset"`,
    );
  }
  if (protocol === 'udp' && given.onTimeout === 'reset') {
    throw new DataPlaneError('VIP_INVALID', `vip ${label}: profile.onTimeout: "reset" applies only to tcp VIPs`);
  }
  if (protocol === 'udp') {
    // Refused, not ignored: parseFleet refuses them on a udp VIP too, so a caller that sends one has a bug.
    for (const field of ['tcpHandshakeTimeoutS', 'tcpCloseTimeoutS'] as const) {
      const v: unknown = given[field];
      if (v !== undefined) {
        throw new DataPlaneError(
          'VIP_INVALID',
          `vip ${label}: profile.${field}: ${JSON.stringify(v) ?? String(v)} applies only to tcp VIPs`,
        );
      }
    }
  }
  return {
    idleTimeoutS: seconds(label, 'idleTimeoutS', given.idleTimeoutS, MAX_IDLE_TIMEOUT_S),
    // UDP has no handshake or close: the fields are absent there, and carried as 0 so a resolved profile is complete.
    tcpHandshakeTimeoutS:
      protocol === 'tcp'
        ? seconds(
            label,
            'tcpHandshakeTimeoutS',
            given.tcpHandshakeTimeoutS ?? d.tcpHandshakeTimeoutS,
            MAX_TCP_HANDSHAKE_TIMEOUT_S,
          )
        : 0,
    tcpCloseTimeoutS:
      protocol === 'tcp'
        ? seconds(label, 'tcpCloseTimeoutS', given.tcpCloseTimeoutS ?? d.tcpCloseTimeoutS, MAX_TCP_CLOSE_TIMEOUT_S)
        : 0,
    onTimeout: given.onTimeout,
  };
}
