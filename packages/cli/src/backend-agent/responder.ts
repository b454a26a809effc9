/**
 * `l4fleet backend agent`: answers the fleet's `agent` health checks (HAProxy's agent-check) with this backend's state
 * file, one line per connection, then closes. Whatever a node sends first (`payload`, HAProxy's agent-send) is not
 * read: one backend, one state.
 *
 * The file is read at every connection (a node asks every `intervalMs`; the file is one short line), so a state
 * written by `l4fleet backend state` or a deploy script counts at the next probe, with nothing to reload. A file that
 * is not a state is logged with what is wrong and the last good state keeps being answered: a half-edited file must
 * not take the backend out of every table, nor put one in that was drained on purpose.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { type BackendState, DEFAULT_BACKEND_STATE, readStateFile, stateLine } from './state-file.js';

/**
 * Connections served at once. Node accepts any more and closes them at once (the node's probe then fails with 'the
 * agent closed without a reply' and retries at its next interval), so no connection may outlive
 * AGENT_CONNECTION_TIMEOUT_MS: peers that hold connections open must not keep every node's probe out.
 */
export const MAX_AGENT_CONNECTIONS = 256;
/**
 * A connection is destroyed this long after it was accepted, whatever the peer does (never reads, never closes, or
 * keeps sending): a node's probe has its own, shorter timeout.
 */
export const AGENT_CONNECTION_TIMEOUT_MS = 5_000;
export const DEFAULT_AGENT_PORT = 9777;

export interface ResponderOptions {
  /** `ADDR:PORT` or `[v6]:PORT` to listen on (port 0: the kernel picks one). */
  readonly listen: readonly string[];
  readonly stateFile: string;
  readonly logger: Logger;
  /** How long a connection may last from its accept, in ms; default AGENT_CONNECTION_TIMEOUT_MS. */
  readonly connectionTimeoutMs?: number;
}

export interface Responder {
  /** Where it listens, as `ADDR:PORT` (`[v6]:PORT`), in the order given. */
  readonly addresses: readonly string[];
  /** The state it answers now (the last good one read). */
  readonly state: () => BackendState;
  close(): Promise<void>;
}

/** Splits `ADDR:PORT` / `[v6]:PORT`; a clear error naming the flag's value otherwise. */
export function listenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65_535) {
    throw new Error(
      `--listen ${JSON.stringify(text)}: not ADDR:PORT or [IPv6]:PORT (e.g. 0.0.0.0:${DEFAULT_AGENT_PORT})`,
    );
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

export async function startResponder(opts: ResponderOptions): Promise<Responder> {
  const log = opts.logger;
  let current: BackendState = DEFAULT_BACKEND_STATE;
  let lastProblem = '';
  const refresh = async (): Promise<BackendState> => {
    try {
      const next = await readStateFile(opts.stateFile);
      if (stateLine(next) !== stateLine(current)) log.info({ event: 'backendState', state: stateLine(next) });
      current = next;
      lastProblem = '';
    } catch (err) {
      const problem = (err as Error).message;
      // Once per distinct problem: a node asks every interval, the log need not say it each time.
      if (problem !== lastProblem) log.error({ event: 'backendStateRejected', problem, answering: stateLine(current) });
      lastProblem = problem;
    }
    return current;
  };
  await refresh();

  const connectionTimeoutMs = opts.connectionTimeoutMs ?? AGENT_CONNECTION_TIMEOUT_MS;
  /** The open connections, for close(): server.close() would wait until each peer ends its own. */
  const sockets = new Set<Socket>();
  const serve = (sock: Socket): void => {
    sockets.add(sock);
    // An absolute deadline, not sock.setTimeout: that one is an idle timer, restarted by every byte, so a peer sending
    // one a second would keep the connection for as long as it liked.
    const deadline = setTimeout(() => sock.destroy(), connectionTimeoutMs);
    sock.once('close', () => {
      clearTimeout(deadline);
      sockets.delete(sock);
    });
    sock.on('error', () => undefined); // a node that went away; nothing to do
    sock.on('data', () => undefined); // agent-send: read and ignored, so the peer never blocks on a full window
    void refresh().then((s) => {
      if (!sock.destroyed) sock.end(`${stateLine(s)}\n`);
    });
  };

  const servers: Server[] = [];
  const addresses: string[] = [];
  try {
    for (const text of opts.listen) {
      const { host, port } = listenAddress(text);
      const server = createServer(serve);
      server.maxConnections = MAX_AGENT_CONNECTIONS;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      servers.push(server);
      const a = server.address();
      const bound = typeof a === 'object' && a ? a.port : port;
      addresses.push(host.includes(':') ? `[${host}]:${bound}` : `${host}:${bound}`);
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  return {
    addresses,
    state: () => current,
    async close() {
      const closed = Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
  };
}
