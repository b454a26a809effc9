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
import { backendTally, type ProxyStats } from './stats.js';
import type { SourceFilter, VipListener } from './tcp.js';

interface Session {
  /** The client's address, asked of the VIP's sourceRanges again at each apply. */
  readonly src: string;
  readonly backend: VipBackend;
  readonly upstream: dgram.Socket;
  /** performance.now() of the last datagram either way: a steady clock, so an NTP step ends or keeps no session. */
  lastSeenMs: number;
}

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
}): Promise<VipListener> {
  const { selector, stats } = opts;
  const sessions = new Map<string, Session>();
  const socket = dgram.createSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4', reuseAddr: false });
  const end = (key: string, s: Session): void => {
    sessions.delete(key);
    selector.closed(s.backend);
    s.upstream.close();
  };
  /** A datagram either way: the session is not idle (design note 0012), and is the most recently used (Map order). */
  const touch = (key: string, s: Session): void => {
    s.lastSeenMs = performance.now();
    sessions.delete(key);
    sessions.set(key, s);
  };
  socket.on('message', (msg, rinfo) => {
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
      upstream.on('error', (err) =>
        opts.log.debug({ event: 'upstreamError', backend: backend.name, err: err.message }),
      );
      const created: Session = { src: rinfo.address, backend, upstream, lastSeenMs: 0 };
      upstream.on('message', (reply) => {
        // A member that keeps sending keeps the session, as a client does; an ended session's socket is closed.
        if (sessions.get(key) === created) touch(key, created);
        socket.send(reply, rinfo.port, rinfo.address);
      });
      upstream.connect(backend.port, backend.address);
      s = created;
      sessions.set(key, s);
      selector.opened(backend);
    }
    const session = s;
    touch(key, session);
    stats.vip.add(1, msg.length);
    backendTally(stats, session.backend.address).add(1, msg.length);
    const send = (): void => session.upstream.send(msg);
    // connect() is asynchronous; sending before it completes throws ERR_SOCKET_DGRAM_NOT_CONNECTED.
    try {
      send();
    } catch {
      session.upstream.once('connect', send);
    }
  });
  const sweep = setInterval(
    () => {
      const now = performance.now();
      const timeoutMs = opts.timeoutMs();
      for (const [key, s] of sessions) if (now - s.lastSeenMs > timeoutMs) end(key, s);
    },
    Math.min(1000, opts.timeoutMs()),
  );
  sweep.unref();
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: opts.host, port: opts.port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    get flows() {
      return sessions.size;
    },
    tableChanged() {
      for (const [key, s] of sessions) if (!selector.has(s.backend) || !opts.source.admits(s.src)) end(key, s);
    },
    close() {
      clearInterval(sweep);
      for (const [key, s] of sessions) end(key, s);
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}
