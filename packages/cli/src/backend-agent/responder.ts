/**
 * `l4fleet backend agent`: answers the fleet's `agent` health checks (HAProxy's agent-check) with this backend's state
 * file, one line per connection, then closes. Whatever a node sends first (`payload`, HAProxy's agent-send) is not
 * read: one backend, one state.
 *
 * The file is read at every connection (a node asks every `intervalMs`; the file is one short line), so a state
 * written by `l4fleet backend state` or a deploy script counts at the next probe, with nothing to reload. A file that
 * is not a state is logged with what is wrong and the last good state keeps being answered: a half-edited file must
 * not take the backend out of every table, nor put one in that was drained on purpose. With no good state read yet
 * (a bad or unreadable file since the start), it answers `down` with the problem as its reason (unreadState).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { type ListenAddress, parseListenAddress } from '@l4fleet/config';
import type { Logger } from 'pino';
import {
  type BackendState,
  DEFAULT_BACKEND_STATE,
  MAX_STATE_REASON_CHARS,
  readStateFile,
  stateLine,
} from './state-file.js';

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
/**
 * Every address of both families: Node binds `::` dual-stack (IPV6_V6ONLY off, whatever net.ipv6.bindv6only says),
 * so a member probed at its IPv6 address is answered as well as at its IPv4 one. On a kernel without IPv6
 * (ipv6.disable=1) `::` cannot be bound and 0.0.0.0 is used instead.
 */
export const DEFAULT_AGENT_LISTEN = `[::]:${DEFAULT_AGENT_PORT}`;

export interface ResponderOptions {
  /** `ADDR:PORT`, `[v6]:PORT` or `localhost:PORT` to listen on (port 0: the kernel picks one). */
  readonly listen: readonly string[];
  readonly stateFile: string;
  readonly logger: Logger;
  /** How long a connection may last from its accept, in ms; default AGENT_CONNECTION_TIMEOUT_MS. */
  readonly connectionTimeoutMs?: number;
}

export interface Responder {
  /** Where it listens, as `ADDR:PORT` (`[v6]:PORT`) with the address canonical and the port bound, in the order given. */
  readonly addresses: readonly string[];
  /** The state it answers now (the last good one read). */
  readonly state: () => BackendState;
  close(): Promise<void>;
}

/**
 * One --listen value (@l4fleet/config parseListenAddress, the agent's and the dashboard's rule): an address a bind
 * takes as written, canonical. Throws ConfigError naming the flag and the value: `300.1.1.1:9777` failed only at the
 * bind (getaddrinfo ENOTFOUND), and `0:0` bound 0.0.0.0 while reported as listening on 0:PORT.
 */
export function listenAddress(text: string): ListenAddress {
  return parseListenAddress(text, '--listen');
}

/**
 * What is answered when the state file is there but was never read (unreadable, or not a state, since the start):
 * down, not `ready`. There is no last good state yet, and the file may be a `maint` the agent cannot read (a mode
 * its user may not read): answering ready would put a backend taken out on purpose back into every table.
 */
export function unreadState(problem: string): BackendState {
  const printable = [...problem].map((c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? ' ' : c)).join('');
  return { word: 'down', reason: `state file not read: ${printable}`.slice(0, MAX_STATE_REASON_CHARS) };
}

export async function startResponder(opts: ResponderOptions): Promise<Responder> {
  // Every value checked before anything is read or bound: a bad second one must not leave the first bound.
  const listens = opts.listen.map(listenAddress);
  const log = opts.logger;
  let current: BackendState | undefined;
  let lastProblem = '';
  const refresh = async (): Promise<BackendState> => {
    try {
      const next = await readStateFile(opts.stateFile);
      // Said when it changes; at the start only when it is not the default (the command's first line says it).
      if (stateLine(next) !== stateLine(current ?? DEFAULT_BACKEND_STATE)) {
        log.info({ event: 'backendState', state: stateLine(next) });
      }
      current = next;
      lastProblem = '';
    } catch (err) {
      const problem = (err as Error).message;
      current ??= unreadState(problem);
      // Once per distinct problem: a node asks every interval, the log need not say it each time. The problem names
      // the file and the error (EACCES: the unit's user may not read it; see docs/backend-host.md).
      if (problem !== lastProblem) {
        log.error({ event: 'backendStateRejected', stateFile: opts.stateFile, problem, answering: stateLine(current) });
      }
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
    for (const { host: asked, port, text } of listens) {
      const bind = (host: string): Promise<Server> => {
        const server = createServer(serve);
        server.maxConnections = MAX_AGENT_CONNECTIONS;
        return new Promise<Server>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => resolve(server));
        });
      };
      let host = asked;
      const server = await bind(host).catch((err: NodeJS.ErrnoException) => {
        // `::` on a kernel without IPv6: every IPv4 address is what "every address" can mean there.
        if (asked !== '::' || err.code !== 'EAFNOSUPPORT') throw err;
        log.warn({ event: 'listenFallback', listen: text, problem: err.message, using: `0.0.0.0:${port}` });
        host = '0.0.0.0';
        return bind(host);
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
    state: () => current ?? DEFAULT_BACKEND_STATE,
    async close() {
      const closed = Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
  };
}
