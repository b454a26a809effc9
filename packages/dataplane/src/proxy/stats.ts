/** Mutable traffic counters of the proxy (packets: connections for TCP, datagrams for UDP). */
export class Tally {
  packets = 0;
  bytes = 0;

  add(packets: number, bytes: number): void {
    this.packets += packets;
    this.bytes += bytes;
  }
}

export interface ProxyStats {
  /** Replaced when another VIP takes over the listener (driver.ts): read it at each count, never keep it. */
  vip: Tally;
  /** By backend address. */
  readonly backends: Map<string, Tally>;
  readonly noBackend: Tally;
  /** Clients outside the VIP's sourceRanges: refused connections (0 bytes) and datagrams (their payload bytes). */
  readonly source: Tally;
}

export function backendTally(stats: ProxyStats, address: string): Tally {
  let t = stats.backends.get(address);
  if (!t) {
    t = new Tally();
    stats.backends.set(address, t);
  }
  return t;
}
