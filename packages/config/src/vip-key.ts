/** Text keys for VIPs and pool members, used in etcd keys, CLI arguments and status maps. */

import { canonicalAddress, endpointText } from './address.js';
import { ConfigError } from './errors.js';
import type { Member, Protocol, Vip } from './types.js';

/** `198.51.100.10:80/tcp`, `[2001:db8::53]:53/udp`. */
export function vipKey(vip: Pick<Vip, 'address' | 'port' | 'protocol'>): string {
  return `${endpointText(vip.address, vip.port)}/${vip.protocol}`;
}

/** Parses `ADDR:PORT/PROTO` (IPv6 as `[ADDR]:PORT/PROTO`); the address comes back canonical. */
export function parseVipKey(text: string): { address: string; port: number; protocol: Protocol } {
  const m = /^\[([^\]]+)\]:(\d{1,5})\/(tcp|udp)$/.exec(text) ?? /^([^:[\]/]+):(\d{1,5})\/(tcp|udp)$/.exec(text);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65_535) {
    throw new ConfigError('INVALID', [
      { path: 'vip', message: `${JSON.stringify(text)} is not ADDR:PORT/tcp|udp (IPv6 as [ADDR]:PORT/PROTO)` },
    ]);
  }
  try {
    return { address: canonicalAddress(m[1] as string, 'vip').address, port, protocol: m[3] as Protocol };
  } catch (err) {
    throw new ConfigError(
      'INVALID',
      [{ path: 'vip', message: `${JSON.stringify(text)}: ${String(m[1])} is not an IP address` }],
      {
        cause: err,
      },
    );
  }
}

/** Identity of a member in health reports and decided-status maps: `${pool}/${member.name}`. */
export function memberKey(pool: string, member: Pick<Member, 'name'> | string): string {
  return `${pool}/${typeof member === 'string' ? member : member.name}`;
}
