/**
 * bgp.listenAddresses: gobgpd's StartBgp (GoBGP 3.10 server.go) binds one listener per address on bgp.listenPort and
 * fails whole at the first bind that fails. Go listeners set SO_REUSEADDR only, under which Linux refuses a second
 * listening socket on an address:port already listened on, or on any address of a family whose wildcard (0.0.0.0,
 * `::`) is (EADDRINUSE); Go makes the `::` listener IPv6-only, so 0.0.0.0 and `::` (gobgpd's default) go together.
 * A repeat (also in another spelling) or such an overlap would fail BGP setup every 5 s, never announcing: refused.
 */
import { listField as list, type Problems } from '@l4fleet/config';
import { addr } from './fields.js';

const WILDCARDS: Readonly<Record<string, string>> = { '0.0.0.0': 'IPv4', '::': 'IPv6' };
const CLASH = ": gobgpd's second listener on the port would fail (EADDRINUSE), and BGP setup with it";

const familyOf = (a: string): string => (a.includes(':') ? 'IPv6' : 'IPv4');

export function listenAddresses(p: Problems, v: unknown): string[] {
  const path = 'bgp.listenAddresses';
  const addresses = list(p, path, v).map((a, i) => addr(p, `${path}[${i}]`, a));
  addresses.forEach((a, i) => {
    for (const [j, before] of addresses.slice(0, i).entries()) {
      if (before === a) {
        p.add(`${path}[${i}]`, `"${a}" duplicates ${path}[${j}]${CLASH}`);
        return;
      }
      const wildcard = WILDCARDS[a] !== undefined ? a : WILDCARDS[before] !== undefined ? before : undefined;
      if (wildcard !== undefined && familyOf(a) === familyOf(before)) {
        const all = `"${wildcard}" is every ${WILDCARDS[wildcard]} address`;
        p.add(`${path}[${i}]`, `"${a}" overlaps ${path}[${j}] ("${before}"): ${all}${CLASH}`);
        return;
      }
    }
  });
  return addresses;
}
