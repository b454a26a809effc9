/**
 * One VIP's UDP listener. Each client address:port is a session with its own socket to the backend, so
 * the backend's replies find their way back; a session idle in both directions expires (the profile's idleTimeoutS,
 * else flowTimeoutUdpS). Sessions are the proxy's flow table: an existing session keeps its backend when the table
 * changes.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { VipBackend } from '../types.js';
import type { BackendSelector } from './select.js';
import { nodeSockets, type ProxySockets } from './sockets.js';
import { backendTally, type ProxyStats } from './stats.js';
import type { SourceFilter, VipListener } from './tcp.js';

interface Session {
  /** The client's address, asked of the VIP's sourceRanges again at each apply. */
  readonly src: string;
  readonly backend: VipBackend;
  readonly upstream: dgram.Socket;
  /**
   * The client's datagrams that came before the upstream's connect completed (up to PENDING_DATAGRAMS_MAX), sent once
   * it does; undefined once connected.
   */
  pending: Buffer[] | undefined;
  /** performance.now() of the last datagram either way: a steady clock, so an NTP step ends or keeps no session. */
  lastSeenMs: number;
}

/**
 * Datagrams a session holds while its socket to the member connects (a route lookup, done within a tick or two):
 * enough for a client's first burst (a QUIC Initial flight, a DNS query and its retries). Past it the arriving datagram
 * is dropped, as a full socket buffer drops it.
 */
export const PENDING_DATAGRAMS_MAX = 8;

export async function listenUdp(opts: {
  host: string;
  port: number;
  selector: BackendSelector;
  stats: ProxyStats;
  /** Idle milliseconds before a session ends: the VIP profile's idleTimeoutS, read at each sweep. */
  timeoutMs: () => number;
  maxSessions: number;
  source: SourceFilter;
  log: Logger;
  sockets?: ProxySockets;
}): Promise<VipListener> {
  const { selector, stats } = opts;
  const sessions = new Map<string, Session>();
  const end = (key: string, s: Session): void => {
    sessions.delete(key);
    selector.closed(s.backend);
    s.upstream.close();
  };
  /**
   * What reaches a member's counter: the datagrams sent to it. Those the session drops itself (past
   * PENDING_DATAGRAMS_MAX, or held when the connect fails) count for the VIP only: no drop reason fits them (a backend
   * was chosen, so not `no-backend`), and the drop reasons are every driver's and the agent's metric labels.
   */
  const forward = (s: Session, msg: Buffer): void => {
    s.upstream.send(msg);
    backendTally(stats, s.backend.address).add(1, msg.length);
  };
  /** A datagram either way: the session is not idle (design note 0012), and is the most recently used (Map order). */
  const touch = (key: string, s: Session): void => {
    s.lastSeenMs = performance.now();
    sessions.delete(key);
    sessions.set(key, s);
  };
  const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    // Before the session lookup, as the kernel drivers filter before flow affinity: a refused datagram creates no
    // session and reaches no backend. Counted as one packet of its payload bytes, like the VIP's own counter.
    if (!opts.source.admits(rinfo.address)) {
      stats.source.add(1, msg.length);
      return;
    }
    const key = `${rinfo.address}|${rinfo.port}`;
    let s = sessions.get(key);
    if (!s) {
      const backend = selector.pick({ src: rinfo.address, sport: rinfo.port });
      if (!backend) {
        stats.noBackend.add(1, msg.length);
        return;
      }
      if (sessions.size >= opts.maxSessions) {
        // A full table must not drop new flows: the least recently used session gives way.
        const [oldKey, oldest] = sessions.entries().next().value as [string, Session];
        end(oldKey, oldest);
      }
      const upstream = dgram.createSocket(isIPv6(backend.address) ? 'udp6' : 'udp4');
      const created: Session = { src: rinfo.address, backend, upstream, pending: [], lastSeenMs: 0 };
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        if (!created.pending) {
          // After the connect (an ICMP port unreachable read back as ECONNREFUSED, say): the member may answer
          // the next datagram, so the session goes on.
          opts.log.debug({ event: 'upstreamError', backend: backend.name, code: err.code, err: err.message });
          return;
        }
        // The connect failed: no route to the member (ENETUNREACH, a blackhole or prohibit route; EACCES for a
        // broadcast address), as health probes see it (agent health/probe.ts). The socket stays unconnected for good,
        // so the session ends, its held datagrams dropped, and the client's next datagram opens a new session with
        // the backend picked again: the client is served as soon as the route is back, not black-holed for as long
        // as it keeps sending.
        opts.log.debug({
          event: 'upstreamConnectFailed',
          backend: backend.name,
          code: err.code,
          err: err.message,
          dropped: created.pending.length,
        });
        created.pending = undefined;
        if (sessions.get(key) === created) end(key, created);
      });
      upstream.once('connect', () => {
        const held = created.pending ?? [];
        created.pending = undefined;
        // An ended session's socket is closed: its held datagrams go with it.
        if (sessions.get(key) !== created) return;
        for (const m of held) forward(created, m);
      });
      upstream.on('message', (reply) => {
        // A member that keeps sending keeps the session, as a client does; an ended session's socket is closed.
        if (sessions.get(key) === created) touch(key, created);
        // `socket` is the VIP's socket now: after a relisten, the new one (same address and port, as the client expects).
        try {
          socket.send(reply, rinfo.port, rinfo.address);
        } catch {
          // The VIP's socket was closed under the proxy (ERR_SOCKET_DGRAM_NOT_RUNNING): the reply is lost, as a
          // datagram may be, until verify binds the socket again.
        }
      });
      upstream.connect(backend.port, backend.address);
      s = created;
      sessions.set(key, s);
      selector.opened(backend);
    }
    const session = s;
    touch(key, session);
    stats.vip.add(1, msg.length);
    // connect() is asynchronous; sending before it completes throws ERR_SOCKET_DGRAM_NOT_CONNECTED, so the datagram
    // waits for it in the session, bounded (one listener per datagram kept every datagram of a session that never
    // connected). Past the bound it is dropped: counted for the VIP, not for the member (forward).
    if (!session.pending) forward(session, msg);
    else if (session.pending.length < PENDING_DATAGRAMS_MAX) session.pending.push(msg);
  };
  const sweep = setInterval(
    () => {
      const now = performance.now();
      const timeoutMs = opts.timeoutMs();
      for (const [key, s] of sessions) if (now - s.lastSeenMs > timeoutMs) end(key, s);
    },
    Math.min(1000, opts.timeoutMs()),
  );
  sweep.unref();
  const open = async (): Promise<dgram.Socket> => {
    const s = (opts.sockets ?? nodeSockets).udpSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4', reuseAddr: false });
    s.on('message', onMessage);
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind({ address: opts.host, port: opts.port, exclusive: true }, () => {
          s.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // A socket whose bind failed still holds its handle (a TCP server's does not).
      s.close();
      throw err;
    }
    // Unheard, an 'error' after the bind would be thrown out of the event loop and end the agent.
    s.on('error', (err: NodeJS.ErrnoException) =>
      opts.log.warn({ event: 'listenerError', host: opts.host, port: opts.port, code: err.code, err: err.message }),
    );
    return s;
  };
  let socket = await open();
  return {
    get flows() {
      return sessions.size;
    },
    get listening() {
      return bound(socket);
    },
    async relisten() {
      socket = await open();
    },
    tableChanged() {
      for (const [key, s] of sessions) if (!selector.has(s.backend) || !opts.source.admits(s.src)) end(key, s);
    },
    close() {
      clearInterval(sweep);
      for (const [key, s] of sessions) end(key, s);
      // Closed under the proxy already: close() would throw ERR_SOCKET_DGRAM_NOT_RUNNING.
      if (!bound(socket)) return Promise.resolve();
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}

/**
 * Whether the socket is bound and open: dgram has no `listening` as a server has, and address() throws once the
 * socket is closed (ERR_SOCKET_DGRAM_NOT_RUNNING) or while it is not bound. Asked at apply and verify only.
 */
function bound(s: dgram.Socket): boolean {
  try {
    s.address();
    return true;
  } catch {
    return false;
  }
}
