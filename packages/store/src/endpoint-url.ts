/**
 * etcd client URLs in the one form the store can dial: `http(s)://HOST:PORT`, HOST a name, IPv4 or [IPv6], PORT
 * 1-65535, nothing else, and one scheme for all of them. etcd3 1.1 takes a URL apart by itself (the scheme stripped,
 * the rest given to grpc-js as host:port): without a port it dials 443 even over http, a path (`/v3/`) makes the host
 * unparsable (a DNS failure at the first call), a user (`user@`) is not etcd auth, and http:// mixed with https://
 * throws in its constructor ("a mix of secure and insecure hosts"). The agent's config (etcd.endpoints) and the CLI
 * (--etcd) both check with this, before anything is dialled.
 */

import { maskUserinfo } from '@l4fleet/config';

/** The form, as messages say it. */
export const ETCD_ENDPOINT_FORM = 'http(s)://HOST:PORT (PORT 1-65535; no user, path or query)';

const ENDPOINT = /^(https?):\/\/(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;

export interface EtcdEndpointProblem {
  /** Index of the endpoint at fault in the list. */
  readonly index: number;
  /** Names the endpoint (quoted) and what is wrong. */
  readonly message: string;
}

/**
 * `url` quoted, its userinfo (`user:password@`, with or without a scheme) as `***@` (@l4fleet/config maskUserinfo).
 * The message reaches stderr, the agent's log and, on a reload, the config.reload event.
 */
function shown(url: string): string {
  return JSON.stringify(maskUserinfo(url));
}

/** Every problem of `endpoints` (none: the store can dial them); an empty list is the caller's to refuse. */
export function etcdEndpointProblems(endpoints: readonly string[]): EtcdEndpointProblem[] {
  const problems: EtcdEndpointProblem[] = [];
  let scheme: { readonly name: string; readonly url: string } | undefined;
  endpoints.forEach((url, index) => {
    const m = ENDPOINT.exec(url);
    const port = Number(m?.[2] ?? Number.NaN);
    if (!m || !(port >= 1 && port <= 65_535)) {
      problems.push({ index, message: `${shown(url)} is not ${ETCD_ENDPOINT_FORM}` });
      return;
    }
    const name = m[1] as string;
    if (!scheme) scheme = { name, url };
    else if (scheme.name !== name) {
      problems.push({
        index,
        message: `${shown(url)} is ${name}:// but ${shown(scheme.url)} is ${scheme.name}://: all endpoints use one scheme (the etcd client dials them all alike)`,
      });
    }
  });
  return problems;
}
