/** One VIP's TCP listener: terminates the client connection and opens one to the chosen backend. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { VipBackend } from '../types.js';
import type { ResolvedProfile } from '../vip-profile.js';
import type { BackendSelector } from './select.js';
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
}): Promise<VipListener> {
  const { selector, stats } = opts;
  // `src` is kept because a destroyed socket no longer reports its remoteAddress.
  const conns = new Map<net.Socket, { upstream: net.Socket; backend: VipBackend; src: string }>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
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
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // node emits a server's 'close' once its listening socket is closed and every connection has ended, once.
  const ended = new Promise<void>((resolve) => server.once('close', () => resolve()));
  return {
    get flows() {
      return conns.size;
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
      await ended;
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
