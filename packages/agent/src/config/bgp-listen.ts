/**
 * bgp.listenAddresses: gobgpd's StartBgp (GoBGP 3.10 server.go) binds one listener per address on bgp.listenPort and
 * fails whole at the first bind that fails. Go listeners set SO_REUSEADDR only, under which Linux refuses a second
 * listening socket on an address:port already listened on, or on any address of a family whose wildcard (0.0.0.0,
 * `::`) is (EADDRINUSE); Go makes the `::` listener IPv6-only, so 0.0.0.0 and `::` (gobgpd's default) go together.
 * An IPv4-mapped address (::ffff:a.b.c.d) gobgpd opens as an IPv4 listener on a.b.c.d (newTCPListener picks tcp6 only
 * when ip.To4() is nil), so it is compared as a.b.c.d. A repeat (also in another spelling) or such an overlap would
 * fail BGP setup every 5 s, never announcing: refused. With listenPort -1 gobgpd opens no listener: nothing clashes.
 * A link-local address is refused whatever the port: no field takes the zone its bind needs.
 */
import { listField as list, type Problems } from '@l4fleet/config';
import { isLinkLocal6, linkLocal6Problem } from './bfd.js';
import { addr } from './fields.js';

const WILDCARDS: Readonly<Record<string, string>> = { '0.0.0.0': 'IPv4', '::': 'IPv6' };
const CLASH = ": gobgpd's second listener on the port would fail (EADDRINUSE), and BGP setup with it";

/**
 * The address a listener is opened on: ::ffff:a.b.c.d (canonical: ::ffff:XXXX:XXXX) as a.b.c.d, else itself. Also
 * what preflight asks the host about: the interfaces list a.b.c.d, never its mapped spelling.
 */
export function bound(a: string): string {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (!m) return a;
  const [hi, lo] = [Number.parseInt(m[1] as string, 16), Number.parseInt(m[2] as string, 16)];
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
}

const familyOf = (a: string): string => (a.includes(':') ? 'IPv6' : 'IPv4');
/**
 * `a` in problems, in the canonical text the parsed address keeps (addr(): `::ffff:198.18.0.11` in the file is shown as
 * `::ffff:c612:b`, not as the file wrote it), with the IPv4 address a mapped one binds: `"::ffff:c612:b" (IPv4-mapped
 * 198.18.0.11)`, or `"a"`.
 */
export const shown = (a: string): string => (bound(a) === a ? `"${a}"` : `"${a}" (IPv4-mapped ${bound(a)})`);

export function listenAddresses(p: Problems, v: unknown, listenPort: number): string[] {
  const path = 'bgp.listenAddresses';
  const addresses = list(p, path, v).map((a, i) => {
    const address = addr(p, `${path}[${i}]`, a);
    // gobgpd's bind(2) of fe80::/10 without a scope fails with EINVAL (RFC 4007), and BGP setup with it, every 5 s.
    if (isLinkLocal6(address)) p.add(`${path}[${i}]`, linkLocal6Problem(a));
    return address;
  });
  if (listenPort <= 0) return addresses;
  const listeners = addresses.map(bound);
  listeners.forEach((a, i) => {
    for (const [j, before] of listeners.slice(0, i).entries()) {
      if (before === a) {
        p.add(`${path}[${i}]`, `${shown(addresses[i] as string)} duplicates ${path}[${j}]${CLASH}`);
        return;
      }
      const wildcard = WILDCARDS[a] !== undefined ? a : WILDCARDS[before] !== undefined ? before : undefined;
      if (wildcard !== undefined && familyOf(a) === familyOf(before)) {
        const all = `"${wildcard}" is every ${WILDCARDS[wildcard]} address`;
        const other = `${path}[${j}] (${shown(addresses[j] as string)})`;
        p.add(`${path}[${i}]`, `${shown(addresses[i] as string)} overlaps ${other}: ${all}${CLASH}`);
        return;
      }
    }
  });
  return addresses;
}
