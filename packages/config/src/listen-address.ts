/**
 * A listener's `ADDRESS:PORT`, read one way for every listener of the project (the agent's metrics.listen,
 * `l4fleet backend agent --listen`, `l4fleet dashboard --listen`). The address must be one a bind takes as written:
 * Node hands anything else to getaddrinfo, so `300.1.1.1` failed only at the bind (ENOTFOUND, naming no option) and
 * inet_aton's shorthand (`0`, `127.1`) bound 0.0.0.0 or 127.0.0.1 while the listener reported the text it was given.
 */
import { canonicalAddress, endpointText } from './address.js';
import { ConfigError } from './errors.js';
import { showValue } from './fields.js';

/** The forms taken, for messages and help texts. */
export const LISTEN_ADDRESS_FORM =
  'ADDRESS:PORT (an IPv4 address or localhost, IPv6 as [ADDRESS]:PORT; port 0-65535, 0 for a free one)';

export interface ListenAddress {
  /** The address in canonical form (IPv6 per RFC 5952, without brackets), or `localhost`. */
  readonly host: string;
  /** 0-65535; 0: the kernel picks a free port. */
  readonly port: number;
  /** `ADDRESS:PORT` / `[V6]:PORT` of the canonical host: what a listener reports back. */
  readonly text: string;
}

/** `localhost`, a dotted-quad IPv4 address, or an IPv6 one when bracketed; undefined for anything else. */
function listenHost(v6: string | undefined, other: string | undefined): string | undefined {
  if (other === 'localhost') return other;
  const text = v6 ?? other ?? '';
  try {
    const a = canonicalAddress(text);
    return a.family === (v6 === undefined ? 4 : 6) ? a.address : undefined;
  } catch {
    return undefined; // reported by the caller, with the whole value
  }
}

/**
 * Parses a listener's address; throws ConfigError INVALID whose one problem is at `field` (the option or the config
 * path the caller reads it from: `--listen`, `metrics.listen`) and shows the value.
 */
export function parseListenAddress(text: unknown, field: string): ListenAddress {
  const m = typeof text === 'string' ? /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) : null;
  const host = m ? listenHost(m[1], m[2]) : undefined;
  const port = m ? Number(m[3]) : -1;
  if (host === undefined || port > 65_535) {
    throw new ConfigError('INVALID', [{ path: field, message: `${showValue(text)} is not ${LISTEN_ADDRESS_FORM}` }]);
  }
  return { host, port, text: endpointText(host, port) };
}
