/** The dashboard's options, validated at the edge: every problem names the option and the value. */
import { maskUserinfo, parseListenAddress } from '@l4fleet/config';
import { DashboardError } from './errors.js';

/** Loopback only unless told otherwise: reads are open, so the default must not expose the fleet. */
export const DEFAULT_LISTEN = '127.0.0.1:9470';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * `ADDRESS:PORT`, `[V6]:PORT` or `localhost:PORT`, the address canonical (so the URL printed is what was bound); port 0
 * picks a free one. @l4fleet/config's rule, shared with the agent's metrics.listen and `backend agent --listen`: a
 * name or `300.1.1.1` failed only at the bind (getaddrinfo ENOTFOUND), and `0:0` bound 0.0.0.0 but printed
 * http://0:PORT/.
 */
export function parseListen(text: string): ListenAddress {
  try {
    const { host, port } = parseListenAddress(text, 'listen');
    return { host, port };
  } catch (err) {
    throw new DashboardError('OPTION_INVALID', (err as Error).message, { cause: err });
  }
}

/**
 * `text` (`NODE=URL` or a URL) with its userinfo up to the last `@` as `***@` (@l4fleet/config maskUserinfo's rule, the
 * `NODE=` kept): an option's value goes into errors, and a metrics error reaches every page and /api/state. The last
 * `@`, not the first `/`: a password may hold a `/`, and a URL without a scheme has userinfo all the same.
 */
export function maskPassword(text: string): string {
  const node = /^[^=\s/@]+=/.exec(text)?.[0] ?? '';
  return node + maskUserinfo(text.slice(node.length));
}

/**
 * `node1=http://127.0.0.1:9469/metrics,node2=...`: where each agent's /metrics is (the agents' `metrics.listen`).
 * A bare `http://host:port` gets `/metrics` appended.
 */
export function parseMetricsTargets(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const all = text ?? '';
  // A password may hold a ',' (the list's separator): split first, a piece may lack the '@' masking goes by and be
  // shown as it is. With an '@' anywhere, errors show the whole value masked to its last '@', never a piece.
  const whole = all.includes('@') ? maskPassword(all) : undefined;
  for (const part of all
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([^=\s]+)=(https?:\/\/\S+)$/.exec(part);
    const shown = whole ?? part;
    if (!m)
      throw new DashboardError(
        'OPTION_INVALID',
        `agent-metrics: ${JSON.stringify(shown)} is not NODE=http://HOST:PORT[/metrics]`,
      );
    let url: URL;
    try {
      url = new URL(m[2] as string);
    } catch {
      // A port past 65535, an unclosed [v6], a bad %-escape: URL's own TypeError names neither the option nor the value
      // (and is not kept as the cause: its `input` is the value unmasked).
      throw new DashboardError(
        'OPTION_INVALID',
        `agent-metrics: ${JSON.stringify(shown)}: ${JSON.stringify(whole?.replace(/^[^=\s/@]+=/, '') ?? m[2])} is not a URL`,
      );
    }
    // Node's fetch refuses a URL with credentials, and its error (password included) would be each scrape's error.
    if (url.username !== '' || url.password !== '') {
      throw new DashboardError(
        'OPTION_INVALID',
        `agent-metrics: ${JSON.stringify(shown)}: a user or password in the URL is not supported (an agent's /metrics takes none)`,
      );
    }
    if (url.pathname === '/') url.pathname = '/metrics';
    if (out.has(m[1] as string))
      throw new DashboardError('OPTION_INVALID', `agent-metrics: node "${m[1]}" given twice`);
    out.set(m[1] as string, url.toString());
  }
  return out;
}
