/** One VIP's TCP listener: terminates the client connection and opens one to the chosen backend. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { VipBackend } from '../types.js';
import type { ResolvedProfile } from '../vip-profile.js';
import type { BackendSelector } from './select.js';
import { nodeSockets, type ProxySockets } from './sockets.js';
import { backendTally, type ProxyStats } from './stats.js';

export interface VipListener {
  /**
   * Stops accepting. `drain` true: resolves once the listening socket is closed, while the TCP connections in progress
   * go on (a later close(false) ends them; a UDP listener ends its sessions either way); false: ends them too and
   * resolves when they are closed.
   */
  close(drain: boolean): Promise<void>;
  /** Flows in progress (connections or UDP sessions). */
  readonly flows: number;
  /**
   * The listening socket is open. False once it closed other than through close() (closed under the proxy, or gone
   * with an error): the VIP takes no new flow, while the node still announces it, until relisten().
   */
  readonly listening: boolean;
  /**
   * Opens a new listening socket on the same address and port after the last was lost; the flows in progress, the
   * selector and the counters stay. Rejects with the bind's error (EADDRINUSE: another socket took the port).
   */
  relisten(): Promise<void>;
  /**
   * The table changed: flows to a backend that left the pool end (Maglev would re-hash them), and so do flows from a
   * client its sourceRanges no longer admit (the kernel drivers filter before flow affinity: their next packet drops).
   * Those are not counted as `source` drops: they were admitted, and counted for the VIP, when they opened.
   */
  tableChanged(): void;
}

/**
 * The VIP's sourceRanges as a test of a client address (@l4fleet/config sourceAdmits), replaced by each apply and
 * asked before the backend pick or session lookup of every new connection and datagram: changing only the ranges
 * keeps the listener, so admitted clients lose nothing.
 */
export interface SourceFilter {
  admits: (address: string) => boolean;
}

/**
 * The VIP's profile as socket timeouts (design note 0012), read for each new connection so an apply changes it for
 * new connections: idle (no byte either way) ends both connections, with a RST each under `onTimeout: reset`, else
 * closed; the handshake timeout alone bounds the connect to the member (the client's handshake is the kernel's); the
 * close timeout ends both once either side has sent its FIN and no byte has passed either way for that long. Absent:
 * no idle or close timeout, and the driver's connectTimeoutMs bounds the connect (the proxy before profiles).
 */
export interface ProfileHolder {
  profile?: ResolvedProfile | undefined;
}

export async function listenTcp(opts: {
  host: string;
  port: number;
  selector: BackendSelector;
  stats: ProxyStats;
  connectTimeoutMs: number;
  profile: ProfileHolder;
  source: SourceFilter;
  log: Logger;
  sockets?: ProxySockets;
}): Promise<VipListener> {
  const { selector, stats } = opts;
  // `src` is kept because a destroyed socket no longer reports its remoteAddress.
  const conns = new Map<net.Socket, { upstream: net.Socket; backend: VipBackend; src: string }>();
  const onConnection = (client: net.Socket): void => {
    const src = client.remoteAddress ?? '';
    if (!opts.source.admits(src)) {
      // The kernel completed the handshake before the proxy saw the client, so the refusal is a reset (RST, the
      // client's read fails with ECONNRESET) rather than a FIN: the client is told it was refused, not served, and
      // the proxy keeps no TIME_WAIT per refused connection. Counted as one connection of 0 bytes: nothing is read.
      stats.source.add(1, 0);
      client.resetAndDestroy();
      return;
    }
    const backend = selector.pick({ src, sport: client.remotePort ?? 0 });
    if (!backend) {
      stats.noBackend.add(1, 0);
      client.resetAndDestroy();
      return;
    }
    stats.vip.add(1, 0);
    const tally = backendTally(stats, backend.address);
    tally.add(1, 0);
    selector.opened(backend);
    const profile = opts.profile.profile;
    // The profile's handshake timeout alone (1-600 s, default 10 s): capped by connectTimeoutMs (5 s by default, which
    // the agent never sets) it cut every profile's to 5 s. connectTimeoutMs is for tables without a profile.
    const connectMs = profile ? profile.tcpHandshakeTimeoutS * 1000 : opts.connectTimeoutMs;
    const upstream = net.connect({ host: backend.address, port: backend.port, noDelay: true, allowHalfOpen: true });
    upstream.setTimeout(connectMs, () => upstream.destroy(new Error('connect timeout')));
    upstream.once('connect', () => upstream.setTimeout(0));
    if (profile) applyProfile(client, upstream, profile);
    conns.set(client, { upstream, backend, src });
    client.on('data', (d: Buffer) => {
      stats.vip.bytes += d.length;
      tally.bytes += d.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      conns.delete(client);
      selector.closed(backend);
    };
    client.on('error', () => upstream.destroy());
    upstream.on('error', (err) => {
      opts.log.debug({ event: 'upstreamError', backend: backend.name, err: err.message });
      client.resetAndDestroy();
    });
    client.on('close', () => {
      finish();
      upstream.destroy();
    });
    upstream.on('close', () => {
      finish();
      if (!client.writableEnded) client.end();
    });
  };
  /**
   * node emits a server's 'close' once its listening socket is closed and every connection it accepted has ended,
   * once: one promise per server ever listening (a lost one's connections go on beside its successor's).
   */
  const ended: Promise<void>[] = [];
  const open = async (): Promise<net.Server> => {
    const s = (opts.sockets ?? nodeSockets).tcpServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
        s.off('error', reject);
        resolve();
      });
    });
    // After the bind node emits 'error' for a failed accept (EMFILE, ENFILE) and goes on listening. Unheard, the
    // error was thrown out of the event loop and ended the agent; a server it leaves closed is verify's to repair.
    s.on('error', (err: NodeJS.ErrnoException) =>
      opts.log.warn({ event: 'listenerError', host: opts.host, port: opts.port, code: err.code, err: err.message }),
    );
    ended.push(new Promise<void>((resolve) => s.once('close', () => resolve())));
    return s;
  };
  let server = await open();
  return {
    get flows() {
      return conns.size;
    },
    get listening() {
      return server.listening;
    },
    async relisten() {
      server = await open();
    },
    tableChanged() {
      for (const [client, c] of conns) {
        if (!selector.has(c.backend) || !opts.source.admits(c.src)) {
          client.resetAndDestroy();
          c.upstream.destroy();
        }
      }
    },
    async close(drain) {
      // Closes the listening socket now (the port is free when this returns). Not server.close(cb): its callback waits
      // for every open connection, and a removed VIP with one long connection held the apply queue until it ended.
      if (server.listening) server.close();
      if (drain) return;
      for (const [client, c] of conns) {
        client.destroy();
        c.upstream.destroy();
      }
      await Promise.all(ended);
    },
  };
}

/** Idle and close timeouts of one proxied connection (see ProfileHolder). */
function applyProfile(client: net.Socket, upstream: net.Socket, p: ResolvedProfile): void {
  const end = (): void => {
    if (p.onTimeout === 'reset') {
      client.resetAndDestroy();
      if (!upstream.destroyed) upstream.resetAndDestroy();
    } else {
      client.destroy();
      upstream.destroy();
    }
  };
  // Every byte either way passes through the client socket (read from it or written to it): its idle timer is the
  // connection's.
  client.setTimeout(p.idleTimeoutS * 1000, end);
  // The close timeout is an idle timer of the closing state, as conntrack's (restarted by each packet): a member still
  // streaming its answer after the client's FIN is not cut (under `drop` the client would see a normal FIN and take a
  // truncated answer for a complete one), one silent for tcpCloseTimeoutS is.
  let closing: NodeJS.Timeout | undefined;
  const halfClosed = (): void => {
    closing ??= setTimeout(end, p.tcpCloseTimeoutS * 1000);
    closing.unref();
  };
  const activity = (): void => {
    closing?.refresh();
  };
  client.on('data', activity);
  upstream.on('data', activity);
  client.once('end', halfClosed);
  upstream.once('end', halfClosed);
  client.once('close', () => clearTimeout(closing));
}
