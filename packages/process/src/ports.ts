/** Loopback TCP ports for daemons started by tests and benches. */
import { readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

/**
 * Lowest port freePort prefers. A port the kernel picks for port 0 lies in net.ipv4.ip_local_port_range (32768-60999
 * by default), the range every outgoing connection takes its source port from: between the probe's close and the
 * daemon's bind any connection on the machine could take it (seen in CI: etcd's "bind: address already in use").
 * Outside that range only another listener can. Below 20000 lie the registered ports of daemons a test machine may
 * run or start later (etcd 2379/2380, PostgreSQL 5432, Redis 6379, 8080, Prometheus 9090, kubelet 10250, ...):
 * those are used only when the preferred ports are too few (FREE_PORT_MIN_POOL).
 */
export const FREE_PORT_LOWEST = 20_000;
/** Ports 1024 and up need no privilege: the lowest freePort ever hands out. */
const UNPRIVILEGED_LOWEST = 1_024;
const PORT_HIGHEST = 65_535;
/** Fewer preferred ports than this (a range starting low or ending high): every non-ephemeral port is a candidate. */
const FREE_PORT_MIN_POOL = 1_000;
/** Random candidates tried before falling back to one the kernel picks (only when none of them is free). */
const FREE_PORT_TRIES = 64;
/**
 * Ports this process handed out lately, never handed out again while listed: callers take two in a row (an etcd's
 * client and peer port) and bind them later, so a probe finds the first one still free.
 */
const RECENT_MAX = 256;
const recent: number[] = [];
const DEFAULT_RANGE = { low: 32_768, high: 60_999 } as const;

/** The kernel's ephemeral port range (ip_local_port_range); 32768-60999 when it cannot be read. */
export function ephemeralPortRange(): { readonly low: number; readonly high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    const port = (n: number | undefined): n is number =>
      Number.isInteger(n) && (n ?? 0) > 0 && (n ?? 0) <= PORT_HIGHEST;
    return port(low) && port(high) && low <= high ? { low, high } : DEFAULT_RANGE;
  } catch {
    return DEFAULT_RANGE;
  }
}

/** The first port of the kernel's ephemeral range; 32768 when it cannot be read. */
export function ephemeralPortLow(): number {
  return ephemeralPortRange().low;
}

interface Block {
  readonly from: number;
  readonly to: number;
}

/** The ports outside the ephemeral range, from `lowest` up: the block below it and the block above it, if any. */
function blocksOutside(range: { low: number; high: number }, lowest: number): Block[] {
  const blocks = [
    { from: lowest, to: range.low - 1 },
    { from: Math.max(lowest, range.high + 1), to: PORT_HIGHEST },
  ];
  return blocks.filter((b) => b.to >= b.from);
}

const sizeOf = (blocks: readonly Block[]) => blocks.reduce((n, b) => n + b.to - b.from + 1, 0);

/**
 * The ports freePort picks from: outside the ephemeral range, from FREE_PORT_LOWEST up when there are enough of those,
 * else from 1024 up; empty when the range covers them all.
 */
function freePortCandidates(range = ephemeralPortRange()): readonly Block[] {
  const preferred = blocksOutside(range, FREE_PORT_LOWEST);
  return sizeOf(preferred) >= FREE_PORT_MIN_POOL ? preferred : blocksOutside(range, UNPRIVILEGED_LOWEST);
}

function randomPort(blocks: readonly Block[]): number {
  let i = Math.floor(Math.random() * sizeOf(blocks));
  for (const b of blocks) {
    const n = b.to - b.from + 1;
    if (i < n) return b.from + i;
    i -= n;
  }
  throw new Error('randomPort: no ports');
}

function handOut(port: number): number {
  recent.push(port);
  if (recent.length > RECENT_MAX) recent.shift();
  return port;
}

/** Listens on `port` (0: one the kernel picks) on `host`, closes, and gives the port; undefined when it is taken. */
function probe(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) =>
      port !== 0 && (err.code === 'EADDRINUSE' || err.code === 'EACCES') ? resolve(undefined) : reject(err),
    );
    server.listen(port, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error(`no free port on ${host}`)),
      );
    });
  });
}

/**
 * A TCP port free on `host` right now, outside the kernel's ephemeral range (which no outgoing connection takes
 * meanwhile; freePortCandidates) and not handed out by this process lately. Only when no such port is free (the
 * range covers every unprivileged port, or the few outside it are taken) is it one the kernel picks.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const candidates = freePortCandidates();
  if (candidates.length > 0) {
    for (let i = 0; i < FREE_PORT_TRIES; i++) {
      const port = randomPort(candidates);
      if (recent.includes(port)) continue;
      if ((await probe(port, host)) !== undefined) return handOut(port);
    }
  }
  for (let i = 0; i < FREE_PORT_TRIES; i++) {
    const port = await probe(0, host);
    if (port !== undefined && !recent.includes(port)) return handOut(port);
  }
  throw new Error(`no free port on ${host}: ${FREE_PORT_TRIES} ports the kernel picked were all handed out lately`);
}

/** Whether something accepts a TCP connection on 127.0.0.1:`target` (a port) or a unix socket path; 500 ms at most. */
export function canConnect(target: number | string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    if (typeof target === 'string') socket.connect(target);
    else socket.connect(target, '127.0.0.1');
  });
}
