/**
 * Backend selection for the proxy. `maglev` is the fleet-consistent choice (every node picks the same
 * backend for a flow, from the same table and the kernel's flow hash). `round-robin` and
 * `least-connections` only see this node's own traffic: two nodes behind ECMP will pick different
 * backends for the same flow, so a flow that moves between nodes moves between backends too.
 */
import { type HashMode, type IpFamily, NO_BACKEND, parseAddress, slotOf } from '@l4fleet/maglev';
import { keepsFlows, type VipBackend, type VipTable } from '../types.js';

export type ProxySelection = 'maglev' | 'round-robin' | 'least-connections';

export interface ClientFlow {
  readonly src: string;
  readonly sport: number;
}

/** Node's sockets report IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d; the hash needs a.b.c.d. */
export function unmapAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The client's address as a flow of a VIP of `family` has it, or undefined when the client is of the other family
 * (or not an address at all). Node reports a link-local client with its zone (fe80::1%eth0, RFC 4007 §11): the zone
 * is no part of the flow. An IPv4 client of a dual-stack listener ('::') is ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), an
 * IPv4 client. A client of the other family reaches a VIP only through the proxy's listenAddress: the kernel
 * drivers never see one, and Maglev cannot hash one against the VIP (flowKey's FLOW_FAMILY_MISMATCH).
 */
export function clientAddress(address: string, family: IpFamily): string | undefined {
  const bare = unmapAddress(address.split('%')[0] as string);
  try {
    return parseAddress(bare).family === family ? bare : undefined;
  } catch {
    return undefined;
  }
}

export class BackendSelector {
  private table: VipTable;
  private family: IpFamily = 4;
  /** Backends that own at least one slot: a weight-0 (draining) backend gets no new flows in any mode. */
  private eligible: number[] = [];
  private next = 0;
  readonly active: Map<string, number> = new Map();

  constructor(
    table: VipTable,
    private readonly mode: ProxySelection,
  ) {
    this.table = table;
    this.setTable(table);
  }

  setTable(table: VipTable): void {
    this.table = table;
    // A validated table's VIP address parses (validate.ts).
    this.family = parseAddress(table.vip.address).family;
    const owners = new Set<number>();
    // A draining VIP takes no new flow in any mode; the proxy's open connections and UDP sessions go on (`has`).
    if (!table.draining) for (const s of table.slots) if (s !== NO_BACKEND) owners.add(s);
    this.eligible = [...owners].sort((a, b) => a - b);
  }

  get backends(): readonly VipBackend[] {
    return this.table.backends;
  }

  /**
   * The backend for a new flow, or undefined when the VIP has none, or when the client is of the other family than
   * the VIP (clientAddress), in every mode: the VIP serves the clients the kernel drivers would deliver to it. Never
   * throws: it runs in the listeners' connection and datagram handlers, where an exception ends the agent.
   */
  pick(flow: ClientFlow): VipBackend | undefined {
    const t = this.table;
    if (this.eligible.length === 0) return undefined;
    const src = clientAddress(flow.src, this.family);
    if (src === undefined) return undefined;
    if (this.mode === 'round-robin') {
      this.next = (this.next + 1) % this.eligible.length;
      return t.backends[this.eligible[this.next] as number];
    }
    if (this.mode === 'least-connections') {
      let best: VipBackend | undefined;
      let bestCount = Number.POSITIVE_INFINITY;
      for (const i of this.eligible) {
        const b = t.backends[i] as VipBackend;
        const n = this.active.get(b.name) ?? 0;
        if (n < bestCount) {
          best = b;
          bestCount = n;
        }
      }
      return best;
    }
    const slot = slotOf(
      {
        src,
        sport: flow.sport,
        dst: t.vip.address,
        dport: t.vip.port,
        protocol: t.vip.protocol,
      },
      t.slots.length,
      t.seed,
      t.hash as HashMode,
    );
    const index = t.slots[slot] as number;
    return index === NO_BACKEND ? undefined : t.backends[index];
  }

  /**
   * Do a flow's sessions stay on `b`: still in the pool (by name and address), and not down under `reselect`
   * (types.ts keepsFlows)? Sessions to any other backend are re-picked (UDP) or reset (TCP).
   */
  has(b: VipBackend): boolean {
    const t = this.table;
    return t.backends.some(
      (x) => x.name === b.name && x.address === b.address && x.port === b.port && keepsFlows(t, x),
    );
  }

  opened(b: VipBackend): void {
    this.active.set(b.name, (this.active.get(b.name) ?? 0) + 1);
  }

  closed(b: VipBackend): void {
    const n = (this.active.get(b.name) ?? 1) - 1;
    if (n <= 0) this.active.delete(b.name);
    else this.active.set(b.name, n);
  }
}
